"""Announcements: every event kind the engine emits renders, from payloads the engine itself produced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chain.consensus.block import Block
from chain.consensus.duties import get_slot_proposer
from chain.consensus.templates import build_template
from chain.consensus.transition import process_block
from chain.events import (
    BLOCK_MINED,
    CHECKPOINT_FINALIZED,
    CHECKPOINT_JUSTIFIED,
    EPOCH_REWARDS,
    INACTIVITY_LEAK_ENDED,
    INACTIVITY_LEAK_STARTED,
    MERGE_SCHEDULED,
    PARAMS_CHANGED,
    REWARD_PAID,
    STAKE_DEPOSITED,
    STAKE_WITHDRAWN,
    THE_MERGE,
    VALIDATOR_ACTIVATED,
    VALIDATOR_EXITED,
    VALIDATOR_SLASHED,
    VALIDATOR_WITHDRAWABLE,
    ChainEvent,
    MergeScheduled,
    StakeDeposited,
    StakeWithdrawn,
    UnknownEvent,
    decode_event,
)
from chain.pos.attestation import (
    AttestationData,
    AttesterSlashing,
    Checkpoint,
    ProposalHeader,
    ProposerSlashing,
    sign_attestation,
    sign_proposal_header,
)
from chain.pos.beacon import ConsensusConfig
from chain.pos.operations import Operations, make_voluntary_exit
from chain.pos.rewards import UNITS_PER_POINT
from cogs.embeds import RENDERERS, block_embed, event_embed, percent_from_bp, points, seconds, stake_points
from tests.chainkit import CHAIN_ID, key, solve
from tests.poskit import (
    Harness,
    mine_v2,
    new_consensus_chain,
    pos_config,
    validator_keys,
)

KEYS = validator_keys()
WALLETS = [key(f"wallet-{i}") for i in range(4)]
MINER = key("miner")
# Wallet keys -> mentions, as Services.owner_names gives them; validator 1's key too.
NAMES = {w.public_key: f"<@{100 + i}>" for i, w in enumerate(WALLETS)}
NAMES[MINER.public_key] = "<@99>"
NAMES[KEYS[1].public_key] = "<@101>"


def text(embed) -> str:
    parts = [embed.title or "", embed.description or ""]
    parts += [f"{f.name}: {f.value}" for f in embed.fields]
    return "\n".join(parts)


def render(event: ChainEvent, names=NAMES) -> str:
    embed = event_embed(event, names)
    assert len(embed) <= 6000 and embed.title
    return text(embed)


def first(events, kind) -> ChainEvent:
    return next(e for e in events if e.kind == kind)


# --- scenarios, run by the engine ---------------------------------------------------------


@pytest.fixture(scope="module")
def merge_events() -> tuple[list[ChainEvent], list[Block]]:
    """A pow chain: the miner stakes three validators, block 4 schedules the Merge at 12, then PoS blocks."""
    from chain.pos.operations import make_deposit

    state = new_consensus_chain(ConsensusConfig(mode="pow", checkpoint_interval_blocks=4))
    events: list[ChainEvent] = []
    vals = KEYS[:3]
    for _ in range(2):
        mine_v2(state, MINER.public_key)
    deposits = tuple(make_deposit(MINER, v, 32, i, CHAIN_ID) for i, v in enumerate(vals))
    block = mine_v2(state, MINER.public_key, pool=Operations(deposits=deposits), apply=False)
    effects = process_block(state, block, block.header.time)
    state.apply(block, effects)
    events += effects.events
    proposed = state.consensus.evolve(merge_at_height=12)
    now = state.tip.time + state.params.target_spacing_s
    block = solve(build_template(state, MINER.public_key, [], now, proposed_consensus=proposed), state.params)
    effects = process_block(state, block, now, None, proposed)
    state.apply(block, effects)
    events += effects.events
    while state.beacon.terminal is None:
        block = mine_v2(state, MINER.public_key, apply=False)
        effects = process_block(state, block, block.header.time)
        state.apply(block, effects)
        events += effects.events
    h = Harness(state, vals)
    block, effects = h.propose(12)
    events += effects.events
    h.run_epochs(3)
    events += h.events[1:]
    return events, h.blocks


@pytest.fixture(scope="module")
def exit_events() -> list[ChainEvent]:
    """Validator 3 exits at epoch 1, is withdrawable at epoch 3 (slot 24) and is paid out then."""
    h = Harness(new_consensus_chain(pos_config(unbonding_epochs=2, slashed_unbonding_epochs=4)), KEYS)
    h.propose(1, pool=Operations(voluntary_exits=(make_voluntary_exit(KEYS[3], 3, 0, CHAIN_ID),)))
    h.propose(8)
    h.propose(24)
    return h.events


@pytest.fixture(scope="module")
def leak_events() -> list[ChainEvent]:
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.run_epochs(7, voters=[0, 1])
    h.run_epochs(4)
    return h.events


def _vote(index, source_epoch, target_epoch, head=b"\x01" * 32):
    data = AttestationData(
        CHAIN_ID, target_epoch * 8, head, Checkpoint(source_epoch, bytes(32)), Checkpoint(target_epoch, bytes(32))
    )
    return sign_attestation(KEYS[index], data)


def _proposal(index, slot, body):
    return sign_proposal_header(KEYS[index], ProposalHeader(CHAIN_ID, slot, KEYS[index].public_key, bytes(32), body))


def slashing_event(evidence, culprit: int) -> ChainEvent:
    h = Harness(new_consensus_chain(pos_config()), KEYS)
    h.propose(1)
    slot = next(s for s in range(2, 8) if get_slot_proposer(h.state, s) != culprit)
    field = "proposer_slashings" if isinstance(evidence, ProposerSlashing) else "attester_slashings"
    _, effects = h.propose(slot, pool=Operations(**{field: (evidence,)}))
    return first(effects.events, VALIDATOR_SLASHED)


# --- each kind ---------------------------------------------------------------------------


def test_stake_deposited_names_the_member_and_the_activation_epoch(merge_events):
    events, _ = merge_events
    shown = render(first(events, STAKE_DEPOSITED))
    assert "🔒 Stake deposited" in shown
    assert "<@99> staked 32 pts: new validator #0, active from epoch 1." in shown


def test_stake_deposited_top_up():
    event = StakeDeposited(validator_index=2, pubkey=KEYS[2].public_key, wallet=WALLETS[2].public_key,
                           amount=5, top_up=True, activation_epoch=1)
    assert "<@102> added 5 pts to validator #2." in render(event)


def test_validator_activated_with_and_without_a_known_validator_key(merge_events):
    events, _ = merge_events
    activated = [e for e in events if e.kind == VALIDATOR_ACTIVATED]
    by_index = {e.payload["validator_index"]: render(e) for e in activated}
    assert "✅ Validator #1 is active" in by_index[1]
    assert "<@101> (validator #1) proposes blocks and votes from epoch 1 on." in by_index[1]
    assert "Validator #0 proposes blocks and votes from epoch 1 on." in by_index[0]


def test_merge_scheduled_and_the_merge(merge_events):
    events, _ = merge_events
    scheduled = render(first(events, MERGE_SCHEDULED))
    assert "🗓️ The Merge is scheduled" in scheduled
    assert "Block 4 committed to it: block 11 is the last proof-of-work block and block 12 the first" in scheduled
    merge = first(events, THE_MERGE)
    shown = render(merge)
    assert "🐼 The Merge" in shown
    assert f"Block 11 (`{merge.payload['terminal_hash'][:16]}…`) was the last proof-of-work block" in shown
    assert "From block 12 on, blocks come from validators" in shown
    assert "Validators: 3" in shown


def test_merge_scheduled_at_a_total_difficulty():
    event = MergeScheduled(height=5, merge_at_height=0, merge_at_total_difficulty=1_000, total_difficulty=640)
    shown = render(event)
    assert "the first block whose total difficulty reaches 1,000 is the last proof-of-work block (now 640)" in shown


def test_proof_of_stake_block_is_proposed_not_mined(merge_events):
    events, _ = merge_events
    pos = next(e for e in events if e.kind == BLOCK_MINED and e.payload.get("proof_of_stake"))
    shown = render(pos)
    assert f"🧱 Block {pos.payload['height']} proposed" in shown
    assert f"Slot {pos.payload['slot']}: validator #{pos.payload['proposer_index']} signed" in shown
    pow_block = next(e for e in events if e.kind == BLOCK_MINED and not e.payload.get("proof_of_stake"))
    assert render(pow_block).startswith(f"⛏️ Block {pow_block.payload['height']} mined")
    assert "Reward for block" in render(first(events, REWARD_PAID))
    fees = next(e for e in events if e.kind == REWARD_PAID and e.payload["height"] == pos.payload["height"])
    assert f"💰 Fees for block {pos.payload['height']}\n<@99> earned 0 pts in fees" in render(fees)


def test_checkpoints_and_epoch_rewards(merge_events):
    events, _ = merge_events
    justified = first(events, CHECKPOINT_JUSTIFIED)
    assert f"☑️ Epoch {justified.payload['epoch']} justified" in render(justified)
    assert f"checkpoint `{justified.payload['root'][:16]}…`" in render(justified)
    finalized = first(events, CHECKPOINT_FINALIZED)
    assert f"🔏 Epoch {finalized.payload['epoch']} finalized" in render(finalized)
    assert "can ever be undone" in render(finalized)
    rewards = first(events, EPOCH_REWARDS)
    shown = render(rewards)
    assert f"📈 Epoch {rewards.payload['epoch']} rewards" in shown
    assert f"Minted: {stake_points(rewards.payload['minted_units'])}" in shown
    assert "% of the active stake" in shown


def test_exit_withdrawable_and_withdrawn(exit_events):
    shown = render(first(exit_events, VALIDATOR_EXITED))
    assert "🚪 Validator #3 exited" in shown and "left: it stops validating at epoch 1" in shown
    shown = render(first(exit_events, VALIDATOR_WITHDRAWABLE))
    assert "🔓 Validator #3's stake unlocked" in shown and "from epoch 3" in shown
    withdrawn = first(exit_events, STAKE_WITHDRAWN)
    shown = render(withdrawn)
    assert f"<@103> got {withdrawn.payload['points']} pts back: validator #3's whole stake" in shown
    assert f"Dust burned: {stake_points(withdrawn.payload['dust_burned_units'])}" in shown


def test_partial_withdrawal():
    event = StakeWithdrawn(validator_index=0, address=WALLETS[0].public_key, points=2, dust_burned_units=0, full=False)
    assert "<@100> got 2 pts back from above validator #0's stake cap." in render(event)


def test_inactivity_leak_started_and_ended(leak_events):
    started = render(first(leak_events, INACTIVITY_LEAK_STARTED))
    assert "🩸 Inactivity leak started" in started and "Nothing has been finalized for 5 epochs" in started
    assert "🩹 Inactivity leak ended" in render(first(leak_events, INACTIVITY_LEAK_ENDED))
    leaking = next(e for e in leak_events if e.kind == EPOCH_REWARDS and e.payload["in_inactivity_leak"])
    assert "Inactivity leak: nothing final for" in render(leaking)


def test_double_proposal_slashing_reads_as_a_sentence():
    event = slashing_event(ProposerSlashing(_proposal(1, 812, b"\x01" * 32), _proposal(1, 812, b"\x02" * 32)), 1)
    shown = render(event)
    assert "⚔️ Validator #1 slashed" in shown
    assert "<@101> (validator #1) signed two different blocks for slot 812." in shown
    assert f"Penalty: {stake_points(event.payload['penalty_units'])}" in shown
    assert f"stake locked until epoch {event.payload['withdrawable_epoch']}" in shown


def test_double_vote_slashing_without_a_known_validator_key():
    event = slashing_event(AttesterSlashing(_vote(2, 0, 12), _vote(2, 0, 12, head=b"\x02" * 32)), 2)
    assert "Validator #2 voted twice for epoch 12." in render(event)


def test_surround_vote_slashing():
    event = slashing_event(AttesterSlashing(_vote(1, 2, 7), _vote(1, 3, 5)), 1)
    assert "<@101> (validator #1) cast a surround vote: its vote 2 → 7 surrounds its vote 3 → 5." in render(event)


def test_every_event_class_has_a_renderer():
    """An event class added to chain/events.py without a renderer here fails (the notifier would post
    its events as bare grey embeds)."""
    from chain import events

    classes = {
        v for v in vars(events).values()
        if isinstance(v, type) and issubclass(v, ChainEvent) and v not in (ChainEvent, UnknownEvent)
    }
    kinds = {v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)}
    assert classes == set(events.EVENT_TYPES.values()) and {c.kind for c in classes} == kinds
    assert classes <= set(RENDERERS), f"no renderer for {sorted(c.__name__ for c in classes - set(RENDERERS))}"


def test_an_unknown_kind_still_renders():
    event = decode_event("comet_sighted", '{"height":3,"tail":"long"}')
    assert isinstance(event, UnknownEvent)
    embed = event_embed(event, {})
    assert embed.title == "Comet sighted"
    assert "height: 3" in embed.description and "tail: long" in embed.description


def test_a_payload_that_does_not_fit_its_kind_renders_plainly():
    """A stored row of a known kind this version cannot read (here ``height`` is text) is shown as
    its kind and fields, like an unknown kind, instead of failing or being dropped."""
    event = decode_event(BLOCK_MINED, '{"hash":"00","height":"three"}')
    assert isinstance(event, UnknownEvent) and "'height'" in event.reason
    embed = event_embed(event, {})
    assert embed.title == "Block mined"
    assert "hash: 00" in embed.description and "height: three" in embed.description


def test_stake_points_is_exact():
    assert stake_points(32_000_000_000) == "32 pts"
    assert stake_points(12_345) == "0.000012345 pts"
    assert stake_points(1_500_000_000_000) == "1,500 pts"
    assert stake_points(-2_500_000_000) == "-2.5 pts"


def test_block_embed_shows_slot_proposer_and_operations_for_pos_blocks(merge_events):
    _, blocks = merge_events
    pos = blocks[0]
    shown = text(block_embed(pos, NAMES, proposer="<@101> (validator #1)"))
    assert f"Slot: {pos.seal.slot:,}" in shown and "Proposer: <@101> (validator #1)" in shown
    assert "Nonce" not in shown and "Bits" not in shown
    assert "Operations:" in shown
    with_votes = next(b for b in blocks if b.operations.attestations)
    assert f"Attestations {len(with_votes.operations.attestations)}" in text(block_embed(with_votes, NAMES))


# --- /chain proposer and /chain energy (pure embeds of cogs/explorer.py) ---------------------


def test_proposer_embed_lists_attempts_capped_and_names_the_winner():
    from chain.pos.proposer import explain_proposer_draw
    from chain.pos.rewards import UNITS_PER_POINT
    from cogs.explorer import DRAW_ATTEMPTS_SHOWN, proposer_embed

    cap = 32 * UNITS_PER_POINT
    # Stakes of one point against a 32-point cap: most attempts are rejected.
    draw = next(
        d for slot in range(64)
        if len((d := explain_proposer_draw(slot, 8, b"\x07" * 32, range(6), [UNITS_PER_POINT] * 6, cap)).attempts)
        > DRAW_ATTEMPTS_SHOWN
    )
    shown = text(proposer_embed(draw, {draw.proposer: "<@7>"}, mix_height=16))
    assert f"🎲 Proposer of slot {draw.slot}" in shown
    assert f"Validator **#{draw.proposer}** (<@7>) was drawn. Anyone can redo this draw" in shown
    assert f"`{draw.epoch_seed.hex()}`" in shown and f"`{draw.seed.hex()}`" in shown and "(block 16)" in shown
    assert "Candidates: 6 active validators" in shown and "Total effective stake: 6 pts" in shown
    first_attempt = draw.attempts[0]
    assert f"1. #{first_attempt.candidate}" in shown and "(needs ≤ 7) ❌ rejected" in shown
    assert f"…and {len(draw.attempts) - DRAW_ATTEMPTS_SHOWN} more, the last accepted" in shown
    assert f"Winner: validator #{draw.proposer}, <@7>" in shown


def test_energy_embed_compares_with_ethereums_merge():
    from chain.adapters.energy import compute_energy_report
    from cogs.explorer import energy_embed, format_energy

    report = compute_energy_report(
        2_000_000_000, 10, 40, sign_cost_ns=50_000, verify_cost_ns=120_000, milliwatts_per_core=15_000
    )
    shown = text(energy_embed(report, 15_000))
    assert "Proof of stake used **99.73% less** energy than proof of work on this chain." in shown
    assert "Proof of work: 30.0 J" in shown and "Proof of stake: 79 mJ" in shown and "× 15 W a core" in shown
    assert "Ethereum's Merge (September 2022): 99.992% less energy" in shown
    nothing = compute_energy_report(0, 1, 1, sign_cost_ns=1, verify_cost_ns=1, milliwatts_per_core=15_000)
    assert "Nothing to compare yet" in text(energy_embed(nothing, 15_000))
    assert "× 7.500 W a core" in text(energy_embed(report, 7_500))
    assert format_energy(999) == "999 mJ" and format_energy(7_200_000) == "2.00 Wh"


def test_bars_stop_at_100_percent_and_the_words_say_the_rest():
    """Issue 9: the vote bar read "150%" once every validator had voted (its goal is 2/3)."""
    from chain.adapters.beacon_status import VoteProgress
    from cogs.embeds import progress_bar
    from cogs.mining import beyond_average
    from cogs.stake import vote_progress_text

    assert progress_bar(3, 2).endswith(" 100%") and progress_bar(1, 2).endswith(" 50%")
    everyone = vote_progress_text(VoteProgress(epoch=4, attesting_units=64 * 10**9, total_active_units=64 * 10**9))
    assert "150%" not in everyone and " 100%" in everyone and "(100% of it; 2/3 is needed)" in everyone
    assert "2/3 reached" in everyone
    assert beyond_average(150, 100) == " (already 1.5× the average: each hash is a new lottery ticket)"
    assert beyond_average(90, 100) == ""


def test_a_deposit_past_the_stake_cap_is_warned_about():
    """Issue 9: an over-deposit was silently cut to the cap, and later explained as 'rewards above
    the stake cap'. The deposit's reply now says it at once."""
    from cogs.stake import over_cap_text

    assert over_cap_text(0, 32, 32) is None
    assert "8 pts above it earn nothing" in over_cap_text(0, 40, 32)
    assert "1.5 pts above it" in over_cap_text(31_500_000_000, 2, 32)  # a top-up, balance in nanopoints


# --- every kind, from the engine, through the outbox's JSON ---------------------------------


@pytest.fixture(scope="module")
def pow_events() -> list[ChainEvent]:
    """A pow chain: a rule change (block time and reward), a retarget, a balance milestone."""
    from chain.params import PLAYGROUND
    from chain.pow.compact import encode_compact
    from tests.chainkit import GENESIS_TIME, mine, new_chain

    events: list[ChainEvent] = []
    state = new_chain(PLAYGROUND, bits=encode_compact(PLAYGROUND.pow_limit >> 8))
    for i in range(1, 10):
        block = mine(state, MINER.public_key, time=GENESIS_TIME + 30 * i, apply=False)
        effects = process_block(state, block, block.header.time)
        state.apply(block, effects)
        events += effects.events
    proposed = state.params.evolve(target_spacing_s=15, initial_subsidy_points=60)
    now = GENESIS_TIME + 300
    block = solve(build_template(state, MINER.public_key, [], now, proposed_params=proposed), state.params)
    effects = process_block(state, block, now, proposed)
    state.apply(block, effects)
    return events + list(effects.events)


@pytest.fixture(scope="module")
def reorg_events() -> list[ChainEvent]:
    """A double spend's reorg (one payment reversed, one back in the mempool, by proof of work and as
    proof of stake would announce it) and finality refusing a heavier branch, work and votes: the
    scenarios of tests/chain/consensus/test_reorg_events.py, through the engine's builders."""
    from chain.consensus.reorg_events import (
        compute_head_refusal_events,
        compute_reorg_events,
        compute_tree_refusal_events,
    )
    from chain.pos.lmd_ghost import decide_head
    from tests.chain.consensus.test_reorg_events import double_spend_reorg, finality_fork, h
    from tests.chain.pos.test_lmd_ghost import finality_race, finalize_x, r

    reorg, block, returned, dropped, *_rest = double_spend_reorg()
    events = [*compute_reorg_events(reorg, [block], returned, dropped)]
    events += compute_reorg_events(reorg, [block], returned, dropped, proof_of_stake=True)[:1]
    tree, before = finality_fork()
    tree.add_block(h("b3"), h("b2"), 3, 1)
    events += compute_tree_refusal_events(tree, h("f1"), before)
    store = finalize_x(finality_race())
    events += compute_head_refusal_events(store, (), decide_head(store, r("X3")))
    return events


