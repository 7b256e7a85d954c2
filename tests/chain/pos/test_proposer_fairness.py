"""Proposer fairness on a running chain: over many slots, each member's share of proposals tracks
its share of *effective* stake (phase0 ``get_beacon_proposer_index`` through the beacon state, with
the checkpoint-root seed of chain/pos/proposer.py).  Fixed seeds (the genesis root, slot numbers), so the
test is deterministic; the bound is the chi-square critical value at ALPHA = 0.001, and the same
draws must refute the wrong hypotheses, so the test can fail."""

from collections import Counter
from dataclasses import replace
from fractions import Fraction

from chain.pos.beacon import ConsensusConfig, GenesisValidator, get_beacon_proposer_index
from chain.pos.rewards import UNITS_PER_POINT
from tests.chain.pos.test_proposer import chi2_critical, chi2_statistic
from tests.chainkit import key
from tests.poskit import new_consensus_chain

SLOTS = 6_000
# Members own 1, 2 and 3 validators at the 32-point cap; dan's one validator holds 96 points,
# but only 32 are effective (Ethereum's MAX_EFFECTIVE_BALANCE), so dan's share is one seventh.
OWNERS = ["ann", "ben", "ben", "cat", "cat", "cat", "dan"]
STAKES = [32, 32, 32, 32, 32, 32, 96]


def draws():
    config = ConsensusConfig(
        mode="pos",
        genesis_validators=tuple(
            GenesisValidator(key(f"fair-{i}").public_key, key(owner).public_key, stake)
            for i, (owner, stake) in enumerate(zip(OWNERS, STAKES, strict=True))
        ),
    )
    beacon = new_consensus_chain(config).beacon
    assert beacon.registry.validators[6].effective_balance == 32 * UNITS_PER_POINT
    counts = Counter()
    # Empty epochs: the checkpoint root of every epoch is the genesis block's, as process_slots fills it.
    root = beacon.checkpoint_roots[0]
    for slot in range(1, SLOTS + 1):
        epoch = slot // config.slots_per_epoch
        state = replace(beacon, epoch=epoch, checkpoint_roots=(root,) * min(epoch + 1, 4))
        counts[OWNERS[get_beacon_proposer_index(state, slot)]] += 1
    return counts


def test_each_member_proposes_its_share_of_effective_stake():
    counts = draws()
    effective_share = {"ann": Fraction(1, 7), "ben": Fraction(2, 7), "cat": Fraction(3, 7), "dan": Fraction(1, 7)}
    statistic = chi2_statistic(counts, effective_share, SLOTS)
    assert statistic < chi2_critical(df=3), (statistic, counts)
    # Power: the same draws refute shares by raw balance (dan 3/9) and equal shares per member.
    raw_share = {"ann": Fraction(1, 9), "ben": Fraction(2, 9), "cat": Fraction(3, 9), "dan": Fraction(3, 9)}
    assert chi2_statistic(counts, raw_share, SLOTS) > chi2_critical(df=3)
    equal = {m: Fraction(1, 4) for m in effective_share}
    assert chi2_statistic(counts, equal, SLOTS) > chi2_critical(df=3)
