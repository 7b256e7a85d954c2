"""No member can stall the bot: every command at its documented extremes and just past them.

The cases come from the command definitions the bot synced (``sb.commands``), so a command
or option added later is driven too.  Values inside the definition go through the sandbox
as Discord's client sends them; values just past it go out raw (``validate=False``), as a
modified client sends them.  Both run on a proof-of-work chain and on a proof-of-stake
chain with a validator, at the same time.  Every interaction must be acknowledged within
Discord's 3 s (the sandbox refuses a later answer), every refusal must be a clear one, and
the bot must never have blocked its event loop for 100 ms (``bot.lag_monitor``: the loop
thread's CPU time between two 10 ms ticks, which a busy test machine cannot inflate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bot.app import MAX_CONCURRENT_COMMANDS
from chain.mode import Mode
from chain.pos.beacon import ConsensusConfig
from sandbox import Upload
from sandbox.interactions import (
    ATTACHMENT,
    BOOLEAN,
    CHANNEL,
    INTEGER,
    MENTIONABLE,
    NUMBER,
    ROLE,
    STRING,
    SUB_COMMAND,
    SUB_COMMAND_GROUP,
    USER,
)
from tests.e2e.text import reply_text

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = "Something went wrong on our side"
# Discord's limits when a definition gives none.
DISCORD_MAX_INTEGER = 2**53 - 1
DISCORD_MAX_STRING = 6000
MAX_LAG_MS = 100
CATEGORY_CHANNEL = 4
# A loop that runs nothing for this long is stuck (the bug this test guards against froze it for good).
STALL_S = 5.0


class LoopStalled(Exception):
    """Raised inside whatever blocked the event loop, so a frozen bot fails the test instead of hanging it."""


@contextlib.contextmanager
def stall_watchdog(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """A thread pings the loop; when a ping waits ``STALL_S``, a signal raises ``LoopStalled`` in the
    main thread, the loop's, inside the code that blocks it (a command then fails as a bug)."""
    stop = threading.Event()
    main_thread = threading.main_thread().ident
    assert threading.get_ident() == main_thread, "the watchdog interrupts the main thread: run the loop there"

    def on_stall(signum, frame):
        raise LoopStalled(f"the event loop ran nothing for {STALL_S:.0f} s")

    def watch() -> None:
        while not stop.wait(0.1):
            answered = threading.Event()
            loop.call_soon_threadsafe(answered.set)
            waited = 0.0
            # In slices, so that leaving the block (the loop's thread joins this one) is never held up.
            while not answered.wait(0.1) and not stop.is_set():
                waited += 0.1
                if waited >= STALL_S:
                    signal.pthread_kill(main_thread, signal.SIGUSR2)
                    waited = float("-inf")  # once: the loop will answer when the exception unblocks it

    previous = signal.signal(signal.SIGUSR2, on_stall)
    watcher = threading.Thread(target=watch, name="stall-watchdog", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        signal.signal(signal.SIGUSR2, previous)


@dataclass(frozen=True)
class Case:
    path: str
    options: dict[str, Any]
    past: bool  # just past the definition: sent raw, and must be refused
    focused: str | None = None  # an autocomplete request for this option, not the command itself

    def __str__(self) -> str:
        shown = {
            k: (v if not isinstance(v, str) or len(v) < 20 else f"<{len(v)} chars>") for k, v in self.options.items()
        }
        what = f" (autocomplete {self.focused})" if self.focused else " (raw)" if self.past else ""
        return f"/{self.path} {shown}{what}"


@dataclass
class Server:
    """Where the cases run, and what a member- or channel-typed option gets."""

    guild: Any
    channel: Any
    admin: Any
    other_member: Any
    non_member: Any
    other_type_channel: Any


def leaf_commands(definitions: list[dict]) -> list[tuple[str, list[dict]]]:
    """(``"group sub"``, its options) for every command a member can run."""
    found = []

    def walk(prefix: str, options: list[dict]) -> None:
        subs = [o for o in options if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
        if not subs:
            found.append((prefix, options))
        for sub in subs:
            walk(f"{prefix} {sub['name']}", sub.get("options") or [])

    for command in definitions:
        if command.get("type", 1) == 1:
            walk(command["name"], command.get("options") or [])
    return sorted(found)


def inside(option: dict, server: Server) -> list[Any]:
    """The documented extremes of an option (the official client can send each)."""
    kind = option["type"]
    if option.get("choices"):
        return [c["value"] for c in option["choices"]]
    if kind in (INTEGER, NUMBER):
        return [option.get("min_value", -DISCORD_MAX_INTEGER), option.get("max_value", DISCORD_MAX_INTEGER)]
    if kind == STRING:
        # Digits: a height, a slot, a hash prefix and hex evidence all read them.
        return ["9" * option.get("min_length", 0), "9" * option.get("max_length", DISCORD_MAX_STRING)]
    if kind == BOOLEAN:
        return [True, False]
    if kind in (USER, MENTIONABLE):
        return [server.other_member]
    if kind == CHANNEL:
        return [server.channel]
    if kind == ROLE:
        return [server.guild.roles[server.guild.id]]
    if kind == ATTACHMENT:
        return [Upload("limits.txt", b"9" * 64)]
    raise AssertionError(f"no extremes for option type {kind}: teach test_limits about it")


def past(option: dict, server: Server) -> list[Any]:
    """Just past the definition: what only a modified client sends (sent raw)."""
    kind = option["type"]
    if option.get("choices"):
        return ["evil" if kind == STRING else 1 + max(c["value"] for c in option["choices"])]
    if kind in (INTEGER, NUMBER):
        return [option.get("min_value", -DISCORD_MAX_INTEGER) - 1, option.get("max_value", DISCORD_MAX_INTEGER) + 1]
    if kind == STRING:
        shortest = option.get("min_length", 0)
        return (["9" * (shortest - 1)] if shortest > 0 else []) + [
            "9" * (option.get("max_length", DISCORD_MAX_STRING) + 1)
        ]
    if kind == BOOLEAN:
        return ["evil"]
    if kind == CHANNEL:
        return [server.other_type_channel]
    return []


def default(option: dict, server: Server) -> Any:
    return inside(option, server)[0]


def cases_for(definitions: list[dict], server: Server) -> list[tuple[Case, bool]]:
    """Each command bare (its required options at their defaults), then each option at each
    extreme and just past it, the other required options at their defaults."""
    cases = []
    for path, options in leaf_commands(definitions):
        required = {o["name"]: default(o, server) for o in options if o.get("required")}
        cases.append(Case(path, required, past=False))
        for option in options:
            for value in inside(option, server):
                cases.append(Case(path, {**required, option["name"]: value}, past=False))
            for value in past(option, server):
                cases.append(Case(path, {**required, option["name"]: value}, past=True))
            if option["type"] == USER:
                # Discord lets a member pick any user, in the server or not.
                cases.append(Case(path, {**required, option["name"]: server.non_member}, past=True))
            if option.get("autocomplete"):
                # What is typed so far, from nothing to the longest a modified client may send.
                for typed in ("", "9" * option.get("max_length", DISCORD_MAX_STRING), "9" * DISCORD_MAX_STRING):
                    cases.append(Case(path, {option["name"]: typed}, past=False, focused=option["name"]))
    return cases


async def drive(p, server: Server, cases: list[Case]) -> list[str]:
    """Run the cases one after another; what went wrong, if anything."""
    problems = []
    for case in cases:
        if case.focused is not None:
            try:
                await p.sb.autocomplete(server.guild, server.channel, server.admin, case.path, case.options,
                                        focused=case.focused, timeout=p.sb.ack_deadline + 2)
            except TimeoutError:
                problems.append(f"{case}: no choices in time")
            continue
        h = await p.sb.invoke(
            server.guild, server.channel, server.admin, case.path, case.options,
            validate=not case.past, check_permissions=False,
        )
        try:
            # The sandbox refuses an answer after Discord's 3 s: an acknowledgement here was on time.
            await h.wait_ack(timeout=p.sb.ack_deadline + 2)
            await h.wait_response(timeout=15)
        except TimeoutError:
            problems.append(f"{case}: no answer in time: {h.describe()}")
            continue
        text = reply_text(h)
        if SOMETHING_WENT_WRONG in text:
            problems.append(f"{case}: a bug: {text!r}")
        elif case.past and not (h.ephemeral and text.startswith("❌")):
            problems.append(f"{case}: not refused: {text[:200]!r}")
    return problems


async def test_every_command_at_its_extremes_answers_in_time_without_stalling_the_bot(playground):
    p, w, sb = playground, playground.world, playground.sb
    services = p.bot.services
    # A proof-of-stake chain (alice is its genesis validator, bob has a wallet) in Genesis,
    # a proof-of-work chain in Fork Town; slots of 2 s, so the slot driver is busy meanwhile.
    await services.ensure_chain(w.genesis.id)
    await services.node.address(w.genesis.id, str(w.bob.id))
    config = ConsensusConfig(slot_duration_s=2, slots_per_epoch=4)
    await services.beacon.switch_mode(w.genesis.id, Mode.POS, str(w.alice.id), services.node.now(), base=config)
    await services.ensure_chain(w.fork.id)
    await sb.wait_until(lambda: services.node.chain(w.genesis.id).state.height >= 1, timeout=10,
                        describe="the first proof-of-stake block")
    pos = Server(w.genesis, w.general, w.alice, w.bob, w.dave_in_fork,
                 sb.add_channel(w.genesis, "archive", type=CATEGORY_CHANNEL))
    pow_ = Server(w.fork, w.fork_general, w.bob_in_fork, w.dave_in_fork, w.carol,
                  sb.add_channel(w.fork, "archive", type=CATEGORY_CHANNEL))

    definitions = sb.commands.global_commands
    pos_cases, pow_cases = cases_for(definitions, pos), cases_for(definitions, pow_)
    paths = {c.path for c in pos_cases}
    assert {"chain proposer", "playground config", "wallet pay", "validators", "stake deposit"} <= paths
    assert any(c.path == "chain proposer" and c.options == {"slot": DISCORD_MAX_INTEGER} for c in pos_cases)
    assert any(c.path == "chain block" and c.focused == "query" for c in pos_cases)

    loop = asyncio.get_running_loop()
    p.bot.lag_monitor.report_and_reset()
    started = loop.time()
    with stall_watchdog(loop):
        problems = await asyncio.gather(drive(p, pos, pos_cases), drive(p, pow_, pow_cases))
    lag = p.bot.lag_monitor.stats()
    log.info("%d interactions in %.1f s; event loop lag: %s", len(pos_cases) + len(pow_cases),
             loop.time() - started, lag)

    assert problems == [[], []]
    assert lag.samples > 0
    # The loop thread's CPU time between two ticks: the bot's own work blocking the loop. The wall-clock
    # lag (logged above) also counts the time a busy host did not schedule this process at all.
    assert lag.max_busy_ms < MAX_LAG_MS, f"the bot blocked its event loop: {lag}"
    # And the wall-clock lag the issue names, at its 99th percentile (the max alone is the host's).
    assert lag.p99_ms < MAX_LAG_MS, f"the event loop lagged: {lag}"


async def test_a_proposer_draw_far_ahead_is_refused_with_the_slots_it_can_draw(playground):
    p, w, sb = playground, playground.world, playground.sb
    services = p.bot.services
    await services.ensure_chain(w.genesis.id)
    config = ConsensusConfig(slot_duration_s=2, slots_per_epoch=4)
    await services.beacon.switch_mode(w.genesis.id, Mode.POS, str(w.alice.id), services.node.now(), base=config)

    with stall_watchdog(asyncio.get_running_loop()):
        h = await sb.invoke(w.genesis, w.general, w.bob, "chain proposer", {"slot": 2_000_000_000})
        await h.wait_ack(5)
    text = reply_text(h)
    assert h.ephemeral and "Slot 2,000,000,000 is too far ahead" in text, text
    allowed = re.search(r"Ask for a slot from ([\d,]+) to ([\d,]+)\.", text)
    assert allowed is not None, text
    first, last = (int(n.replace(",", "")) for n in allowed.groups())
    assert last - first >= 2 * 4  # at least the two epochs ahead of the current slot
    # The current slot only moves on: the last slot named stays drawable.
    h = await sb.invoke(w.genesis, w.general, w.bob, "chain proposer", {"slot": last})
    await h.wait_ack(5)
    assert f"Proposer of slot {last:,}" in reply_text(h), reply_text(h)


async def test_commands_still_waiting_on_discord_after_their_answer_do_not_hold_up_everyone_else(playground):
    """The tree runs a few commands at a time; a command that answered (or deferred) and now waits
    on something slow must not keep its turn, or a handful of them starve every other server."""
    p, w, sb = playground, playground.world, playground.sb
    slow = []
    for i in range(MAX_CONCURRENT_COMMANDS):
        guild = sb.add_guild(f"Server {i}")
        channel = sb.add_channel(guild, "general")
        admin = sb.add_member(guild, f"admin{i}", permissions={"manage_guild": True, "manage_webhooks": True})
        sb.set_bot_permissions(guild, {"manage_webhooks": True})
        slow.append((guild, channel, admin))
    await sb.wait_until(lambda: all(p.bot.get_guild(g.id) is not None for g, _, _ in slow), timeout=10,
                        describe="the bot to see the new servers")
    # Discord takes its time creating webhooks: each /playground setup defers, then waits.
    sb.faults.delay("POST /channels/*/webhooks", sb.ack_deadline + 1)
    setups = [await sb.invoke(g, ch, admin, "playground setup", {"channel": ch}) for g, ch, admin in slow]
    for h in setups:
        await h.wait_ack(timeout=sb.ack_deadline + 2)
    h = await sb.invoke(w.genesis, w.general, w.bob, "wallet balance")
    await h.wait_ack(timeout=sb.ack_deadline + 2)
    assert h.acknowledged and "Your wallet" in reply_text(h)
    for h in setups:
        await h.wait_for(lambda h: h.followups or (h.response is not None and not h.response.loading),
                         timeout=6 * sb.ack_deadline, what="the setup's answer")
