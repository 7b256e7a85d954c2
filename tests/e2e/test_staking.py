"""/stake, /validators, /report and the slot driver, end to end through the sandbox.

The bot runs on a fake clock (``PlaygroundBot(clock=...)``; the beacon node reads
the node's): a test moves it one slot at a time and waits until the slot driver
has run that slot, so a slot takes milliseconds and the timeline is exact.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

import bot.notifier
import cogs.stake as staking_cog
import tests.e2e.conftest as e2e_conftest
from bot.app import PlaygroundBot
from bot.storage import OutboxRepository
from chain.consensus.duties import compute_attestation_data
from chain.mode import Mode
from chain.pos.attestation import AttesterSlashing
from chain.pos.beacon import ConsensusConfig
from chain.pos.rewards import UNITS_PER_POINT
from chain.pos.slashing_protection import INTERCHANGE_FORMAT_VERSION, import_interchange
from chain.pos.staking import ValidatorStatus
from cogs.embeds import stake_points
from sandbox.demo import populate_demo
from tests.e2e.conftest import Playground
from tests.e2e.test_notifier import eventually
from tests.e2e.text import embed_text, shown

STAKING_COMMANDS = ["stake", "validators", "report"]
SLOT_S = 2
SLOTS_PER_EPOCH = 4
POINTS = UNITS_PER_POINT


class FakeClock:
    """The bot's clock, moved by the test."""

    def __init__(self, start: float) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now


@dataclass
class SlotRecorder:
    """Wraps ``BeaconNode.on_slot`` to know when the driver has run a slot, and what it did."""

    on_slot: object
    ran: dict[int, int] = field(default_factory=dict)  # chain id -> latest ``now`` run
    outcomes: list = field(default_factory=list)

    async def __call__(self, chain_id: int, now: int):
        outcome = await self.on_slot(chain_id, now)
        if outcome is not None:
            self.outcomes.append((chain_id, outcome))
        self.ran[chain_id] = max(self.ran.get(chain_id, 0), now)
        return outcome


@dataclass
class Pos:
    p: Playground
    clock: FakeClock
    recorder: SlotRecorder

    @property
    def w(self):
        return self.p.world

    @property
    def sb(self):
        return self.p.sb

    @property
    def services(self):
        return self.p.bot.services

    @property
    def beacon(self):
        return self.p.bot.services.beacon

    async def start(self, *, guild=None, admin=None, wallets=(), auto_attest=False, **config) -> None:
        """Start ``guild``'s chain over in pos mode: ``admin`` is the genesis validator, and
        every member in ``wallets`` gets the genesis allocation (100 pts). The genesis validator
        auto-attests from genesis; these tests vote by hand unless ``auto_attest``."""
        guild = guild or self.w.genesis
        admin = admin or self.w.alice
        await self.services.ensure_chain(guild.id)
        for member in wallets:
            await self.services.node.address(guild.id, str(member.id))
        base = ConsensusConfig(**{"slot_duration_s": SLOT_S, "slots_per_epoch": SLOTS_PER_EPOCH, **config})
        await self.beacon.switch_mode(guild.id, Mode.POS, str(admin.id), int(self.clock()), base=base)
        assert (await self.beacon.validator(guild.id, str(admin.id))).auto_attest
        if not auto_attest:
            await self.beacon.set_auto_attest(guild.id, str(admin.id), False)

    async def step(self, slots: int = 1, *, guild=None) -> None:
        """Move the clock ``slots`` slots on, one at a time, and wait until the driver ran each."""
        guild = guild or self.w.genesis
        for _ in range(slots):
            self.clock.now += SLOT_S
            target = int(self.clock())
            await self.sb.wait_until(
                lambda target=target: self.recorder.ran.get(guild.id, 0) >= target,
                timeout=5,
                describe=f"the slot at {target}",
            )

    async def step_until(self, predicate, *, max_slots: int, guild=None, what: str = "condition"):
        """Step slot by slot until ``await predicate()`` is truthy; its value."""
        for _ in range(max_slots):
            value = await predicate()
            if value:
                return value
            await self.step(guild=guild)
        value = await predicate()
        assert value, f"{what} not reached in {max_slots} slots"
        return value

    async def view(self, member, guild=None):
        return await self.beacon.validator((guild or self.w.genesis).id, str(member.id))

    def slot(self, guild=None) -> int:
        return self.beacon.current_slot((guild or self.w.genesis).id, int(self.clock()))

    async def run(self, member, command, options=None, *, guild=None):
        """A command's handle and its visible answer."""
        h = await self.p.run(member, command, options, guild=guild)
        return h, await h.wait_response(5)


def make_pos(p: Playground, clock: FakeClock, monkeypatch) -> Pos:
    beacon = p.bot.services.beacon
    recorder = SlotRecorder(beacon.on_slot)
    monkeypatch.setattr(beacon, "on_slot", recorder)
    return Pos(p, clock, recorder)


