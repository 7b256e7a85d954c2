"""/mine end to end: progress edits, found blocks, stale races, stop, stats, cooldown."""

import asyncio
import re

from tests.chainkit import solve
from tests.e2e.text import reply_text, shown

# Calibrating to these rates makes a block take, on one worker, practically forever / a few seconds.
IMPOSSIBLE_RATE = 10**12
RACE_RATE = 40_000


async def set_server(p, guild, **settings):
    await p.bot.services.server_settings_store.replace(guild.id, settings)


def final(handle):
    text = reply_text(handle)
    return any(word in text for word in ("found!", "Stale", "Time up", "Mining stopped", "Chain reset"))


async def test_found_block_reports_height_hash_nonce_reward(playground):
    p, w = playground, playground.world
    h = await p.run(w.alice, "mine start")
    assert h.deferred and not h.ephemeral
    await h.wait_for(final, timeout=20)
    text = reply_text(h)
    assert "✅ Block 1 found!" in text and "Nonce" in text and "50 pts" in text
    state = p.bot.services.node.chain(w.genesis.id).state
    assert state.height == 1 and state.tip.hash_hex() in text


async def test_progress_is_edited_then_time_is_up(playground):
    p, w = playground, playground.world
    p.bot.services.measured_hash_rate = IMPOSSIBLE_RATE
    await set_server(p, w.genesis, session_s=2, cooldown_s=0)
    h = await p.run(w.alice, "mine start")
    await h.wait_for(final, timeout=20)
    progress = [shown(r) for r in h.edits if "Mining block 1" in shown(r)]
    assert progress, [shown(r) for r in h.edits]
    sample = progress[-1]
    for expected in ("░", " 0%", "Hashes tried", "H/s", "100% of this server's hash power", "Best hash so far"):
        assert expected in sample, (expected, sample)
    assert "Time up" in reply_text(h) and "No block in 2 s" in reply_text(h)
    assert p.bot.services.node.chain(w.genesis.id).state.height == 0


async def test_progress_built_after_the_core_ended_the_session_keeps_its_share(playground, monkeypatch):
    # The race behind a once-flaky test: the core ends a timed-out session, then node.mine still
    # awaits (the energy record) before returning, and a progress edit built in between read the
    # core's live sessions: "0% of this server's hash power (0 mining)". Here the window is held
    # open until one more progress edit has been made in it.
    p, w = playground, playground.world
    p.bot.services.measured_hash_rate = IMPOSSIBLE_RATE
    await set_server(p, w.genesis, session_s=1, cooldown_s=0)
    mining, node = p.bot.get_cog("Mining"), p.bot.services.node
    edited = asyncio.Event()
    real_edit, real_mine = mining._edit, node.mine

    async def edit(live, embed):
        await real_edit(live, embed)
        edited.set()

    async def mine(*args, **kwargs):
        result = await real_mine(*args, **kwargs)
        assert not p.bot.services.hashing_core.stats().per_session  # the core has ended it
        edited.clear()
        await edited.wait()
        return result

    monkeypatch.setattr(mining, "_edit", edit)
    monkeypatch.setattr(node, "mine", mine)
    h = await p.run(w.alice, "mine start")
    await h.wait_for(final, timeout=20)
    progress = [shown(r) for r in h.edits if "Mining block 1" in shown(r)]
    assert progress and "100% of this server's hash power (1 mining)" in progress[-1], progress[-1:]


async def test_stop_stats_and_one_session_per_member(playground):
    p, w = playground, playground.world
    p.bot.services.measured_hash_rate = IMPOSSIBLE_RATE
    h = await p.run(w.alice, "mine start")
    await h.wait_for(lambda h: len(h.edits) >= 1, timeout=10)

    again = await p.run(w.alice, "mine start")
    assert again.ephemeral and "already mining" in reply_text(again)

    stats = await p.run(w.alice, "mine stats")
    assert stats.ephemeral and "block 1:" in reply_text(stats) and "Blocks you mined" in reply_text(stats)
    # Which nonce search runs ("native (SHA-NI)", "native (portable C)" or "Python"), for members to see.
    assert f"{p.bot.services.hashing_core.backend_label} hashing" in reply_text(stats)

    stop = await p.run(w.alice, "mine stop")
    assert stop.ephemeral and "Stopping" in reply_text(stop)
    await h.wait_for(final, timeout=10)
    assert "stopped by you" in reply_text(h)

    nothing = await p.run(w.bob, "mine stop")
    assert nothing.ephemeral and "no mining session" in reply_text(nothing)