def reorg_names() -> dict[bytes, str]:
    from tests.chain.consensus.test_undo import ALICE, BOB, CAROL, MERCHANT

    return {ALICE.public_key: "<@1>", BOB.public_key: "<@2>", CAROL.public_key: "<@3>", MERCHANT.public_key: "<@4>"}


def test_a_reorg_reads_as_what_happened(reorg_events):
    chain_reorganized, reversed_, returned, pos_reorg = (_through_outbox(e) for e in reorg_events[:4])
    shown = render(chain_reorganized, reorg_names())
    assert "🔀 The chain reorganized: 1 block orphaned" in shown
    assert "A branch with more work (" in shown and "The chain now ends at block 4 (`" in shown
    assert "instead of block 3 (`" in shown and "share every block up to block 2" in shown
    assert "2 payments confirmed there: 1 back in the mempool, 1 reversed (each one below)." in shown
    assert "Orphaned: 1 block" in shown and "Connected: 2 blocks" in shown
    assert "The validators' latest votes moved the head to another branch." in render(pos_reorg)

    shown = render(reversed_, reorg_names())
    assert "❌ Payment reversed" in shown
    assert "<@1>'s payment of 30 pts to <@4> was in block 3, which the reorg orphaned, and it no longer happened: it is a double spend, since the new chain already holds another payment by <@1> with the same nonce (0). <@4> does not have these points." in shown  # noqa: E501
    assert "Refused as: `nonce_replay`" in shown

    shown = render(returned, reorg_names())
    assert "↩️ Payment back in the mempool" in shown
    assert "<@2>'s payment of 10 pts to <@3> was in block 3, which the reorg orphaned. It is still valid" in shown
    assert "Fee: 1 pts" in shown
    # Without names, members still read whose payment it was (a short key).
    assert "'s payment of 10 pts to `" in render(returned, {})