@contextlib.asynccontextmanager
async def bot_with_clock(sb, world, settings, clock, monkeypatch) -> AsyncIterator[Pos]:
    """The real bot (conftest's ``running_bot``) on the fake clock, from its first slot on."""
    monkeypatch.setattr(e2e_conftest, "PlaygroundBot", functools.partial(PlaygroundBot, clock=clock))
    async with e2e_conftest.running_bot(sb, settings) as bot:
        await sb.wait_commands_synced(names=STAKING_COMMANDS)
        yield make_pos(Playground(sb, world, bot, settings), clock, monkeypatch)


@pytest.fixture
async def pos(sb, tmp_path, monkeypatch) -> AsyncIterator[Pos]:
    monkeypatch.setattr(staking_cog, "SLOT_DRIVER_INTERVAL_S", 0.02)
    world = populate_demo(sb)
    settings = e2e_conftest.make_settings(tmp_path / "staking.sqlite3")
    async with bot_with_clock(sb, world, settings, FakeClock(int(time.time())), monkeypatch) as pos:
        yield pos


def text(message) -> str:
    return shown(message)


def slot_messages(pos: Pos, channel) -> list:
    """The epoch messages in ``channel`` (one per epoch, edited as its slots pass), oldest first."""
    return [
        m for m in pos.sb.channel_messages(channel, include_ephemeral=False, kind="bot")
        if m.embeds and m.embeds[0].get("title", "").startswith("🧱 Epoch")
    ]


def shown_slot(embeds) -> int:
    """The slot an epoch message's embed shows: its title is ``🧱 Epoch E · slot S — block H``."""
    return int(embeds[0]["title"].split(" · slot ")[1].split()[0].replace(",", ""))


def slot_message(pos: Pos, channel, slot: int):
    """The epoch message while it shows ``slot`` (None before, and once it moved on)."""
    return next((m for m in slot_messages(pos, channel) if shown_slot(m.embeds) == slot), None)


def webhook_text(pos: Pos, channel) -> str:
    return "\n".join(embed_text(m.embeds) + "\n" + (m.content or "") for m in pos.sb.webhook_feed(channel))


async def activate(pos: Pos, member) -> None:
    _h, reply = await pos.run(member, "stake deposit", {"amount": 32})
    assert "Stake deposited" in text(reply)

    async def active():
        v = await pos.view(member)
        return v is not None and v.status is ValidatorStatus.ACTIVE
    await pos.step_until(active, max_slots=2 * SLOTS_PER_EPOCH, what=f"{member.name}'s activation")


async def until_next_proposer_is(pos: Pos, index: int) -> None:
    """Step until the next slot's proposer is validator ``index`` and that slot starts no epoch
    (so the block between two snapshots changes balances only by what it carries)."""
    guild_id = pos.w.genesis.id

    async def ready():
        nxt = pos.slot() + 1
        return nxt % SLOTS_PER_EPOCH != 0 and pos.beacon.proposer_draw(guild_id, nxt).proposer == index
    await pos.step_until(ready, max_slots=4 * SLOTS_PER_EPOCH, what=f"validator {index} proposing next")


def test_points_show_nanopoints_with_up_to_nine_decimals():
    assert stake_points(32 * POINTS + 123_000) == "32.000123 pts"
    assert stake_points(1_234 * POINTS) == "1,234 pts"
    assert stake_points(0, signed=True) == "0 pts"
    assert stake_points(5, signed=True) == "+0.000000005 pts"
    assert stake_points(-(POINTS + 560), signed=True) == "-1.00000056 pts"
    assert staking_cog.normalize_evidence(" 0xAB cd ") == "abcd"


# --- staking ---------------------------------------------------------------------------------


async def test_deposit_is_pending_then_activates_after_its_block(pos):
    w = pos.w
    await pos.start(wallets=[w.bob])

    h, reply = await pos.run(w.bob, "stake deposit", {"amount": 32})
    assert not h.ephemeral
    shown_text = text(reply)
    assert "Stake deposited" in shown_text and "32 pts" in shown_text and "pending" in shown_text
    assert "It waits for the next block: slot 1 starts in" in shown_text
    # The next block is at slot 1, in epoch 0: the validator activates at epoch 1.
    assert "epoch 1, in about" in shown_text and "the epoch after the block that includes the deposit" in shown_text

    h, reply = await pos.run(w.bob, "stake status")
    assert h.ephemeral and "Your deposit of **32 pts** waits for the next block" in text(reply)
    h, reply = await pos.run(w.alice, "stake status")
    assert "✅ active" in text(reply)  # the genesis validator

    await pos.step(2)  # slot 1 proposes a block with the deposit; slot 2 appends it
    view = await pos.view(w.bob)
    assert view is not None and view.status is ValidatorStatus.PENDING and view.activation_epoch == 1
    h, reply = await pos.run(w.bob, "stake status")
    status = text(reply)
    assert h.ephemeral and "⏳ pending" in status and "Activation\nepoch 1" in status
    assert "Balance\n32 pts" in status and "Auto-attest\noff" in status

    # Epoch 1 starts at slot 4; its first block is appended when slot 5 begins.
    async def active():
        v = await pos.view(w.bob)
        return v.status is ValidatorStatus.ACTIVE and v
    view = await pos.step_until(active, max_slots=4, what="bob's activation")
    assert pos.beacon.current_epoch(w.genesis.id) == 1 and view.effective_balance_units == 32 * POINTS
    h, reply = await pos.run(w.bob, "stake status")
    status = text(reply)
    assert "✅ active" in status and "Effective stake\n32 pts" in status
    assert "this epoch ❌ · previous epoch ❌" in status
    assert "not exiting" in status

    # The deposit left the wallet: 100 allocated, 32 staked.
    address = await pos.services.node.address(w.genesis.id, str(w.bob.id))
    assert pos.services.node.account(w.genesis.id, address).balance == 68


