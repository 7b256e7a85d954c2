"""``python -m bot``: run Consensus Playground.

With ``DISCORD_TOKEN`` set it connects to Discord (or to ``DISCORD_API_BASE`` /
``DISCORD_GATEWAY_URL`` if set).  Without a token it starts the built-in
sandbox on 127.0.0.1 with a demo world and a terminal client, so a newcomer
can type ``alice: /mine start`` and play at once.

``python -m bot --shards N [--processes K]`` runs a sharded bot instead: the launcher
(``bot/cluster.py``) starts K processes of this same command, each serving its own shards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys
from pathlib import Path

import aiohttp
import discord

from bot.app import PlaygroundBot, make_bot, point_discord_at
from bot.log_output import LOG_FILE_NAME, configure_logging
from bot.preflight import Preflight, StartupRefusedError, StartupUnavailableError, run_preflight
from bot.settings import Settings, SettingsError
from sandbox import Sandbox, point_discord_py_at, run_terminal
from sandbox.demo import populate_demo
from sandbox.world_file import WorldFileError

log = logging.getLogger("bot")


# Where the terminal's !save puts the files the bot sends (exports, protection files).
SAVED_FOLDER_NAME = "saved"


def install_signal_handlers(stop: asyncio.Event, bot: PlaygroundBot) -> None:
    """SIGTERM/SIGINT stop the bot cleanly; SIGUSR1 logs event-loop lag since the last report."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, AttributeError):
        loop.add_signal_handler(signal.SIGUSR1, bot.lag_monitor.report_and_reset)


STARTUP_TIMEOUT_S = 120.0
# Refused to start (bad setting, wrong or missing key, database in use, token rejected, sandbox
# port taken): sysexits' EX_CONFIG.
EXIT_REFUSED = 78
# Discord (or DISCORD_API_BASE) could not be reached at login, or PostgreSQL could not be used at the
# start (down, restarting, the network): sysexits' EX_UNAVAILABLE; starting again later can work, so a
# supervisor (or the launcher) may retry.
EXIT_UNAVAILABLE = 69
# Sandbox play keeps its servers, members, messages and webhooks here, beside the database whose
# chains are keyed by those servers' ids: the two belong together.
SANDBOX_WORLD_FILE = "sandbox-world.json"
# Sandbox play serves the classroom dashboard here unless DASHBOARD_PORT says otherwise.
SANDBOX_DASHBOARD_PORT = 8766
# How long the links printed at a sandbox start work, in hours.
SANDBOX_LINK_HOURS = 24


async def run_bot(bot: PlaygroundBot, token: str, stop: asyncio.Event) -> None:
    """Run until the bot ends or a signal asks it to; always close cleanly."""
    runner = asyncio.create_task(bot.start(token), name="bot")
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not bot.is_closed():
            await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def connection_problem(exc: aiohttp.ClientConnectionError) -> str:
    """The cause in a few words ("Connect call failed", "Name or service not known"), no traceback."""
    cause = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc.__cause__ or exc
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(cause) or type(cause).__name__


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def refuse(reason: str, status: int = EXIT_REFUSED) -> int:
    """One line on stderr, no traceback: what is wrong and what to do."""
    sys.stderr.write(f"consensus-playground: cannot start: {reason}\n")
    return status


def log_file_for(settings: Settings) -> Path:
    return settings.database_path.parent / LOG_FILE_NAME


async def main() -> int:
    try:
        settings = Settings()
    except SettingsError as exc:
        return refuse(f"invalid setting: {exc}. Fix it in the environment or in .env (see .env.example).")
    sandboxed = settings.discord_token is None
    configure_logging(
        settings.log_level, log_file_for(settings) if sandboxed else None,
        process=f"p{settings.process_index}" if settings.sharded else None,
    )
    # Before anything connects, listens or writes: the lock, the key, the file modes.
    try:
        preflight = await run_preflight(settings)
    except StartupUnavailableError as exc:
        return refuse(str(exc), EXIT_UNAVAILABLE)
    except StartupRefusedError as exc:
        return refuse(str(exc))
    try:
        return await run(settings, preflight)
    finally:
        await preflight.close()


