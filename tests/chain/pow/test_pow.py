"""Difficulty retargeting: Bitcoin Core's pow_tests, then our per-server parameters."""

import pytest

from chain.consensus.transition import process_block
from chain.errors import BadDifficultyBitsError, CheckProofOfWorkError
from chain.params import BITCOIN_MAINNET, PLAYGROUND, REGTEST, ChainParams
from chain.pow.compact import compute_block_work, decode_compact, encode_compact
from chain.pow.difficulty import (
    check_expected_bits,
    check_proof_of_work,
    compute_calibrated_bits,
    compute_expected_bits,
    compute_median_time_past,
    compute_next_work_required,
    explain_retarget,
)
from tests.chainkit import GENESIS_TIME, key, mine, new_chain, solve
from tests.vectors import POW_TESTS


@pytest.mark.parametrize("name,first_time,last_time,last_bits,expected", POW_TESTS, ids=[c[0] for c in POW_TESTS])
def test_bitcoin_core_pow_tests(name, first_time, last_time, last_bits, expected):
    assert compute_next_work_required(last_bits, first_time, last_time, BITCOIN_MAINNET) == expected


def test_playground_retarget_window_and_spacing():
    assert PLAYGROUND.retarget_window_blocks == 10
    assert PLAYGROUND.target_spacing_s == 60
    assert PLAYGROUND.target_timespan_s == 600


# The playground's rules before issue 9 item 12: no early retarget, no rescale for a new block time.
FULL_WINDOW_RULE = PLAYGROUND.evolve(early_retarget=False, rescale_on_spacing_change=False)
# Bitcoin Core's retarget rule on the playground's numbers: one interval short of the window.
CORE_RULE = FULL_WINDOW_RULE.evolve(retarget_full_window=False)


def _chain_with_spacing(spacing_s: int, blocks: int, params=PLAYGROUND):
    bits = encode_compact(params.pow_limit >> 8)
    state = new_chain(params, bits=bits)
    miner = key("miner").public_key
    for i in range(1, blocks + 1):
        mine(state, miner, time=GENESIS_TIME + i * spacing_s)
    return state


def test_bits_stay_within_a_window():
    state = _chain_with_spacing(30, 9)
    assert {h.bits for h in state.headers} == {state.headers[0].bits}