async def test_refusals_are_ephemeral_and_change_nothing(pos):
    w = pos.w
    await pos.start(wallets=[w.bob])
    node = pos.services.node

    h, reply = await pos.run(w.bob, "stake deposit", {"amount": 5})
    assert h.ephemeral and "at least 32 points" in text(reply)

    # carol has no wallet at genesis, so no points.
    h, reply = await pos.run(w.carol, "stake deposit", {"amount": 32})
    assert h.ephemeral and "you have 0 points" in text(reply)

    h, reply = await pos.run(w.bob, "stake deposit", {"amount": 500})
    assert h.ephemeral and "you have 100 points; you cannot stake 500" in text(reply)

    h, reply = await pos.run(w.alice, "stake attest", {"double_vote": True})
    assert h.ephemeral and "only works in chaos mode" in text(reply)

    h, reply = await pos.run(w.alice, "stake equivocate")
    assert h.ephemeral and "only works in chaos mode" in text(reply)

    h, reply = await pos.run(w.bob, "stake withdraw")
    assert h.ephemeral and "you have no validator" in text(reply)

    h, reply = await pos.run(w.bob, "stake attest")
    assert h.ephemeral and "you have no validator" in text(reply)

    assert node.chain(w.genesis.id).op_pool.operations().deposits == ()

    # One deposit at a time: a second one waits until the first is in a block.
    h, _ = await pos.run(w.bob, "stake deposit", {"amount": 32})
    assert not h.ephemeral
    h, reply = await pos.run(w.bob, "stake deposit", {"amount": 32})
    assert h.ephemeral and "already have a deposit waiting for the next block" in text(reply)
    assert len(node.chain(w.genesis.id).op_pool.operations().deposits) == 1


async def test_commands_of_a_member_who_never_staked_create_no_validator_key(pos):
    """Refused or read-only commands leave no key behind: only an accepted deposit makes one."""
    w, sb = pos.w, pos.sb
    await pos.start(wallets=[w.bob])
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    store, guild_id = pos.services.node.store, w.genesis.id
    genesis_keys = {k.owner for k in await store.validator_keys.all(guild_id)}

    async def owners() -> set[str]:
        return {k.owner for k in await store.validator_keys.all(guild_id)} - genesis_keys

    # carol has no points: her deposit is refused.
    h, reply = await pos.run(w.carol, "stake deposit", {"amount": 32})
    assert h.ephemeral and "you have 0 points" in text(reply)
    h, reply = await pos.run(w.bob, "stake deposit", {"amount": 5})
    assert h.ephemeral and "at least 32 points" in text(reply)
    for command in ("stake attest", "stake status", "stake withdraw"):
        h, reply = await pos.run(w.carol, command)
        assert h.ephemeral, command
    h, reply = await pos.run(w.carol, "stake protection")
    assert h.ephemeral and "you have no validator" in text(reply)
    h, reply = await pos.run(w.carol, "stake auto", {"state": "on"})
    assert h.ephemeral and "you have no validator" in text(reply) and "Auto-attest is" not in text(reply)
    assert str(w.carol.id) not in await store.validator_settings.auto_attesters(guild_id)

    await pos.step()
    message = await sb.wait_until(lambda: slot_message(pos, w.blocks, 1), timeout=5, describe="slot 1's message")
    click = await sb.click(message, member=w.carol, label="Attest")
    reply = await click.wait_response()
    assert reply.ephemeral and "you have no validator" in text(reply)
    assert await owners() == set()

    # An accepted deposit creates the key (and only then can auto-attest be turned on).
    h, reply = await pos.run(w.bob, "stake deposit", {"amount": 32})
    assert not h.ephemeral
    assert await owners() == {str(w.bob.id)}
    h, reply = await pos.run(w.bob, "stake auto", {"state": "on"})
    assert "Auto-attest is **on**" in text(reply)


async def test_a_chain_from_before_proof_of_stake_says_so(pos):
    w = pos.w
    # A chain created before proof of stake existed has no consensus config.
    await pos.services.node.create_chain(w.genesis.id, pos.services.default_params, initial_bits=0x207FFFFF)
    for command, options in (("stake status", {}), ("stake deposit", {"amount": 32}), ("stake attest", {})):
        h, reply = await pos.run(w.alice, command, options)
        assert h.ephemeral and "created before proof of stake existed" in text(reply), command
    h, reply = await pos.run(w.alice, "validators")
    assert "No validators yet" in text(reply)


