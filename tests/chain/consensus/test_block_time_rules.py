"""Issue 9 item 12: a new block time takes effect from the next block, and a chain whose first
blocks are far off target recalibrates within a few blocks instead of a whole retarget window."""

import os

import pytest

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.consensus.rule_changes import compute_kept_params
from chain.consensus.state import ChainState, compute_next_bits
from chain.consensus.templates import build_template
from chain.consensus.transition import process_block, replay_chain
from chain.consensus.verify import verify_chain
from chain.errors import BadDifficultyBitsError
from chain.events import DIFFICULTY_CHANGED
from chain.params import BITCOIN_MAINNET, PLAYGROUND, ChainParams
from chain.pow.compact import compute_block_work, compute_target, decode_compact, encode_compact
from chain.pow.difficulty import SpacingChange, compute_calibrated_bits, compute_expected_bits, compute_rescaled_bits
from chain.pow.header import BlockHeader
from tests.chainkit import CHAIN_ID, GENESIS_TIME, genesis_block, key, mine, new_chain, solve

MINER = key("miner").public_key
# The playground's rules before this item: a new block time waited for the next retarget.
OLD_RULE = PLAYGROUND.evolve(early_retarget=False, rescale_on_spacing_change=False)
EASY_BITS = encode_compact(PLAYGROUND.pow_limit >> 8)


def _commit(state: ChainState, proposed: ChainParams, time: int):
    """Mine the block that commits to ``proposed``; returns its effects."""
    block = solve(build_template(state, MINER, [], time, proposed_params=proposed), state.params)
    effects = process_block(state, block, time, proposed)
    state.apply(block, effects)
    return effects


def _chain_with_block_time_change(params: ChainParams, new_spacing_s: int) -> ChainState:
    """Blocks 1-3 a minute apart, block 4 commits to ``new_spacing_s``."""
    state = new_chain(params, bits=EASY_BITS)
    for i in range(1, 4):
        mine(state, MINER, time=GENESIS_TIME + 60 * i)
    _commit(state, state.params.evolve(target_spacing_s=new_spacing_s), GENESIS_TIME + 240)
    return state


# --- (a) the block time rule -------------------------------------------------------------


def test_a_new_block_time_rescales_the_target_from_the_next_block():
    state = _chain_with_block_time_change(PLAYGROUND, 120)
    assert state.params.target_spacing_s == 120 and state.height == 4
    committing_bits = state.tip.bits
    assert committing_bits == EASY_BITS  # the committing block is still judged by the old rules
    # Block 5, the first under the new rules: twice the target (half the work) for twice the time.
    expected = encode_compact(decode_compact(committing_bits).value * 2)
    template = build_template(state, MINER, [], GENESIS_TIME + 360)
    assert template.header.bits == expected == compute_next_bits(state)
    block = solve(template, state.params)
    effects = process_block(state, block, GENESIS_TIME + 360)
    sentences = [e.payload["sentence"] for e in effects.events if e.kind == DIFFICULTY_CHANGED]
    # 99%, not 100: the compact encoding drops the doubled target's last bits.
    assert sentences == [
        "At height 5, the block time went from 60 s to 120 s, so the target grew by 99% (mining got easier)."
    ]
    state.apply(block, effects)
    # Block 6 keeps it: the rescale is for the first block of the new spacing only.
    assert compute_next_bits(state) == expected


def test_a_block_with_the_old_target_after_a_block_time_change_is_refused():
    from dataclasses import replace

    state = _chain_with_block_time_change(PLAYGROUND, 30)
    template = build_template(state, MINER, [], GENESIS_TIME + 300)
    stale = solve(replace(template, header=replace(template.header, bits=state.tip.bits)), state.params)
    with pytest.raises(BadDifficultyBitsError, match="at height 5 should be"):
        process_block(state, stale, GENESIS_TIME + 300)