async def test_cooldown_after_a_session(playground):
    p, w = playground, playground.world
    await set_server(p, w.genesis, cooldown_s=600)
    h = await p.run(w.alice, "mine start")
    await h.wait_for(final, timeout=20)
    again = await p.run(w.alice, "mine start")
    # When, as Discord's relative timestamp (each member's app counts it down): about 600 s from now.
    when = re.search(r"you can mine again <t:(\d+):R>\.", reply_text(again))
    assert again.ephemeral and when is not None, reply_text(again)
    assert 0 < int(when.group(1)) - p.bot.services.node.now() <= 600
    assert p.bot.services.node.chain(w.genesis.id).state.height == 1


async def test_two_miners_race_one_wins_the_other_is_stale(playground):
    p, w = playground, playground.world
    p.bot.services.measured_hash_rate = RACE_RATE
    alice, bob = await asyncio.gather(p.run(w.alice, "mine start"), p.run(w.bob, "mine start"))
    await alice.wait_for(final, timeout=60)
    await bob.wait_for(final, timeout=60)
    texts = sorted([reply_text(alice), reply_text(bob)])
    assert "Block 1 found!" in texts[1]
    assert "Stale: someone else found block 1 first" in texts[0]
    assert p.bot.services.node.chain(w.genesis.id).state.height == 1


async def test_a_reset_while_mining_says_so(playground):
    p, w = playground, playground.world
    p.bot.services.measured_hash_rate = IMPOSSIBLE_RATE
    h = await p.run(w.alice, "mine start")
    await h.wait_for(lambda h: len(h.edits) >= 1, timeout=10)
    await p.bot.services.node.delete_chain(w.genesis.id)
    await h.wait_for(final, timeout=10)
    assert "reset this server's chain while you were mining" in reply_text(h)


async def test_double_clicked_start_makes_one_session_that_stop_ends(playground):
    """Two `/mine start` in the same instant: before the fix both passed the check, the second
    failed on the core and dropped the first from the cog, which then hashed until its deadline
    with `/mine stop` unable to find it."""
    p, w = playground, playground.world
    p.bot.services.measured_hash_rate = IMPOSSIBLE_RATE
    await p.bot.services.ensure_chain(w.genesis.id)
    first = await p.sb.invoke(w.genesis, w.general, w.alice, "mine start", {})
    second = await p.sb.invoke(w.genesis, w.general, w.alice, "mine start", {})
    await first.wait_ack(5)
    await second.wait_ack(5)
    refused = [h for h in (first, second) if h.ephemeral]
    assert len(refused) == 1 and "already mining" in reply_text(refused[0])
    running = next(h for h in (first, second) if not h.ephemeral)
    core = p.bot.services.hashing_core
    await running.wait_for(lambda h: len(h.edits) >= 1, timeout=10)
    stop = await p.run(w.alice, "mine stop")
    assert "Stopping" in reply_text(stop)
    await running.wait_for(final, timeout=10)
    assert "Mining stopped" in reply_text(running)
    assert not [s for s in core.stats().per_session if s.chain_id == w.genesis.id]


async def test_stop_right_after_start_ends_the_session(playground):
    p, w = playground, playground.world
    p.bot.services.measured_hash_rate = IMPOSSIBLE_RATE
    await p.bot.services.ensure_chain(w.genesis.id)
    start = await p.sb.invoke(w.genesis, w.general, w.alice, "mine start", {})
    stop = await p.sb.invoke(w.genesis, w.general, w.alice, "mine stop", {})
    await stop.wait_ack(5)
    assert "Stopping" in reply_text(stop)
    await start.wait_for(final, timeout=10)
    assert "Mining stopped" in reply_text(start)
    assert not [s for s in p.bot.services.hashing_core.stats().per_session if s.chain_id == w.genesis.id]


# --- auto-continue ----------------------------------------------------------------------------
# The fixture's difficulty makes a block take a few dozen hashes: an auto-continue session mines
# block after block within milliseconds, so these tests stop it at chosen moments, never by time.