async def test_withdraw_starts_the_exit_and_shows_the_lock(pos):
    w = pos.w
    await pos.start(unbonding_epochs=3)
    await pos.step()

    h, reply = await pos.run(w.alice, "stake withdraw")
    assert not h.ephemeral
    shown_text = text(reply)
    assert "Exit started" in shown_text and "Unbonding lock\n3 epochs of unbonding" in shown_text
    assert "Time left\nabout" in shown_text and "Stake\n32 pts" in shown_text

    # Asking again before a block includes it queues nothing new: one exit waits.
    await pos.run(w.alice, "stake withdraw")
    assert len(pos.services.node.chain(w.genesis.id).op_pool.operations().voluntary_exits) == 1

    async def exiting():
        v = await pos.view(w.alice)
        return v.exit_epoch is not None and v
    view = await pos.step_until(exiting, max_slots=3, what="alice's exit")
    h, reply = await pos.run(w.alice, "stake status")
    status = text(reply)
    assert view.withdrawable_epoch == view.exit_epoch + 3
    assert f"(epoch {view.withdrawable_epoch})" in status and "Unlock\nin " in status

    h, reply = await pos.run(w.alice, "stake withdraw")
    assert h.ephemeral and "already exiting" in text(reply)


async def test_validators_lists_owners_states_and_stake(pos):
    w = pos.w
    await pos.start(wallets=[w.bob, w.carol])
    await pos.run(w.bob, "stake deposit", {"amount": 40})
    await pos.step(2)

    h, reply = await pos.run(w.carol, "validators")
    assert not h.ephemeral
    shown_text = text(reply)
    assert f"`#0` <@{w.alice.id}> — ✅ active · 32 pts" in shown_text
    assert f"`#1` <@{w.bob.id}> — ⏳ pending · 32 pts" in shown_text  # effective stake is capped at 32
    assert "2 validators in total, 1 active with 32 pts effective stake · page 1 of 1" in shown_text

    h, reply = await pos.run(w.carol, "validators", {"page": 2})
    assert h.ephemeral and "There is only 1 page of validators." in text(reply)


async def test_auto_attest_votes_every_epoch_and_the_status_shows_it(pos):
    w = pos.w
    await pos.start()
    h, reply = await pos.run(w.alice, "stake auto", {"state": "on"})
    assert h.ephemeral and "never signs anything slashable" in text(reply)
    await pos.step()
    view = await pos.view(w.alice)
    assert view.auto_attest
    assert any(o.auto_votes for _, o in pos.recorder.outcomes)

    h, reply = await pos.run(w.alice, "stake status")
    assert "Auto-attest\non" in text(reply)
    h, reply = await pos.run(w.alice, "stake auto", {"state": "off"})
    assert "Auto-attest is **off**" in text(reply)
    assert not (await pos.view(w.alice)).auto_attest
    # No playground channel set up: the driver posts nothing.
    assert not slot_messages(pos, w.general) and not slot_messages(pos, w.blocks)


async def test_protection_is_a_valid_eip3076_interchange_file(pos):
    w = pos.w
    await pos.start()
    await pos.step()
    _h, vote = await pos.run(w.alice, "stake attest")
    assert "Vote signed" in text(vote)

    h, reply = await pos.run(w.alice, "stake protection")
    assert h.ephemeral and "EIP-3076" in text(reply) and "(1 validator)" in text(reply)
    [attachment] = reply.attachments
    assert attachment.filename.endswith(".json")
    document = json.loads(attachment.data)
    assert document["metadata"]["interchange_format_version"] == INTERCHANGE_FORMAT_VERSION
    genesis = pos.services.node.chain(w.genesis.id).state.hashes[0]
    records = import_interchange(attachment.data.decode(), genesis)  # the chain's own importer accepts it
    view = await pos.view(w.alice)
    record = records[view.pubkey]
    assert record.highest_block is not None and record.highest_block.slot == 1  # alice proposed slot 1
    assert record.highest_attestation is not None and record.highest_attestation.target_epoch == 0


# --- slots: blocks posted with an Attest button ---------------------------------------------------