def test_the_rescaled_target_is_capped_at_the_pow_limit():
    near_limit = encode_compact(PLAYGROUND.pow_limit // 2)
    bits = compute_rescaled_bits(near_limit, 30, 600, PLAYGROUND)
    assert decode_compact(bits).value <= PLAYGROUND.pow_limit


def test_the_next_retarget_measures_only_the_blocks_of_the_new_block_time():
    """Blocks 5-9 come exactly every 120 s, as the new rule asks: the retarget at block 10 keeps the
    target.  Measured from genesis (the old rule), the one-minute blocks 1-4 would look fast."""
    state = _chain_with_block_time_change(PLAYGROUND, 120)
    for i in range(1, 6):
        mine(state, MINER, time=GENESIS_TIME + 240 + 120 * i)
    assert state.height == 9
    assert compute_next_bits(state) == state.tip.bits
    # The same headers judged from genesis: 9 intervals took 840 s against 9 x 120 s planned.
    from_genesis = compute_expected_bits(state.headers, state.params, None)
    assert decode_compact(from_genesis).value < decode_compact(state.tip.bits).value


def test_chains_created_before_the_rule_keep_their_difficulty_until_the_retarget():
    state = _chain_with_block_time_change(OLD_RULE, 120)
    assert compute_next_bits(state) == state.tip.bits


def test_regtest_keeps_its_difficulty_through_a_block_time_change():
    regtest = PLAYGROUND.evolve(no_retargeting=True)
    state = _chain_with_block_time_change(regtest, 120)
    assert compute_next_bits(state) == state.tip.bits


def test_spacing_change_at_reads_the_committed_history():
    state = _chain_with_block_time_change(PLAYGROUND, 120)
    assert state.spacing_change_at(4) is None  # the committing block itself: old rules
    assert state.spacing_change_at(5) == SpacingChange(5, 60)
    mine(state, MINER, time=GENESIS_TIME + 360)
    _commit(state, state.params.evolve(initial_subsidy_points=7), GENESIS_TIME + 480)
    # A change of another rule is no spacing change: the latest is still block 5's.
    assert state.spacing_change_at(state.height + 1) == SpacingChange(5, 60)


def test_verify_and_replay_agree_with_block_building():
    blocks = []
    replayed = new_chain(PLAYGROUND, bits=EASY_BITS)
    for i in range(1, 4):
        blocks.append(mine(replayed, MINER, time=GENESIS_TIME + 60 * i))
    faster = replayed.params.evolve(target_spacing_s=30)
    block = solve(build_template(replayed, MINER, [], GENESIS_TIME + 240, proposed_params=faster), PLAYGROUND)
    replayed.apply(block, process_block(replayed, block, GENESIS_TIME + 240, faster))
    blocks.append(block)
    for i in range(1, 12):  # through the rescale, the early checks and the retarget at block 10
        blocks.append(mine(replayed, MINER, time=GENESIS_TIME + 240 + 30 * i))
    assert replayed.headers[5].bits != replayed.headers[4].bits
    all_blocks = [genesis_block(PLAYGROUND, bits=EASY_BITS), *blocks]
    verified, report = verify_chain(PLAYGROUND, CHAIN_ID, all_blocks, GENESIS_TIME + 10_000,
                                    param_changes=[(4, faster)])
    assert verified.tip_hash == replayed.tip_hash and report.blocks == 16
    again = replay_chain(PLAYGROUND, CHAIN_ID, all_blocks, param_changes=[(4, faster)])
    assert compute_next_bits(again) == compute_next_bits(replayed)


async def test_a_restarted_node_builds_and_verifies_the_rescaled_block(tmp_path):
    path = tmp_path / "blocktime.sqlite3"
    clock = iter(range(1_800_000_000, 1_900_000_000, 7))

    async def open_node():
        store = await Store.open(path)
        node = Node(store, clock=lambda: float(next(clock)), randomness=os.urandom, master_key=bytes(32))
        await node.load()
        return node

    node = await open_node()
    await node.create_chain(1, PLAYGROUND, initial_bits=EASY_BITS)
    miner = await node.address(1, "m")
    await node.submit_block(1, solve(node.template(1, miner), PLAYGROUND))
    slower = node.chain(1).state.params.evolve(target_spacing_s=240)
    await node.propose_params(1, slower)
    await node.submit_block(1, solve(node.template(1, miner), PLAYGROUND))  # block 2 commits
    await node.store.close()

    node = await open_node()  # startup resumes from the store: the history must be there
    template = node.template(1, miner)
    assert template.header.bits == compute_rescaled_bits(node.chain(1).state.tip.bits, 60, 240, PLAYGROUND)
    await node.submit_block(1, solve(template, slower))
    report = await node.verify(1)
    assert report.blocks == 4
    await node.store.close()


# --- (b) the early retarget --------------------------------------------------------------


def _simulated_spacings(params: ChainParams, calibrated_rate: int, real_rate: int, blocks: int) -> list[int]:
    """Each block found after exactly the work its difficulty asks for at ``real_rate`` hashes a
    second, on a chain calibrated for ``calibrated_rate``: the seconds each block took."""
    bits = compute_calibrated_bits(calibrated_rate, params)
    headers = [BlockHeader(1, bytes(32), bytes(32), GENESIS_TIME, bits, 0)]
    for _ in range(blocks):
        bits = compute_expected_bits(headers, params)
        interval = compute_block_work(compute_target(bits, params.pow_limit)) // real_rate
        headers.append(BlockHeader(1, bytes(32), bytes(32), headers[-1].time + interval, bits, 0))
    return [b.time - a.time for a, b in zip(headers, headers[1:], strict=False)]


@pytest.mark.parametrize("slowdown", [3, 8])
def test_a_chain_three_times_slower_than_calibrated_reaches_the_target_within_a_few_blocks(slowdown):
    """Issue 9: on a busy host the first blocks took 1.3-3.6 minutes against one; the first retarget
    was 10 blocks away."""
    rate = 1_400_000
    spacings = _simulated_spacings(PLAYGROUND, rate, rate // slowdown, 20)
    assert spacings[0] >= 60 * slowdown * 95 // 100  # the first block cannot know better
    within = [i + 1 for i, s in enumerate(spacings) if abs(s - 60) <= 12]
    assert within and within[0] <= 4, spacings
    assert all(abs(s - 60) <= 12 for s in spacings[4:]), spacings  # and it stays there
    # The old rule: every block of the first window takes the full slowdown.
    old = _simulated_spacings(OLD_RULE, rate, rate // slowdown, 9)
    assert all(s >= 60 * slowdown * 95 // 100 for s in old), old


def test_a_chain_five_times_faster_than_calibrated_recalibrates_too():
    rate = 1_400_000
    spacings = _simulated_spacings(PLAYGROUND, rate, rate * 5, 12)
    assert spacings[0] == 12 and all(abs(s - 60) <= 12 for s in spacings[1:]), spacings
    # Three times faster is within the fast bound (a quarter): the regular retarget at block 10 fixes it.
    assert _simulated_spacings(PLAYGROUND, rate, rate * 3, 9) == [20] * 9


def test_a_chain_on_target_never_retargets_early():
    rate = 1_400_000
    bits = compute_calibrated_bits(rate, PLAYGROUND)
    headers = [BlockHeader(1, bytes(32), bytes(32), GENESIS_TIME, bits, 0)]
    # Noisy, but never more than twice slower or four times faster than the pace so far.
    for spacing in (16, 100, 110, 45, 60, 70, 50, 90, 35):
        assert compute_expected_bits(headers, PLAYGROUND) == bits
        headers.append(BlockHeader(1, bytes(32), bytes(32), headers[-1].time + spacing, bits, 0))


def test_the_early_retarget_is_bounded_like_core():
    state = new_chain(PLAYGROUND, bits=EASY_BITS)
    mine(state, MINER, time=GENESIS_TIME + 6_000)  # a hundred times slower than planned
    new = compute_next_bits(state)
    assert decode_compact(new).value == decode_compact(encode_compact(decode_compact(EASY_BITS).value * 4)).value


def test_no_early_retarget_after_the_first_window():
    state = new_chain(PLAYGROUND, bits=EASY_BITS)
    for i in range(1, 12):
        mine(state, MINER, time=GENESIS_TIME + 60 * i)
    bits = state.tip.bits
    for _ in range(1, 4):
        mine(state, MINER, time=state.tip.time + 600)  # ten times slow: waits for block 20
        assert state.tip.bits == bits


def test_an_early_retarget_is_announced():
    state = new_chain(PLAYGROUND, bits=EASY_BITS)
    mine(state, MINER, time=GENESIS_TIME + 180)
    block = mine(state, MINER, time=GENESIS_TIME + 240, apply=False)
    effects = process_block(state, block, GENESIS_TIME + 240)
    [sentence] = [e.payload["sentence"] for e in effects.events if e.kind == DIFFICULTY_CHANGED]
    assert sentence.startswith("At height 2 (early retarget), blocks came 200% slower than the target")


def test_new_flags_are_left_out_of_old_parameters():
    """Chains stored before the flags commit to parameters without them (byte for byte)."""
    for params in (OLD_RULE, BITCOIN_MAINNET):
        text = params.to_json()
        assert "early_retarget" not in text and "rescale_on_spacing_change" not in text
        assert ChainParams.from_json(text) == params and ChainParams.from_json(text).to_json() == text
    assert '"early_retarget":true' in PLAYGROUND.to_json()
    assert '"rescale_on_spacing_change":true' in PLAYGROUND.to_json()
    with pytest.raises(Exception, match="true or false"):
        PLAYGROUND.evolve(early_retarget=1)


# --- (c) what a reset keeps ----------------------------------------------------------------


def test_a_reset_keeps_the_changeable_rules_on_top_of_todays_defaults():
    """A chain created before the flags keeps its block time and reward, and gets the new rules."""
    old_chain = OLD_RULE.evolve(target_spacing_s=30, initial_subsidy_points=7, retarget_window_blocks=20)
    kept = compute_kept_params(PLAYGROUND, old_chain)
    assert kept == PLAYGROUND.evolve(target_spacing_s=30, initial_subsidy_points=7, retarget_window_blocks=20)
    assert compute_kept_params(PLAYGROUND, PLAYGROUND) == PLAYGROUND