def test_finality_refusing_a_reorg_says_why_and_that_nothing_moved(reorg_events):
    by_work, by_votes = (_through_outbox(e) for e in reorg_events[4:])
    shown = render(by_work)
    assert "🛡️ Finality refused a reorg" in shown
    assert "A branch ending at block 3 (`" in shown and "has more work (4 against 3)" in shown
    assert "conflicts with finalized block 1 (`" in shown and "switching would undo 2 blocks" in shown
    assert "so the chain keeps its branch" in shown
    shown = render(by_votes)
    assert "another branch (its tip at slot 2)" in shown and "epoch 1's finalized checkpoint `" in shown
    assert "switching would undo 4 blocks" in shown and "the head stays where it is" in shown


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("insufficient_balance", "on the new chain <@1> no longer has enough points for it"),
        ("nonce_gap", "an earlier payment by <@1> was reversed, so this one (nonce 0) cannot follow it"),
        ("unknown_account", "on the new chain <@1> never received any points"),
        ("mempool_full", "the mempool had no room for it"),
        ("comet", "nonce 0 was already used"),
    ],
)
def test_a_reversed_payment_says_why_in_words(reorg_events, code, says):
    import dataclasses

    event = dataclasses.replace(reorg_events[1], code=code)
    assert says in render(event, reorg_names())


