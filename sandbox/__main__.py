"""``python -m sandbox``: start a sandbox with a demo world and an interactive terminal.

Point a bot at it with the printed DISCORD_API_BASE / DISCORD_GATEWAY_URL /
DISCORD_TOKEN values (in code: ``sandbox.point_discord_py_at(api_base, gateway_url)``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from .demo import populate_demo
from .server import Sandbox
from .terminal import run_terminal
from .world_file import WorldFileError

_log = logging.getLogger(__name__)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 = ephemeral; default 8765)")
    parser.add_argument("--token", default=None, help="bot token to accept (default: generated)")
    parser.add_argument("--no-demo", action="store_true", help="start with no guilds")
    parser.add_argument(
        "--world", type=Path, default=None, metavar="FILE",
        help="keep the world in FILE: loaded at start if it exists, saved after changes (default: memory only)",
    )
    parser.add_argument("--no-terminal", action="store_true", help="serve only; do not read stdin")
    parser.add_argument("--save-dir", default="saved", help="where !save writes attachments (default ./saved)")
    parser.add_argument(
        "--ack-deadline", type=float, default=3.0, help="seconds before an unanswered interaction fails"
    )
    parser.add_argument(
        "--shards", type=int, default=1, metavar="N", help="shard count GET /gateway/bot recommends (default 1)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    return parser.parse_args(argv)


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _main(args: argparse.Namespace) -> None:
    sandbox = Sandbox(
        args.host,
        args.port,
        bot_token=args.token,
        ack_deadline=args.ack_deadline,
        world_path=args.world,
        shard_count=args.shards,
    )
    async with sandbox as sb:
        if not args.no_demo and not sb.world_restored:
            populate_demo(sb)
        _log.info("sandbox started on %s", sb.base_url)
        out = sys.stdout
        out.write(
            "Discord sandbox is running (local only).\n"
            f"  DISCORD_API_BASE={sb.api_base}\n"
            f"  DISCORD_GATEWAY_URL={sb.gateway_url}\n"
            f"  DISCORD_TOKEN={sb.bot_token}\n"
            f"  application id {sb.application_id}\n"
        )
        out.flush()
        if args.no_terminal:
            await asyncio.Event().wait()
        else:
            await run_terminal(sb, await _stdin_reader(), out, save_dir=args.save_dir)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_main(args))
    except WorldFileError as exc:
        sys.stderr.write(f"python -m sandbox: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
