"""Proposer selection: phase0's compute_shuffled_index and compute_proposer_index, and their seed.

Spec: ethereum/consensus-specs specs/phase0/beacon-chain.md (compute_shuffled_index,
compute_proposer_index, get_seed, get_beacon_proposer_index). Shuffle vectors: Prysm's
shuffle_test.go (see tests/vectors.py).

The statistical tests use fixed seeds (slot numbers), so they are deterministic; their
bound is the chi-square critical value at ALPHA, computed below rather than copied.
"""

import hashlib
import math
from collections import Counter
from fractions import Fraction

import pytest

from chain.errors import EncodingError, ProposerSelectionError
from chain.pos.proposer import (
    DEFAULT_MAX_EFFECTIVE_BALANCE_POINTS,
    DOMAIN_BEACON_PROPOSER,
    MAX_RANDOM_BYTE,
    _Shuffle,
    compute_proposer_index,
    compute_proposer_index_at_slot,
    compute_proposer_seed,
    compute_seed_mix_epoch,
    compute_shuffled_index,
    explain_proposer_draw,
    get_seed,
)
from tests.vectors import PRYSM_SHUFFLE_LIST_CASES

MAX = DEFAULT_MAX_EFFECTIVE_BALANCE_POINTS
SLOTS_PER_EPOCH = 8
MIX = hashlib.sha256(b"checkpoint block").digest()
ALPHA = 0.001
FAIRNESS_DRAWS = 20_000


def seed(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "little")).digest()