@pytest.fixture(scope="module")
def delayed_merge_events() -> list[ChainEvent]:
    """A pow chain whose scheduled Merge comes before anyone staked: it waits (merge_delayed)."""
    from chain.pos.beacon import ConsensusConfig
    from tests.poskit import mine_v2, new_consensus_chain

    state = new_consensus_chain(ConsensusConfig(mode="pow", checkpoint_interval_blocks=4, merge_at_height=3))
    events: list[ChainEvent] = []
    for _ in range(3):
        block = mine_v2(state, MINER.public_key, apply=False)
        effects = process_block(state, block, block.header.time)
        state.apply(block, effects)
        events += effects.events
    return events


def _through_outbox(event: ChainEvent) -> ChainEvent:
    """The event as the notifier reads it back: JSON-encoded into the outbox, decoded again."""
    decoded = decode_event(event.kind, event.payload_json())
    assert decoded == event, f"{event.kind} did not read back as it was written: {decoded}"
    return decoded


def test_every_kind_the_engine_emits_renders(pow_events, merge_events, exit_events, leak_events,
                                             delayed_merge_events, reorg_events):
    """A kind without a renderer, or a renderer that raises on a real payload, fails here (the
    notifier would swallow the error and post a bare grey embed)."""
    from chain import events as kinds_module

    slashed = slashing_event(ProposerSlashing(_proposal(1, 812, b"\x01" * 32), _proposal(1, 812, b"\x02" * 32)), 1)
    emitted = [*pow_events, *merge_events[0], *exit_events, *leak_events, *delayed_merge_events, slashed,
               *reorg_events]
    defined = {v for k, v in vars(kinds_module).items() if k.isupper() and isinstance(v, str)}
    assert {e.kind for e in emitted} == defined
    for event in emitted:
        event = _through_outbox(event)
        embed = event_embed(event, NAMES)
        assert embed.title and len(embed) <= 6000
        assert embed.title != event.kind.replace("_", " ").capitalize(), f"{event.kind} fell back to a plain embed"