ALICE_SESSION = "blocks found by you: {found} · blocks mined since you started: {seen}\n"


def live_session(p, member):
    return p.bot.get_cog("Mining").sessions[(p.world.genesis.id, member.id)]


def no_core_session(p):
    return not [s for s in p.bot.services.hashing_core.stats().per_session if s.chain_id == p.world.genesis.id]


async def test_auto_continue_mines_block_after_block_until_stopped(playground):
    p, w = playground, playground.world
    await set_server(p, w.genesis, cooldown_s=0)
    node = p.bot.services.node

    def height() -> int:
        return node.chain(w.genesis.id).state.height if node.has_chain(w.genesis.id) else 0

    h = await p.run(w.alice, "mine start", {"auto_continue": True})
    assert h.deferred and not h.ephemeral
    live = live_session(p, w.alice)
    # Progress edits name the block and count the session's blocks even when no chunk goes unsolved.
    await h.wait_for(
        lambda h: height() >= 2 and any("blocks found by you:" in shown(r) for r in h.edits), timeout=20
    )
    assert not final(h), reply_text(h)  # two blocks in and still mining
    sample = next(shown(r) for r in h.edits if "blocks found by you:" in shown(r))
    assert "Mining block" in sample and "time left:" in sample, sample

    stop = await p.run(w.alice, "mine stop")
    assert "Stopping" in reply_text(stop)
    await live.done.wait()
    mined = height()
    assert mined >= 2
    text = reply_text(h)
    assert "Mining stopped" in text and "stopped by you" in text, text
    assert ALICE_SESSION.format(found=mined, seen=mined) in text, text
    assert no_core_session(p) and height() == mined
    again = await p.run(w.alice, "mine start")  # the session is over: a new one may start
    assert not again.ephemeral


async def test_stop_when_a_block_is_found_ends_an_auto_continue_session(playground, monkeypatch):
    """`/mine stop` lands between the core finding block 2 and the node appending it: block 2 still
    counts (it was found before the stop) and nothing is mined after it."""
    p, w = playground, playground.world
    node = p.bot.services.node
    real_accept = node.accept_block

    async def accept_block(chain_id, block):
        if node.chain(chain_id).state.height == 1:  # block 2 was just found
            stop = await p.run(w.alice, "mine stop")
            assert "Stopping" in reply_text(stop)
        return await real_accept(chain_id, block)

    monkeypatch.setattr(node, "accept_block", accept_block)
    h = await p.run(w.alice, "mine start", {"auto_continue": True})
    live = live_session(p, w.alice)
    await live.done.wait()
    text = reply_text(h)
    assert "Mining stopped" in text and ALICE_SESSION.format(found=2, seen=2) in text, text
    assert node.chain(w.genesis.id).state.height == 2 and no_core_session(p)


async def test_auto_continue_goes_on_after_someone_elses_block(playground, monkeypatch):
    """Bob's block 1 lands just before Alice's: hers is stale, her session mines block 2 and counts
    both blocks as seen, one of them as found."""
    p, w = playground, playground.world
    node = p.bot.services.node
    real_accept = node.accept_block
    submitted = 0

    async def accept_block(chain_id, block):
        nonlocal submitted
        submitted += 1
        if submitted == 1:  # Alice found block 1: Bob's comes first (hers is kept as a side block)
            state = node.chain(chain_id).state
            bob = await node.address(chain_id, str(w.bob.id))
            await real_accept(chain_id, solve(node.template(chain_id, bob), state.params))
        elif node.chain(chain_id).state.height == 1:  # Alice found block 2
            stop = await p.run(w.alice, "mine stop")
            assert "Stopping" in reply_text(stop)
        return await real_accept(chain_id, block)

    monkeypatch.setattr(node, "accept_block", accept_block)
    h = await p.run(w.alice, "mine start", {"auto_continue": True})
    live = live_session(p, w.alice)
    await live.done.wait()
    text = reply_text(h)
    assert "Mining stopped" in text and ALICE_SESSION.format(found=1, seen=2) in text, text
    assert "Your last block: 2" in text
    runtime = node.chain(w.genesis.id)
    alice = await node.address(w.genesis.id, str(w.alice.id))
    bob = await node.address(w.genesis.id, str(w.bob.id))
    assert runtime.state.height == 2 and runtime.blocks_mined[alice] == 1 and runtime.blocks_mined[bob] == 1