# --- chi-square, from first principles ----------------------------------------


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square(df), df a positive integer.

    Q(x; 1) = erfc(sqrt(x/2)), Q(x; 2) = exp(-x/2), and
    Q(x; k + 2) = Q(x; k) + (x/2)^(k/2) exp(-x/2) / Gamma(k/2 + 1).
    """
    q = math.erfc(math.sqrt(x / 2)) if df % 2 else math.exp(-x / 2)
    for k in range(2 - df % 2, df - 1, 2):
        q += math.exp((k / 2) * math.log(x / 2) - x / 2 - math.lgamma(k / 2 + 1))
    return q


def chi2_critical(df: int, alpha: float = ALPHA) -> float:
    """The x with P(X >= x) = alpha, by bisection (the survival function falls as x grows)."""
    low, high = 0.0, 1_000.0
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if chi2_sf(middle, df) > alpha else (low, middle)
    return (low + high) / 2


def chi2_statistic(counts: dict, expected_shares: dict, draws: int) -> float:
    return sum((counts.get(k, 0) - draws * share) ** 2 / (draws * share) for k, share in expected_shares.items())


@pytest.mark.parametrize(
    "df, critical",
    # Upper critical values at alpha = 0.001, NIST/SEMATECH e-Handbook of Statistical Methods, table 1.3.6.7.4.
    [(1, 10.828), (2, 13.816), (3, 16.266), (4, 18.467), (9, 27.877), (10, 29.588)],
)
def test_chi_square_bound_matches_the_published_table(df, critical):
    assert chi2_critical(df) == pytest.approx(critical, abs=1e-3)


# --- compute_shuffled_index ---------------------------------------------------


@pytest.mark.parametrize("seed_hex, shuffled", PRYSM_SHUFFLE_LIST_CASES)
def test_prysm_shuffle_vectors(seed_hex, shuffled):
    seed_bytes = bytes.fromhex(seed_hex)
    ours = [None] * len(shuffled)
    for i in range(len(shuffled)):
        ours[compute_shuffled_index(i, len(shuffled), seed_bytes)] = i
    assert ours == shuffled


@pytest.mark.parametrize("count", [1, 2, 3, 17, 255, 256, 257, 700])
def test_shuffle_is_a_permutation_and_the_fast_path_agrees(count):
    fast = _Shuffle(seed(count), count)
    spec = [compute_shuffled_index(i, count, seed(count)) for i in range(count)]
    assert sorted(spec) == list(range(count))
    assert [fast.index(i) for i in range(count)] == spec


def test_invalid_shuffle_inputs():
    with pytest.raises(ProposerSelectionError, match="outside 0..9"):
        compute_shuffled_index(10, 10, seed(0))
    with pytest.raises(ProposerSelectionError, match="outside"):
        compute_shuffled_index(-1, 10, seed(0))
    with pytest.raises(ProposerSelectionError, match="32 bytes"):
        compute_shuffled_index(0, 10, b"short")


# --- compute_proposer_index ---------------------------------------------------


def spec_compute_proposer_index(indices, balances, seed_bytes, max_effective_balance):
    """The spec's loop, transcribed line for line, as a reference for the optimized one."""
    i = 0
    total = len(indices)
    while True:
        candidate_index = indices[compute_shuffled_index(i % total, total, seed_bytes)]
        random_byte = hashlib.sha256(seed_bytes + (i // 32).to_bytes(8, "little")).digest()[i % 32]
        if balances[candidate_index] * MAX_RANDOM_BYTE >= max_effective_balance * random_byte:
            return candidate_index
        i += 1


@pytest.mark.parametrize("case", range(40))
def test_matches_the_spec_loop(case):
    balances = [1 + (case * 7 + 13 * v) % MAX for v in range(12)]
    indices = [v for v in range(12) if (case + v) % 3]
    assert compute_proposer_index(indices, balances, seed(case), MAX) == spec_compute_proposer_index(
        indices, balances, seed(case), MAX
    )


def test_single_validator_always_proposes():
    assert {compute_proposer_index([4], [0, 0, 0, 0, 1], seed(s), MAX) for s in range(50)} == {4}


def test_at_the_cap_the_first_shuffled_candidate_is_taken():
    # effective_balance == MAX accepts every random byte: the draw is the shuffle's position 0.
    indices = [3, 5, 8, 13]
    balances = [MAX] * 14
    for s in range(20):
        assert compute_proposer_index(indices, balances, seed(s), MAX) == indices[compute_shuffled_index(0, 4, seed(s))]


def test_acceptance_boundary_is_inclusive():
    # At the cap 32 * 255 >= 32 * 255: even the highest random byte accepts the first candidate.
    n = next(n for n in range(10_000) if hashlib.sha256(seed(n) + bytes(8)).digest()[0] == MAX_RANDOM_BYTE)
    assert compute_proposer_index([0, 1, 2], [MAX] * 3, seed(n), MAX) == compute_shuffled_index(0, 3, seed(n))


def test_deterministic():
    balances = [32, 20, 9, 31]
    draws = [compute_proposer_index(range(4), balances, seed(s), MAX) for s in range(30)]
    assert draws == [compute_proposer_index(range(4), balances, seed(s), MAX) for s in range(30)]
    assert len(set(draws)) > 1


@pytest.mark.parametrize(
    "indices, balances, message",
    [
        ([], [32], "no active validators"),
        ([0, 1], [32, 0], "effective balance 0"),
        ([0], [33], "effective balance 33"),
        ([0, 2], [32, 32], "not in the registry"),
    ],
)
def test_invalid_candidates(indices, balances, message):
    with pytest.raises(ProposerSelectionError, match=message):
        compute_proposer_index(indices, balances, seed(0), MAX)


def test_invalid_cap_and_seed():
    with pytest.raises(ProposerSelectionError, match="at least 1"):
        compute_proposer_index([0], [1], seed(0), 0)
    with pytest.raises(ProposerSelectionError, match="32 bytes"):
        compute_proposer_index([0], [1], b"", MAX)


# --- seeds and the draw's inputs --------------------------------------------


def test_seed_formulas():
    assert get_seed(5, MIX) == hashlib.sha256(DOMAIN_BEACON_PROPOSER + (5).to_bytes(8, "little") + MIX).digest()
    epoch_seed = get_seed(5, MIX)
    assert compute_proposer_seed(epoch_seed, 43) == hashlib.sha256(epoch_seed + (43).to_bytes(8, "little")).digest()
    assert [compute_seed_mix_epoch(e) for e in (0, 1, 2, 9)] == [0, 0, 1, 8]


def test_invalid_seed_inputs():
    with pytest.raises(ProposerSelectionError, match="32 bytes"):
        get_seed(1, b"short")
    with pytest.raises(EncodingError, match="64 bits"):
        compute_proposer_seed(seed(0), -1)


def test_explained_draw_can_be_redone_by_hand():
    balances = [32, 4, 2, 1, 3]
    for slot in range(40):
        draw = explain_proposer_draw(slot, SLOTS_PER_EPOCH, MIX, [1, 2, 3, 4], balances, MAX)
        assert draw.proposer == compute_proposer_index_at_slot(slot, SLOTS_PER_EPOCH, MIX, [1, 2, 3, 4], balances, MAX)
        assert draw.epoch == slot // SLOTS_PER_EPOCH and draw.mix_epoch == compute_seed_mix_epoch(draw.epoch)
        assert draw.seed == compute_proposer_seed(get_seed(draw.epoch, MIX), slot)
        assert draw.total_effective_balance == 10 and draw.candidates == (1, 2, 3, 4)
        assert [a.accepted for a in draw.attempts] == [False] * (len(draw.attempts) - 1) + [True]
        for a in draw.attempts:
            block = hashlib.sha256(draw.seed + (a.attempt // 32).to_bytes(8, "little")).digest()
            assert a.random_byte == block[a.attempt % 32]
            assert a.accepted == (balances[a.candidate] * 255 >= MAX * a.random_byte)
    # Low balances against a cap of 32 are rejected most of the time: some draws take several attempts.
    assert max(len(explain_proposer_draw(s, 8, MIX, [1, 2, 3, 4], balances, MAX).attempts) for s in range(40)) > 3


# --- fairness -----------------------------------------------------------------


def draw_counts(indices, balances, draws):
    return Counter(
        compute_proposer_index_at_slot(slot, SLOTS_PER_EPOCH, MIX, indices, balances, MAX) for slot in range(draws)
    )


@pytest.fixture(scope="module")
def at_the_cap():
    """Ten validators at the cap, as Ethereum's are; four members own 1, 2, 3 and 4 of them."""
    owners = ["ann"] + ["ben"] * 2 + ["cat"] * 3 + ["dan"] * 4
    return owners, draw_counts(range(10), [MAX] * 10, FAIRNESS_DRAWS)


def test_each_validator_proposes_its_share_of_stake(at_the_cap):
    _, counts = at_the_cap
    statistic = chi2_statistic(counts, {v: Fraction(1, 10) for v in range(10)}, FAIRNESS_DRAWS)
    assert statistic < chi2_critical(df=9), statistic


def test_each_member_proposes_its_share_of_stake(at_the_cap):
    owners, counts = at_the_cap
    by_member = Counter()
    for validator, n in counts.items():
        by_member[owners[validator]] += n
    stake_share = {"ann": Fraction(1, 10), "ben": Fraction(2, 10), "cat": Fraction(3, 10), "dan": Fraction(4, 10)}
    statistic = chi2_statistic(by_member, stake_share, FAIRNESS_DRAWS)
    assert statistic < chi2_critical(df=3), statistic
    # The test has the power to fail: the same draws refute equal shares per member.
    equal = {m: Fraction(1, 4) for m in stake_share}
    assert chi2_statistic(by_member, equal, FAIRNESS_DRAWS) > chi2_critical(df=3)


def phase0_shares(balances, max_effective_balance):
    """Exact proposal shares of phase0's rule, for a uniformly random shuffle.

    A candidate is accepted with p = (floor(eb * 255 / MAX) + 1) / 256; candidates are
    tried in one shuffled order, repeated until one is accepted.  Validator v wins
    with probability p_v * E[prod over those before v of (1 - p_u)] / (1 - prod(1 - p)),
    and with uniform arrival times the expectation is the integral over t in [0, 1]
    of prod over u != v of (1 - p_u t).
    """
    p = [Fraction(b * MAX_RANDOM_BYTE // max_effective_balance + 1, 256) for b in balances]
    nobody = math.prod((1 - q for q in p), start=Fraction(1))
    shares = []
    for v, p_v in enumerate(p):
        polynomial = [Fraction(1)]
        for u, p_u in enumerate(p):
            if u != v:
                polynomial = [a - b * p_u for a, b in zip(polynomial + [0], [0] + polynomial, strict=True)]
        integral = sum(c / (k + 1) for k, c in enumerate(polynomial))
        shares.append(p_v * integral / (1 - nobody))
    assert sum(shares) == 1
    return shares


def test_phase0_rule_below_the_cap_favours_larger_balances():
    # Acceptance is exactly eb / 32 for whole points, yet the one shuffled order gives the
    # first candidate the first chance: 32 and 16 points propose 3:1, not 2:1.
    assert phase0_shares([32, 16], MAX) == [Fraction(3, 4), Fraction(1, 4)]


@pytest.mark.parametrize("balances", [[32, 16], [32, 24, 16, 8, 32]])
def test_draws_follow_the_phase0_distribution_below_the_cap(balances):
    draws = 6_000
    counts = draw_counts(range(len(balances)), balances, draws)
    exact = dict(enumerate(phase0_shares(balances, MAX)))
    statistic = chi2_statistic(counts, exact, draws)
    assert statistic < chi2_critical(df=len(balances) - 1), statistic
    stake = {v: Fraction(b, sum(balances)) for v, b in enumerate(balances)}
    # ...and measurably not the stake shares: what a larger cap with unequal stakes would give.
    assert chi2_statistic(counts, stake, draws) > chi2_critical(df=len(balances) - 1)