async def test_blocks_are_posted_with_an_attest_button_that_counts_the_vote(pos):
    w, sb = pos.w, pos.sb
    await pos.start(wallets=[w.bob])
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})

    await pos.step()
    message = await sb.wait_until(lambda: slot_message(pos, w.blocks, 1), timeout=5, describe="slot 1's message")
    posted = text(message)
    assert "🧱 Epoch 0 · slot 1 — block 1" in posted
    assert f"Proposer\n<@{w.alice.id}>" in posted and "Transfers\n0" in posted
    assert "Finality\njustified epoch 0 · finalized epoch 0" in posted
    assert "Votes toward 2/3\n`░░░░░░░░░░░░░░░░░░░░ 0%`" in posted
    [button] = [c for c in message.iter_components() if c.get("type") == 2]
    assert button["label"] == "Attest" and button["custom_id"].startswith("pg:attest:1:")

    # Someone without a validator is refused, privately.
    click = await sb.click(message, member=w.bob, label="Attest")
    reply = await click.wait_response()
    assert reply.ephemeral and "you have no validator" in text(reply)

    click = await sb.click(message, member=w.alice, label="Attest")
    reply = await click.wait_response()
    assert reply.ephemeral and "Vote signed" in text(reply) and "voted at slot 1" in text(reply)
    # The block's message now shows alice's vote: all of the active stake, past 2/3.
    await sb.wait_until(lambda: "(100% of it" in text(sb.message(message.id)), timeout=5, describe="the vote count")
    assert "2/3 reached" in text(sb.message(message.id))

    # The next slots of the epoch are shown on the same message, its button on their block.
    await pos.step(2)
    await sb.wait_until(lambda: slot_message(pos, w.blocks, 3), timeout=5, describe="slot 3 on the message")
    assert [m.id for m in slot_messages(pos, w.blocks)] == [message.id]
    [button] = [c for c in sb.message(message.id).iter_components() if c.get("type") == 2]
    assert button["custom_id"].startswith("pg:attest:3:")
    # alice voted for this epoch already: another vote for another block would be slashable.
    click = await sb.click(message, member=w.alice, label="Attest")
    reply = await click.wait_response()
    assert reply.ephemeral and "Vote signed" not in text(reply)


async def test_presses_at_once_all_end_up_in_the_count(pos):
    w, sb = pos.w, pos.sb
    await pos.start(wallets=[w.bob])
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    await activate(pos, w.bob)
    await pos.step()
    slot = pos.slot()
    message = await sb.wait_until(lambda: slot_message(pos, w.blocks, slot), timeout=5, describe="the block message")
    clicks = [await sb.click(message, member=m, label="Attest") for m in (w.alice, w.bob)]
    for click in clicks:
        assert "Vote signed" in text(await click.wait_response())
    await sb.wait_until(lambda: "64 pts of 64 pts" in text(sb.message(message.id)), timeout=5,
                        describe=lambda: f"both votes counted in {text(sb.message(message.id))!r}")


async def test_one_failing_server_does_not_stop_the_others(pos, monkeypatch):
    w = pos.w
    await pos.start()
    await pos.start(guild=w.fork, admin=w.bob_in_fork)
    original = pos.recorder.on_slot

    async def broken(chain_id, now):
        if chain_id == w.genesis.id:
            raise RuntimeError("boom")
        return await original(chain_id, now)

    pos.recorder.on_slot = broken
    pos.clock.now += SLOT_S
    target = int(pos.clock())
    await pos.sb.wait_until(lambda: pos.recorder.ran.get(w.fork.id, 0) >= target, timeout=5)
    assert pos.services.node.chain(w.genesis.id).state.height == 0
    pos.recorder.on_slot = original
    await pos.step(2, guild=w.fork)
    assert pos.services.node.chain(w.fork.id).state.height >= 1
    assert pos.services.node.chain(w.genesis.id).state.height >= 1


# --- chaos mode: a double vote, caught and slashed ---------------------------------------------


async def test_chaos_double_vote_is_caught_included_slashed_and_announced(pos):
    w, sb = pos.w, pos.sb
    guild_id = w.genesis.id
    await pos.start(wallets=[w.bob])
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    await pos.services.node.store.chaos_mode.set_chaos_mode(guild_id, True)
    await activate(pos, w.bob)
    alice_index = (await pos.view(w.alice)).index
    await until_next_proposer_is(pos, alice_index)

    _h, vote = await pos.run(w.bob, "stake attest")
    assert "Vote signed" in text(vote)
    h, double = await pos.run(w.bob, "stake attest", {"double_vote": True})
    assert not h.ephemeral
    assert "Conflicting vote signed" in text(double) and "Caught" in text(double)

    # The next slot's block (alice's) carries the evidence, and joins the chain in its own slot.
    before = {v.index: v for v in pos.beacon.validators(guild_id)}
    burned_before = pos.services.node.chain(guild_id).state.beacon.burned_units
    await pos.step()
    evidence_slot = pos.slot()
    assert any(o.slot == evidence_slot and o.block is not None and o.block.operations.attester_slashings
               for _, o in pos.recorder.outcomes)
    assert pos.services.node.chain(guild_id).state.tip_hash == pos.recorder.outcomes[-1][1].block.hash()
    bob = await pos.view(w.bob)
    assert bob.slashed and bob.status is ValidatorStatus.SLASHED

    effective = before[bob.index].effective_balance_units
    penalty = effective // 32
    reward = effective // 512
    assert bob.balance_units == before[bob.index].balance_units - penalty
    alice = await pos.view(w.alice)
    assert alice.balance_units == before[alice_index].balance_units + reward
    burned = pos.services.node.chain(guild_id).state.beacon.burned_units - burned_before
    assert burned == penalty - reward

    _h, listing = await pos.run(w.carol, "validators")
    assert f"<@{w.bob.id}> — 🔪 slashed" in text(listing)
    _h, status = await pos.run(w.bob, "stake status")
    assert "🔪 slashed" in text(status) and "Net rewards/penalties\n-" in text(status)

    # Members must see it: the epoch message is posted anew (its Attest button below the news).
    news = await sb.wait_until(
        lambda: next((m for m in slot_messages(pos, w.blocks) if "1 validator slashed at slot" in text(m)), None),
        timeout=5, describe="the slashing on the epoch message",
    )
    assert news.id == slot_messages(pos, w.blocks)[-1].id
    assert "1 validator slashed at slot" in embed_text(list(news.revisions[0].embeds))  # posted with it

    # The webhook announces it.
    await sb.wait_until(lambda: f"Validator #{bob.index} slashed" in webhook_text(pos, w.blocks), timeout=5,
                        describe=lambda: f"the slashing announcement in {webhook_text(pos, w.blocks)!r}")
    announcement = webhook_text(pos, w.blocks)
    assert f"<@{w.bob.id}> (validator #{bob.index}) voted twice for epoch" in announcement
    assert "Penalty\n1 pts" in announcement and "Whistleblower reward\n0.0625 pts" in announcement