async def test_stop_while_the_next_block_is_set_up_mines_nothing_more(playground, monkeypatch):
    """`/mine stop` lands while the node prepares block 2's job, before the core has the session:
    at this difficulty the first chunk would find block 2 before any progress report."""
    p, w = playground, playground.world
    node = p.bot.services.node
    real_prepare = node.drop_stale_consensus_proposal
    calls = 0

    async def prepare(chain_id):
        nonlocal calls
        calls += 1
        if calls == 2:
            stop = await p.run(w.alice, "mine stop")
            assert "Stopping" in reply_text(stop)
        return await real_prepare(chain_id)

    monkeypatch.setattr(node, "drop_stale_consensus_proposal", prepare)
    h = await p.run(w.alice, "mine start", {"auto_continue": True})
    live = live_session(p, w.alice)
    await live.done.wait()
    text = reply_text(h)
    assert "Mining stopped" in text and ALICE_SESSION.format(found=1, seen=1) in text, text
    assert node.chain(w.genesis.id).state.height == 1 and no_core_session(p)


async def test_stop_before_the_core_has_a_session_mines_nothing(playground, monkeypatch):
    """Without auto-continue too: a stop that lands while the node prepares the job used to be seen
    only at the first progress report, which never comes when the first chunk finds the block."""
    p, w = playground, playground.world
    node = p.bot.services.node
    real_prepare = node.drop_stale_consensus_proposal

    async def prepare(chain_id):
        stop = await p.run(w.alice, "mine stop")
        assert "Stopping" in reply_text(stop)
        return await real_prepare(chain_id)

    monkeypatch.setattr(node, "drop_stale_consensus_proposal", prepare)
    h = await p.run(w.alice, "mine start")
    await h.wait_for(final, timeout=20)
    assert "Mining stopped" in reply_text(h), reply_text(h)
    assert node.chain(w.genesis.id).state.height == 0 and no_core_session(p)


async def test_auto_continue_ends_when_the_sessions_time_is_up(playground):
    """The time budget is the session's, not each block's: block after block, it still runs out."""
    p, w = playground, playground.world
    await set_server(p, w.genesis, session_s=1, cooldown_s=0)
    h = await p.run(w.alice, "mine start", {"auto_continue": True})
    live = live_session(p, w.alice)
    await live.done.wait()
    mined = p.bot.services.node.chain(w.genesis.id).state.height
    text = reply_text(h)
    assert "Time up" in text and ALICE_SESSION.format(found=mined, seen=mined) in text, text
    assert mined >= 1 and no_core_session(p)


async def test_an_auto_continue_that_is_not_a_boolean_is_refused(playground):
    """A modified client's raw value: refused clearly, nothing reserved, no cooldown."""
    p, w = playground, playground.world
    h = await p.sb.invoke(w.genesis, w.general, w.alice, "mine start", {"auto_continue": "yes"}, validate=False)
    await h.wait_ack(5)
    await h.wait_response(5)
    text = reply_text(h)
    assert h.ephemeral and "auto_continue" in text and "true or false" in text, text
    assert (w.genesis.id, w.alice.id) not in p.bot.get_cog("Mining").sessions and no_core_session(p)
    again = await p.run(w.alice, "mine start")
    assert not again.ephemeral


async def test_the_hashing_cpu_budget_reaches_the_core_and_members_see_it(sb, tmp_path):
    from sandbox.demo import populate_demo
    from tests.e2e.conftest import Playground, make_settings, running_bot

    w = populate_demo(sb)
    settings = make_settings(tmp_path / "budget.sqlite3", hashing_cpu_percent=50)  # HASHING_CPU_PERCENT=50
    async with running_bot(sb, settings) as bot:
        p = Playground(sb, w, bot, settings)
        core = bot.services.hashing_core
        assert core.budget.percent == 50 and core.stats().cpu_percent == 50
        stats = await p.run(w.alice, "mine stats")
        assert f"{core.backend_label} hashing, at most 50% of the CPU" in reply_text(stats)