async def run(settings: Settings, preflight: Preflight) -> int:
    stop = asyncio.Event()
    if settings.discord_token is not None:
        point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
        bot = make_bot(settings, preflight=preflight)
        if settings.sharded:
            log.info("process %d serving %s", settings.process_index, settings.shard_scope().describe())
        install_signal_handlers(stop, bot)
        api = settings.discord_api_base or "Discord"
        try:
            await run_bot(bot, settings.discord_token.get_secret_value(), stop)
        except discord.LoginFailure:
            # discord.py raises it for a 401 on login: the token is wrong, revoked or reset.
            return refuse(
                f"{api} rejected DISCORD_TOKEN (401 Unauthorized). Copy the token again "
                "(Developer Portal, Bot, Reset Token) into DISCORD_TOKEN, or unset it to play in the sandbox."
            )
        except aiohttp.ClientConnectionError as exc:
            return refuse(
                f"cannot reach {api} ({connection_problem(exc)}). Check the network "
                "(and DISCORD_API_BASE / DISCORD_GATEWAY_URL if set), then start again.",
                EXIT_UNAVAILABLE,
            )
        return 0

    world_path = settings.database_path.parent / SANDBOX_WORLD_FILE
    try:
        sandbox = Sandbox("127.0.0.1", settings.sandbox_port, world_path=world_path)
    except WorldFileError as exc:
        return refuse(str(exc))
    try:
        await sandbox.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return refuse(
                f"port {settings.sandbox_port} on 127.0.0.1 is already in use (another sandbox or bot?). "
                "Stop it, or set SANDBOX_PORT to a free port (0 picks one)."
            )
        return refuse(f"cannot start the sandbox on 127.0.0.1:{settings.sandbox_port}: {exc.strerror or exc}")
    # Started above (to refuse a taken port in one line): closed here, never started twice.
    try:
        return await play_in_sandbox(sandbox, settings, preflight, stop, world_path)
    finally:
        await sandbox.close()


async def play_in_sandbox(
    sb: Sandbox, settings: Settings, preflight: Preflight, stop: asyncio.Event, world_path: Path
) -> int:
    if sb.world_restored:
        found = f"Back in the sandbox world saved in {world_path} (delete it and the database to start over)."
    else:
        populate_demo(sb)
        found = f"A new sandbox world, kept in {world_path} for the next start."
    servers = " and ".join(g.name for g in sb.guilds.values())
    if settings.dashboard_port is None:
        # On in sandbox play: the dashboard is part of trying the playground out.
        settings = settings.model_copy(update={"dashboard_port": SANDBOX_DASHBOARD_PORT})
    point_discord_py_at(sb.api_base, sb.gateway_url)
    data = settings.database_path.parent
    sys.stdout.write(
        f"No DISCORD_TOKEN: playing in the built-in Discord sandbox (local only), servers {servers}.\n"
        f"{found}\n"
        f"The log is in {log_file_for(settings)}; files you !save go to {data / SAVED_FOLDER_NAME}/.\n"
        "New here? Type the walk-through of README.md (\"Play at once, without Discord\") line by line, "
        "or  alice: /help\n"
    )
    bot = PlaygroundBot(settings, preflight=preflight)
    install_signal_handlers(stop, bot)
    bot_task = asyncio.create_task(run_bot(bot, sb.bot_token, stop))
    # Typed commands wait until the bot has logged in and synced its commands: on a slow
    # machine the first lines would otherwise meet an unknown command (or a half-started bot).
    ready = asyncio.create_task(sb.wait_commands_synced(timeout=STARTUP_TIMEOUT_S))
    await asyncio.wait({bot_task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if bot_task.done():
        ready.cancel()
        await bot_task
        return 1
    await ready
    await sb.wait_until_ready(timeout=STARTUP_TIMEOUT_S)
    await print_dashboard_links(bot, sb, settings)
    terminal = asyncio.create_task(
        run_terminal(sb, await stdin_reader(), sys.stdout, save_dir=data / SAVED_FOLDER_NAME)
    )
    await asyncio.wait({bot_task, terminal}, return_when=asyncio.FIRST_COMPLETED)
    # The terminal ends at EOF or :quit, which also ends the bot.
    stop.set()
    await bot_task
    terminal.cancel()
    return 0


async def print_dashboard_links(bot: PlaygroundBot, sb: Sandbox, settings: Settings) -> None:
    """The classroom dashboard's link for each sandbox server (an admin gets one with /playground dashboard)."""
    if bot.dashboard is None:
        sys.stdout.write(
            f"The classroom dashboard is off: port {settings.dashboard_port} on {settings.dashboard_host} is in use "
            "(set DASHBOARD_PORT to a free port, 0 picks one).\n"
        )
        return
    lines = [f"Classroom dashboard (read-only, live; valid {SANDBOX_LINK_HOURS} h), open in a browser:"]
    for guild in sb.guilds.values():
        lines.append(f"  {guild.name}: {await bot.dashboard.issue_link(guild.id, SANDBOX_LINK_HOURS)}")
    sys.stdout.write("\n".join(lines) + "\n")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Run Consensus Playground (settings come from the environment and .env).",
    )
    parser.add_argument(
        "--shards", type=int, metavar="N",
        help="run a sharded bot: N Discord shards over several processes (needs DATABASE_URL; README, Scaling out)",
    )
    parser.add_argument(
        "--processes", type=int, metavar="K", help="with --shards: how many processes (default: one per shard)",
    )
    arguments = parser.parse_args(argv)
    if arguments.processes is not None and arguments.shards is None:
        parser.error("--processes needs --shards")
    return arguments


def entry(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    if arguments.shards is not None:
        from bot.cluster import run_cluster

        return run_cluster(arguments.shards, arguments.processes)
    return asyncio.run(main())


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