async def test_report_evidence_names_the_offender_and_the_next_block_slashes(pos):
    w = pos.w
    guild_id = w.genesis.id
    await pos.start(wallets=[w.bob])
    await activate(pos, w.bob)
    bob = await pos.view(w.bob)

    # Two conflicting votes signed outside the bot's view (as a careless second machine would).
    state = pos.services.node.chain(guild_id).state
    data = compute_attestation_data(state, pos.slot(), state.tip_hash)
    twin = type(data)(data.chain_id, data.slot, b"\x07" * 32, data.source, data.target)
    signer = pos.beacon.signer
    one = await signer.sign_attestation(guild_id, str(w.bob.id), data, chaos=True)
    two = await signer.sign_attestation(guild_id, str(w.bob.id), twin, chaos=True)
    evidence = AttesterSlashing(one, two).serialize().hex()

    h, reply = await pos.run(w.carol, "report evidence", {"evidence": "0x" + evidence})
    assert not h.ephemeral
    shown_text = text(reply)
    assert f"<@{w.bob.id}> (validator #{bob.index}) will be slashed for a **double vote**" in shown_text
    assert f"voted twice for target epoch {data.target.epoch}" in shown_text
    assert "Penalty\n1 pts" in shown_text and "Whistleblower reward\n0.0625 pts to the block's proposer" in shown_text

    async def slashed():
        return (await pos.view(w.bob)).slashed
    await pos.step_until(slashed, max_slots=4, what="bob's slashing")

    h, reply = await pos.run(w.carol, "report evidence", {"evidence": "not hex"})
    assert h.ephemeral and "hex" in text(reply)
    h, reply = await pos.run(w.carol, "report evidence", {"evidence": "ab" * 448})
    assert h.ephemeral


async def test_equivocation_by_the_proposer_is_a_proposer_slashing(pos):
    w = pos.w
    guild_id = w.genesis.id
    await pos.start(wallets=[w.bob])
    await pos.services.node.store.chaos_mode.set_chaos_mode(guild_id, True)
    await activate(pos, w.bob)
    bob_index = (await pos.view(w.bob)).index
    # Alice proposes the next slot; bob must be this slot's proposer to equivocate: wait for it.
    async def bob_proposes_now():
        return any(o.slot == pos.slot() and o.proposer_index == bob_index and o.block is not None
                   for _, o in pos.recorder.outcomes)
    await pos.step_until(bob_proposes_now, max_slots=4 * SLOTS_PER_EPOCH, what="a slot of bob's")

    h, reply = await pos.run(w.alice, "stake equivocate")
    assert h.ephemeral and "proposer" in text(reply)
    h, reply = await pos.run(w.bob, "stake equivocate")
    assert not h.ephemeral and "Second block signed" in text(reply)

    async def slashed():
        return (await pos.view(w.bob)).slashed
    await pos.step_until(slashed, max_slots=2 * SLOTS_PER_EPOCH, what="bob's slashing")
    [evidence] = [e for _, o in pos.recorder.outcomes if o.block is not None
                  for e in o.block.operations.proposer_slashings]
    assert evidence.signed_header_1.header.slot == evidence.signed_header_2.header.slot