def test_the_engine_still_writes_the_bytes_it_wrote_before_typed_events(
    pow_events, merge_events, exit_events, leak_events, delayed_merge_events
):
    """Same scenarios, same facts, same stored bytes: each payload captured from the engine before
    events were typed (tests/chain/test_events.py GOLDEN_FROM_ENGINE) is written again, byte for byte."""
    from tests.chain.test_events import GOLDEN_FROM_ENGINE

    slashings = [
        slashing_event(ProposerSlashing(_proposal(1, 812, b"\x01" * 32), _proposal(1, 812, b"\x02" * 32)), 1),
        slashing_event(AttesterSlashing(_vote(2, 0, 12), _vote(2, 0, 12, head=b"\x02" * 32)), 2),
        slashing_event(AttesterSlashing(_vote(1, 2, 7), _vote(1, 3, 5)), 1),
    ]
    emitted = [*pow_events, *merge_events[0], *exit_events, *leak_events, *delayed_merge_events, *slashings]
    written = {(e.kind, e.payload_json()) for e in emitted}
    missing = [golden for golden in GOLDEN_FROM_ENGINE if golden not in written]
    assert not missing, f"the engine no longer writes these payloads byte for byte: {missing}"


def test_a_rule_change_reads_old_and_new_values(pow_events):
    changed = _through_outbox(first(pow_events, PARAMS_CHANGED))
    shown = render(changed)
    assert "⚙️ New rules from block 11" in shown
    assert "Block time (s): 60 → **15**" in shown and "Reward (pts): 50 → **60**" in shown
    assert "Block 10 committed to them in its coinbase." in shown