def test_fast_blocks_shrink_the_target_at_the_window_boundary_core_rule():
    state = _chain_with_spacing(30, 9, CORE_RULE)  # the next block is height 10: a retarget
    old = state.tip.bits
    new = compute_expected_bits(state.headers, CORE_RULE)
    # 9 intervals of 30 s measured (Core's off-by-one) against 600 s planned.
    expected = encode_compact(decode_compact(old).value * 270 // 600)
    assert new == expected
    explanation = explain_retarget(state.headers, CORE_RULE)
    assert explanation is not None
    assert explanation.sentence() == (
        "At height 10, blocks came 55% faster than the target, so the target shrank by 55% (mining got harder)."
    )


def test_the_playground_measures_every_interval_of_its_window():
    """Issue 9: Core's one-interval-short window is an 11% bias over 10 blocks (blocks settled at
    ~67 s, not the advertised minute). The playground compares what it measures with what that
    stretch should have taken: 9 intervals since genesis at the first retarget, 10 after."""
    state = _chain_with_spacing(30, 9)
    old = state.tip.bits
    new = compute_expected_bits(state.headers, PLAYGROUND)
    assert new == encode_compact(decode_compact(old).value * 270 // 540)  # 9 intervals of 30 s against 9 × 60 s
    assert explain_retarget(state.headers, PLAYGROUND).sentence() == (
        "At height 10, blocks came 50% faster than the target, so the target shrank by 50% (mining got harder)."
    )
    later = _chain_with_spacing(60, 19)  # exactly on time: the second retarget keeps the target
    assert compute_expected_bits(later.headers, PLAYGROUND) == later.tip.bits
    assert explain_retarget(later.headers, PLAYGROUND).actual_timespan_s == 600


def _settled_spacing(params, rate: int, blocks: int = 300) -> float:
    """Blocks found after exactly the work their difficulty asks for at ``rate`` hashes a second:
    the average spacing over the last 100, once retargets have settled."""
    from chain.pow.compact import compute_target
    from chain.pow.header import BlockHeader

    bits = compute_calibrated_bits(rate, params)
    headers = [BlockHeader(1, bytes(32), bytes(32), GENESIS_TIME, bits, 0)]
    for _ in range(blocks):
        bits = compute_expected_bits(headers, params)
        interval = compute_block_work(compute_target(bits, params.pow_limit)) // rate
        headers.append(BlockHeader(1, bytes(32), bytes(32), headers[-1].time + interval, bits, 0))
    return (headers[-1].time - headers[-101].time) / 100


def test_a_chain_at_exactly_its_assumed_hash_rate_settles_at_the_target_spacing():
    rate = 1_400_000
    playground = _settled_spacing(PLAYGROUND, rate)
    assert abs(playground - 60) <= 60 * 2 / 100, playground
    # Core's rule on the same numbers settles about 11% slow (60 × 10/9): the bias this avoids.
    assert _settled_spacing(CORE_RULE, rate) > 60 * 1.08


def test_old_parameters_read_back_byte_for_byte():
    """Chains created before the flag commit to parameters without it: they keep Core's rule, and
    their genesis commitment (over the parameters' JSON) still matches."""
    old = CORE_RULE.to_json()
    assert "retarget_full_window" not in old
    assert ChainParams.from_json(old) == CORE_RULE and ChainParams.from_json(old).to_json() == old
    assert '"retarget_full_window":true' in PLAYGROUND.to_json()


def test_slow_blocks_grow_the_target_clamped_at_four_times():
    state = _chain_with_spacing(600, 9, FULL_WINDOW_RULE)
    new = compute_expected_bits(state.headers, FULL_WINDOW_RULE)
    assert decode_compact(new).value == decode_compact(encode_compact(decode_compact(state.tip.bits).value * 4)).value


def test_target_never_exceeds_pow_limit():
    state = new_chain(PLAYGROUND)  # genesis already at the limit
    miner = key("miner").public_key
    for i in range(1, 10):
        mine(state, miner, time=GENESIS_TIME + i * 6000)
    assert decode_compact(compute_expected_bits(state.headers, PLAYGROUND)).value <= PLAYGROUND.pow_limit


def test_regtest_never_retargets():
    state = new_chain(REGTEST)
    miner = key("miner").public_key
    for i in range(1, 25):
        mine(state, miner, time=GENESIS_TIME + i)
    assert {h.bits for h in state.headers} == {state.headers[0].bits}


def test_median_time_past_of_eleven():
    state = new_chain(REGTEST)
    miner = key("m").public_key
    for i in range(1, 15):
        mine(state, miner, time=GENESIS_TIME + 100 * i)
    assert compute_median_time_past(state.headers) == GENESIS_TIME + 100 * 9


def test_calibrated_bits_give_one_spacing_of_work():
    rate = 700_000
    bits = compute_calibrated_bits(rate, PLAYGROUND)
    work = compute_block_work(decode_compact(bits).value)
    expected = rate * PLAYGROUND.target_spacing_s
    # Compact rounding makes the target at most 2^-15 smaller: work within 0.01%.
    assert expected <= work <= expected * 10001 // 10000


def test_calibration_is_capped_at_the_pow_limit():
    assert decode_compact(compute_calibrated_bits(0, PLAYGROUND)).value <= PLAYGROUND.pow_limit


def test_invalid_bits_not_equal_to_retarget():
    state = _chain_with_spacing(30, 9)
    template_bits = state.tip.bits  # stale difficulty at a retarget height
    header = state.tip.__class__(1, state.tip_hash, bytes(32), state.tip.time + 30, template_bits, 0)
    with pytest.raises(BadDifficultyBitsError, match="should be"):
        check_expected_bits(header, state.headers, PLAYGROUND)


def test_invalid_block_with_wrong_bits_is_refused_by_process_block():
    from dataclasses import replace

    from chain.consensus.templates import build_template

    state = _chain_with_spacing(30, 9)
    template = build_template(state, key("m").public_key, [], state.tip.time + 30)
    wrong = replace(template, header=replace(template.header, bits=state.tip.bits))
    block = solve(wrong, PLAYGROUND)
    with pytest.raises(BadDifficultyBitsError):
        process_block(state, block, state.tip.time + 30)


def test_invalid_hash_above_target():
    with pytest.raises(CheckProofOfWorkError, match="above the target"):
        check_proof_of_work(b"\xff" * 32, 0x1D00FFFF, BITCOIN_MAINNET)


@pytest.mark.parametrize("bits", [0x04923456, 0xFF123456, 0x00000000, 0x1D01FFFF])
def test_invalid_unusable_bits(bits):
    with pytest.raises(CheckProofOfWorkError):
        check_proof_of_work(bytes(32), bits, BITCOIN_MAINNET)