async def test_the_attest_button_keeps_working_after_a_restart(sb, tmp_path, monkeypatch):
    monkeypatch.setattr(staking_cog, "SLOT_DRIVER_INTERVAL_S", 0.02)
    w = populate_demo(sb)
    settings = e2e_conftest.make_settings(tmp_path / "restart.sqlite3")
    clock = FakeClock(int(time.time()))
    async with bot_with_clock(sb, w, settings, clock, monkeypatch) as pos:
        await pos.start()
        await pos.run(w.alice, "playground setup", {"channel": w.blocks})
        await pos.step()
        message = await sb.wait_until(lambda: slot_message(pos, w.blocks, 1), timeout=5, describe="slot 1's message")
        assert pos.services.node.chain(w.genesis.id).state.height == 1  # slot 1's block joined in its slot
        await pos.step()
        tip = pos.services.node.chain(w.genesis.id).state.tip_hash
        assert pos.services.node.chain(w.genesis.id).state.height == 2
        cog = pos.p.bot.get_cog("Staking")
        driver = cog.driver
    # bot.close() stopped the driver before the store closed.
    assert driver.done() and not driver.cancelled() and cog.driver is None

    async with bot_with_clock(sb, w, settings, clock, monkeypatch) as pos:
        assert pos.services.node.chain(w.genesis.id).state.tip_hash == tip
        click = await sb.click(message, member=w.alice, label="Attest")
        reply = await click.wait_response()
        assert reply.ephemeral and "Vote signed" in text(reply) and "voted at slot 2" in text(reply)
        # Not in the new process's memory: the button's own message is updated.
        await sb.wait_until(lambda: "(100% of it" in text(sb.message(message.id)), timeout=5, describe="the vote count")
        assert [m.id for m in slot_messages(pos, w.blocks)] == [message.id]


async def test_hybrid_auto_attest_votes_on_mined_blocks_and_finalizes(pos):
    """Casper FFG over proof of work: the slot driver votes for each new mined block."""
    from tests.e2e.test_admin import mine_block

    w, gid = pos.w, pos.w.genesis.id
    await pos.services.ensure_chain(gid)
    await pos.beacon.switch_mode(
        gid, Mode.HYBRID, str(w.alice.id), int(pos.clock()), base=ConsensusConfig(checkpoint_interval_blocks=2)
    )
    for _ in range(2):
        pos.clock.now += 60  # past the mining cooldown, on the bot's (fake) clock
        await mine_block(pos.p, w.alice)
    _h, reply = await pos.run(w.alice, "stake deposit", {"amount": 32})
    assert "Stake deposited" in text(reply)
    await pos.run(w.alice, "stake auto", {"state": "on"})

    def finalized() -> int:
        return pos.services.node.chain(gid).state.beacon.finality.finalized_checkpoint.epoch

    for _ in range(20):
        pos.clock.now += 60
        height = await mine_block(pos.p, w.bob)
        # The driver votes for the new block: wait for it before mining the next one.
        rt = pos.beacon.chains.runtimes.get(gid)
        await pos.sb.wait_until(
            lambda rt=rt, height=height: rt is not None and rt.last_slot >= height, timeout=5, describe="a tick"
        )
        if finalized() >= 2:
            break
    assert finalized() >= 2
    view = await pos.view(w.alice)
    assert view.status is ValidatorStatus.ACTIVE and view.auto_attest
    assert not pos.beacon.is_merged(gid)


# --- servers the bot left: their chains pause ----------------------------------------------------


async def test_a_chain_pauses_while_the_bot_is_out_of_its_server_and_resumes_when_it_is_back(pos):
    w, sb, node = pos.w, pos.sb, pos.services.node
    await pos.start(wallets=[w.bob])
    await pos.start(guild=w.fork, admin=w.bob_in_fork)
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    await pos.step(3)
    chain = node.chain(w.genesis.id)
    assert chain.state.height >= 2
    events = len(await OutboxRepository(node.store.db).all_events(w.genesis.id))
    height, tip = chain.state.height, chain.state.tip_hash
    bob_wallet = await node.address(w.genesis.id, str(w.bob.id))

    sb.remove_bot(w.genesis)
    await sb.wait_until(lambda: node.is_paused(w.genesis.id), timeout=5, describe="the chain to pause")
    ran_before = pos.recorder.ran[w.genesis.id]
    await pos.step(4, guild=w.fork)  # slots go by: the fork's chain keeps making blocks
    assert node.chain(w.fork.id).state.height >= 3
    assert pos.recorder.ran[w.genesis.id] == ran_before  # not even asked to run a slot
    assert chain.state.height == height and chain.state.tip_hash == tip
    assert len(await OutboxRepository(node.store.db).all_events(w.genesis.id)) == events

    sb.add_bot(w.genesis)
    await sb.wait_until(lambda: not node.is_paused(w.genesis.id), timeout=5, describe="the chain to resume")
    await pos.step(2)
    assert node.chain(w.genesis.id).state.height > height
    # Nothing was lost while away: the old blocks, the wallets, the validators.
    assert (await node.store.blocks.get_block(w.genesis.id, height=height)).hash() == tip
    assert await node.address(w.genesis.id, str(w.bob.id)) == bob_wallet
    assert [v.owner for v in pos.beacon.validators(w.genesis.id)] == [str(w.alice.id)]
    # Discord deleted the webhook along with the bot: a new setup, and blocks are posted again.
    _h, reply = await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    assert "Announcements set up" in text(reply)
    assert len(sb.webhooks_in(w.blocks)) == 1  # the old one went with the bot; the new one
    await pos.step()
    slot = pos.slot()
    await sb.wait_until(
        lambda: slot_message(pos, w.blocks, slot), timeout=5, describe="a block posted after the return"
    )