def test_block_embed_shows_each_block_for_what_it_is():
    from tests.chainkit import genesis_block
    from tests.poskit import pos_chain

    state, blocks = pos_chain(validators=4, epochs=2)
    shown = text(block_embed(blocks[0], NAMES, beacon=state.beacon))
    assert "Slot: 0" in shown and "Epoch: 0" in shown and "Genesis validators: 4" in shown
    assert "Bits" not in shown and "Nonce" not in shown and "Miner" not in shown
    shown = text(block_embed(blocks[9], NAMES, beacon=state.beacon))
    assert "Slot: 9" in shown and "Epoch: 1" in shown and "Bits" not in shown
    pow_state = new_consensus_chain(ConsensusConfig(mode="pow"))
    pow_genesis = text(block_embed(genesis_block(), NAMES, beacon=pow_state.beacon))
    assert "Bits: `0x207fffff`" in pow_genesis and "Nonce" in pow_genesis and "Slot" not in pow_genesis


def test_counts_read_as_real_singulars_and_plurals():
    from cogs.embeds import counted

    assert counted(1, "block") == "1 block"
    assert counted(0, "block") == "0 blocks"
    assert counted(1_234, "epoch") == "1,234 epochs"
    assert counted(1, "entry", "entries") == "1 entry" and counted(2, "entry", "entries") == "2 entries"
    assert counted(1, "pending transfer") == "1 pending transfer"


