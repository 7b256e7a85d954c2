"""/playground dashboard end to end: the real bot in the sandbox hands an admin a link that opens its
server's dashboard, revokes links, refuses bad input and members without Manage Server, and says so
when the dashboard is off."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys

import aiohttp

from tests.e2e.test_admin import answer, text_of
from tests.e2e.test_modified_client import assert_refused, raw
from tests.e2e.test_startup_safety import ROOT, bot_env

LINK = re.compile(r"http://127\.0\.0\.1:[0-9]+/d/[0-9A-Za-z._-]+")


async def link_for(p, member, options=None, *, guild=None) -> str:
    h, reply = await answer(p, member, "playground dashboard", options or {}, guild=guild)
    assert h.ephemeral
    [link] = LINK.findall(text_of(reply))
    return link


async def status_of(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def test_an_admin_gets_a_link_that_opens_the_servers_dashboard(dashboard_playground):
    p, w = dashboard_playground, dashboard_playground.world
    link = await link_for(p, w.alice, {"hours": 2})
    assert link.startswith(f"http://127.0.0.1:{p.bot.dashboard.port}/d/{w.genesis.id}.")
    status, page = await status_of(link)
    assert status == 200 and "Genesis Guild" in page and "Fork Town" not in page
    status, state = await status_of(link + "/state")
    assert status == 200 and json.loads(state)["server"] == "Genesis Guild"
    # bob is Fork Town's admin: his link is Fork Town's.
    fork = await link_for(p, w.bob_in_fork, guild=w.fork)
    status, page = await status_of(fork)
    assert status == 200 and "Fork Town" in page and "Genesis Guild" not in page


async def test_revoking_stops_every_earlier_link(dashboard_playground):
    p, w = dashboard_playground, dashboard_playground.world
    first, second = await link_for(p, w.alice), await link_for(p, w.alice)
    fork = await link_for(p, w.bob_in_fork, guild=w.fork)
    h, reply = await answer(p, w.alice, "playground dashboard", {"revoke": True})
    assert h.ephemeral and "revoked" in text_of(reply)
    assert (await status_of(first))[0] == 403 and (await status_of(second))[0] == 403
    assert (await status_of(fork))[0] == 200  # another server's links are not touched
    assert (await status_of(await link_for(p, w.alice)))[0] == 200


async def test_bad_input_and_plain_members_are_refused_and_change_nothing(dashboard_playground):
    p, w = dashboard_playground, dashboard_playground.world
    link = await link_for(p, w.alice)
    h, reply = await answer(p, w.alice, "playground dashboard", {"revoke": True, "hours": 3})
    assert h.ephemeral and text_of(reply).startswith("❌") and "Nothing was changed" in text_of(reply)
    h = await raw(p, w.alice, "playground dashboard", {"hours": 0})
    assert_refused(h, "hours")
    h = await raw(p, w.alice, "playground dashboard", {"hours": 721})
    assert_refused(h, "hours")
    h, reply = await answer(p, w.bob, "playground dashboard", {"revoke": True}, check_permissions=False)
    assert h.ephemeral and text_of(reply) == "❌ You need the Manage Server permission for this."
    assert (await status_of(link))[0] == 200  # none of it revoked anything


async def test_with_the_dashboard_off_the_command_says_how_to_turn_it_on(playground):
    p, w = playground, playground.world
    assert p.bot.dashboard is None
    h, reply = await answer(p, w.alice, "playground dashboard")
    assert h.ephemeral and "DASHBOARD_PORT" in text_of(reply) and text_of(reply).startswith("❌")


# --- sandbox play: `python -m bot` with no token ------------------------------------------


async def start_sandbox_bot(env):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=ROOT, env=env, start_new_session=True,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    seen = b""
    try:
        # Until both links' lines, or the line saying the dashboard is off, are printed whole.
        while not (re.search(rb"Genesis Guild: http\S+\n", seen) and re.search(rb"Fork Town: http\S+\n", seen)) \
                and not re.search(rb"dashboard is off.*\n", seen):
            chunk = await asyncio.wait_for(proc.stdout.read(4096), 90)
            assert chunk, f"the bot ended before it printed its links: {seen.decode()}"
            seen += chunk
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, seen.decode()


async def quit_bot(proc) -> int:
    proc.stdin.write(b":quit\n")
    await proc.stdin.drain()
    try:
        return await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sandbox_play_prints_a_working_link_for_each_server(tmp_path):
    proc, printed = await start_sandbox_bot(bot_env(tmp_path / "data", DASHBOARD_PORT="0"))
    try:
        links = dict(re.findall(r"^  (Genesis Guild|Fork Town): (http://127\.0\.0\.1:[0-9]+/d/\S+)$", printed, re.M))
        assert set(links) == {"Genesis Guild", "Fork Town"}, printed
        for name, link in links.items():
            status, page = await status_of(link)
            assert status == 200 and name in page
    finally:
        assert await quit_bot(proc) == 0


async def test_sandbox_play_goes_on_without_the_dashboard_when_its_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, printed = await start_sandbox_bot(bot_env(tmp_path / "data", DASHBOARD_PORT=str(port)))
        try:
            assert f"The classroom dashboard is off: port {port} on 127.0.0.1 is in use" in printed
            assert "DASHBOARD_PORT" in printed
            proc.stdin.write(b"alice: /chain tip\n")
            await proc.stdin.drain()
            seen = printed
            while "Tip: block 0" not in seen:  # play goes on
                chunk = await asyncio.wait_for(proc.stdout.read(4096), 90)
                assert chunk, seen
                seen += chunk.decode()
        finally:
            assert await quit_bot(proc) == 0


async def test_the_page_shows_the_same_charts_as_chain_chart(dashboard_playground):
    """The dashboard's charts are the bot's ChartBook (bot/app.py wires it): a real PNG for a chart
    with something to show, a 503 (the page shows the image's alt text) for one without."""
    from tests.e2e.test_explorer import mine_blocks

    p, w = dashboard_playground, dashboard_playground.world
    await mine_blocks(p, 2)
    link = await link_for(p, w.alice)
    async with aiohttp.ClientSession() as http:
        async with http.get(link + "/chart/difficulty.png") as response:
            assert response.status == 200 and response.content_type == "image/png"
            png = await response.read()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"Line chart of difficulty over block height 0 to 2" in png
        async with http.get(link + "/chart/tree.png") as response:
            assert response.status == 503  # no fork yet
    status, page = await status_of(link)
    assert status == 200 and 'data-kind="difficulty"' in page