async def test_after_a_restart_only_the_chains_of_servers_the_bot_is_in_run(sb, tmp_path, monkeypatch):
    monkeypatch.setattr(staking_cog, "SLOT_DRIVER_INTERVAL_S", 0.02)
    w = populate_demo(sb)
    settings = e2e_conftest.make_settings(tmp_path / "left.sqlite3")
    clock = FakeClock(int(time.time()))
    async with bot_with_clock(sb, w, settings, clock, monkeypatch) as pos:
        await pos.start()
        await pos.start(guild=w.fork, admin=w.bob_in_fork)
        await pos.step(2)
    sb.remove_bot(w.genesis)  # while the bot was offline: it only learns it from READY

    async with bot_with_clock(sb, w, settings, clock, monkeypatch) as pos:
        node = pos.services.node
        height = node.chain(w.genesis.id).state.height
        await sb.wait_until(lambda: not node.is_paused(w.fork.id), timeout=5, describe="the fork's chain to run")
        assert node.paused_chain_ids() == [w.genesis.id]
        await pos.step(3, guild=w.fork)
        assert w.genesis.id not in pos.recorder.ran and node.chain(w.genesis.id).state.height == height

        sb.add_bot(w.genesis)
        await pos.step(2)
        assert node.chain(w.genesis.id).state.height > height


async def test_a_rate_limited_channel_gets_the_newest_block_not_a_pile_of_old_ones(pos):
    w, sb = pos.w, pos.sb
    await pos.start()
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})
    # One post or edit per 2 s in the playground channel: slots (here, milliseconds apart) outrun it.
    sb.faults.enforce_bucket(
        lambda r: r.method in ("POST", "PATCH") and r.path.startswith(f"/channels/{w.blocks.id}/messages"),
        limit=1, per=2.0,
    )
    await pos.step()
    await sb.wait_until(lambda: slot_message(pos, w.blocks, 1), timeout=5, describe="slot 1's message")
    cog = pos.p.bot.get_cog("Staking")
    in_flight = []
    for _ in range(6):
        await pos.step()
        in_flight.append(len(cog.posts))
    assert max(in_flight) <= 1  # one write at a time per server, never a pile

    async def coalesced():
        return cog.board.coalesced >= 2
    await pos.step_until(coalesced, max_slots=30, what="slots coalesced while the channel is behind")
    last = pos.slot()
    await sb.wait_until(lambda: slot_message(pos, w.blocks, last), timeout=15, describe="the newest slot's message")

    # Every message only ever moved forward (no stale edit after a newer one), one message per epoch.
    messages = slot_messages(pos, w.blocks)
    epochs = [int(m.embeds[0]["title"].split()[2].replace(",", "")) for m in messages]
    assert epochs == sorted(set(epochs)) and len(messages) <= last // SLOTS_PER_EPOCH + 1
    shown_slots = [shown_slot(r.embeds) for m in messages for r in m.revisions]
    assert shown_slots == sorted(set(shown_slots)) and shown_slots[0] == 1 and shown_slots[-1] == last
    await sb.wait_until(lambda: not cog.posts, timeout=5, describe="the writer to finish")


async def test_slot_events_reach_the_webhook_when_committed_not_at_the_notifiers_idle_check(pos, monkeypatch):
    """Every committed outbox write wakes the notifier (bot/app.py), the slot driver's included: with
    the idle check an hour away, a justification still reaches the webhook as its block commits."""
    monkeypatch.setattr(bot.notifier, "IDLE_POLL_S", 3600.0)
    w, sb = pos.w, pos.sb
    guild_id = w.genesis.id
    notifier = pos.p.bot.notifier
    outbox = OutboxRepository(pos.p.bot.store.db)
    await pos.start(auto_attest=True)
    await pos.run(w.alice, "playground setup", {"channel": w.blocks})

    async def idle() -> bool:
        # Setup's wake drained what was there; from here on the notifier waits for a wake (or an hour).
        return not await outbox.backlog() and not notifier._workers and not notifier._wake.is_set()
    await eventually(idle, 15, "the notifier idle after the setup's delivery")

    async def justified() -> str | None:
        events = await outbox.all_events(guild_id)
        return next((f"Epoch {e.event.epoch:,} justified" for e in events if e.kind == "checkpoint_justified"), None)
    title = await pos.step_until(justified, max_slots=4 * SLOTS_PER_EPOCH, what="a justified checkpoint")
    await sb.wait_until(lambda: title in webhook_text(pos, w.blocks), timeout=15,
                        describe=lambda: f"{title!r} in {webhook_text(pos, w.blocks)!r}")