def test_durations_read_in_minutes_hours_and_days_not_hundreds_of_seconds():
    """Issue 9 item 7: "~174s" read badly; people count in minutes."""
    from cogs.embeds import duration, relative_time

    cases = {
        0: "0 s", 44.6: "45 s", 59.4: "59 s", 60: "1 min", 174: "2 min 54 s", 599: "9 min 59 s",
        600: "10 min", 3_569: "59 min", 3_599: "1 h", 3_725: "1 h 2 min", 7_200: "2 h",
        47 * 3_600: "47 h", 48 * 3_600: "2 days", 49 * 3_600 + 59: "2 days 1 h", 86_400 * 30: "30 days",
        -5: "0 s",
    }
    assert {s: duration(s) for s in cases} == cases
    assert relative_time(1_700_000_123.9) == "<t:1700000123:R>"


# --- one formatter per quantity -------------------------------------------------------------


def test_stake_points_is_the_one_nanopoint_formatter() -> None:
    assert stake_points(32 * UNITS_PER_POINT + 123_000) == "32.000123 pts"
    assert stake_points(5, signed=True) == "+0.000000005 pts"
    assert stake_points(0, signed=True) == "0 pts"
    assert stake_points(-(UNITS_PER_POINT + 560), signed=True) == "-1.00000056 pts"
    assert stake_points(-(UNITS_PER_POINT + 560)) == "-1.00000056 pts"


@pytest.mark.parametrize(
    ("bp", "fixed", "text"),
    [(500, False, "5%"), (350, False, "3.5%"), (1_505, False, "15.05%"), (-350, False, "-3.5%"),
     (9_987, True, "99.87%"), (500, True, "5.00%"), (-42, True, "-0.42%")],
)
def test_percent_from_bp_is_the_one_basis_point_formatter(bp: int, fixed: bool, text: str) -> None:
    assert percent_from_bp(bp, fixed=fixed) == text


def test_points_and_seconds_read_as_before() -> None:
    assert points(1_234) == "1,234 pts" and seconds(1_800) == "1,800 s"


def test_cogs_format_points_seconds_and_percentages_only_through_embeds() -> None:
    """A second formatter of a quantity drifts from the first (two nanopoint formatters once did)."""
    inline = re.compile(r":,\} (pts|s)\b|def (format_units|format_basis_points|percent_from_bp|stake_points)\b")
    for path in sorted((Path(__file__).resolve().parents[2] / "cogs").glob("*.py")):
        if path.name == "embeds.py":
            continue
        found = inline.findall(path.read_text())
        assert not found, f"{path.name} formats a quantity itself ({found}): use cogs/embeds.py's formatter"
