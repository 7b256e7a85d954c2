"""Epoch transitions on a running chain: consensus-specs phase0 ``process_epoch`` order
(justification and finalization with >= 2/3 of active stake, rewards and penalties by
participation, inactivity leak after MIN_EPOCHS_TO_INACTIVITY_PENALTY = 4 epochs without finality,
effective balance updates), then activations, exits and withdrawability announced as events."""

import pytest

from chain.errors import AttestationError
from chain.events import (
    CHECKPOINT_FINALIZED,
    CHECKPOINT_JUSTIFIED,
    EPOCH_REWARDS,
    INACTIVITY_LEAK_ENDED,
    INACTIVITY_LEAK_STARTED,
    VALIDATOR_ACTIVATED,
    VALIDATOR_WITHDRAWABLE,
)
from chain.pos.beacon import ConsensusConfig, get_beacon_proposer_index, get_checkpoint_root
from chain.pos.epoch_transition import process_epoch
from chain.pos.operations import Operations, make_deposit, make_voluntary_exit
from chain.pos.rewards import UNITS_PER_POINT
from tests.chainkit import CHAIN_ID, key
from tests.poskit import (
    Harness,
    mine_v2,
    new_consensus_chain,
    pos_config,
    validator_keys,
)

KEYS = validator_keys()
STAKE = 32 * UNITS_PER_POINT


def kinds(h, kind):
    return [e for e in h.events if e.kind == kind]


def test_full_participation_justifies_finalizes_and_rewards():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.run_epochs(4)
    beacon = h.state.beacon
    assert beacon.finality.current_justified_checkpoint.epoch == 3
    assert beacon.finality.finalized_checkpoint.epoch == 2  # phase0's 4th case: 2 then 3 justified
    assert beacon.finality.finalized_checkpoint.root == get_checkpoint_root(beacon, 2)
    assert [e.payload["epoch"] for e in kinds(h, CHECKPOINT_JUSTIFIED)] == [2, 3]
    assert [e.payload["epoch"] for e in kinds(h, CHECKPOINT_FINALIZED)] == [2]
    rewards = kinds(h, EPOCH_REWARDS)
    assert len(rewards) == 4 and all(e.payload["minted_units"] > 0 for e in rewards)
    assert all(balance > STAKE for balance in beacon.registry.balances)
    assert beacon.minted_units == 4 * STAKE + sum(e.payload["minted_units"] for e in rewards)
    assert not kinds(h, INACTIVITY_LEAK_STARTED)


def test_issuance_follows_the_configured_rate():
    low = Harness(new_consensus_chain(pos_config(issuance_rate_bp=300)), KEYS)
    high = Harness(new_consensus_chain(pos_config(issuance_rate_bp=1_500)), KEYS)
    for h in (low, high):
        h.run_epochs(1)
    (low_event,), (high_event,) = kinds(low, EPOCH_REWARDS), kinds(high, EPOCH_REWARDS)
    assert high_event.payload["minted_units"] == pytest.approx(5 * low_event.payload["minted_units"], rel=0.01)


def test_inactivity_leak_starts_without_finality_and_ends_when_votes_return():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.run_epochs(7, voters=[0, 1])  # half the stake: below 2/3, nothing is justified
    beacon = h.state.beacon
    assert beacon.finality.finalized_checkpoint.epoch == 0
    (started,) = kinds(h, INACTIVITY_LEAK_STARTED)
    assert started.payload["finality_delay"] == 5
    online, offline = beacon.registry.balances[0], beacon.registry.balances[3]
    assert offline < online  # the leak drains the offline stake faster
    h.run_epochs(4)  # everyone votes again
    assert h.state.beacon.finality.finalized_checkpoint.epoch > 0
    assert kinds(h, INACTIVITY_LEAK_ENDED)
    assert h.state.total_supply_units() == h.state.issued_supply_units()


def test_registry_events_activation_and_withdrawability():
    new = key("val-new")
    h = Harness(new_consensus_chain(pos_config(unbonding_epochs=1, slashed_unbonding_epochs=2)), [*KEYS, new])
    h.propose(
        1,
        pool=Operations(
            deposits=(make_deposit(key("wallet-0"), new, 32, 0, CHAIN_ID),),
            voluntary_exits=(make_voluntary_exit(KEYS[3], 3, 0, CHAIN_ID),),
        ),
    )
    h.run_epochs(3)
    (activated,) = kinds(h, VALIDATOR_ACTIVATED)
    assert activated.payload == {"validator_index": 4, "pubkey": new.public_key.hex(), "epoch": 1}
    (withdrawable,) = kinds(h, VALIDATOR_WITHDRAWABLE)
    assert withdrawable.payload["validator_index"] == 3 and withdrawable.payload["epoch"] == 2


def test_pow_chain_epochs_settle_deposits_without_votes_or_rewards():
    miner = key("miner")
    config = ConsensusConfig(mode="pow", checkpoint_interval_blocks=4)
    state = new_consensus_chain(config)
    mine_v2(state, miner.public_key)
    mine_v2(state, miner.public_key, pool=Operations(deposits=(make_deposit(miner, KEYS[0], 32, 0, CHAIN_ID),)))
    for _ in range(10):
        mine_v2(state, miner.public_key)
    beacon = state.beacon
    assert beacon.epoch == 3 and beacon.finality.current_epoch == 3
    assert beacon.registry.balances == (STAKE,)  # no rewards, no penalties before the Merge
    assert beacon.registry.validators[0].activation_epoch == 1


def test_invalid_proposer_draw_for_a_slot_in_another_epoch():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    with pytest.raises(AttestationError):
        get_beacon_proposer_index(h.state.beacon, 9)


def test_invalid_checkpoint_of_a_future_epoch():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    with pytest.raises(AttestationError):
        get_checkpoint_root(h.state.beacon, 1)


def test_epoch_transition_is_pure():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.propose(1)
    before = h.state.beacon
    after = process_epoch(before, 60)
    assert h.state.beacon is before and after.epoch == before.epoch + 1
    assert before.epoch == 0


def test_the_state_keeps_only_recent_checkpoint_roots():
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.propose(1)
    h.propose(8 * 40)  # forty empty epochs: the state does not grow with them
    beacon = h.state.beacon
    assert beacon.epoch == 40 and len(beacon.checkpoint_roots) == 4
    assert get_checkpoint_root(beacon, 40) == h.state.tip_hash  # the block sits on the epoch's first slot
    assert get_checkpoint_root(beacon, 39) == h.state.hashes[1]  # empty epochs take the latest block before
    with pytest.raises(AttestationError):
        get_checkpoint_root(beacon, 36)
