"""``python -m bot.copy_database --from data/playground.sqlite3 --to postgresql://…``: move a bot's
SQLite database to PostgreSQL (README "Scaling out", "Moving an existing database").

The copying and checking are ``chain/adapters/storage/database_copy.py``; this is the command
around it: it holds the bot's instance lock on the SQLite file for the whole run (a bot running
on it is refused, and none can start meanwhile: a copy of a database being written would not be
one instant of it), prints both sides' summaries, and exits non-zero naming every difference.

``--check`` copies nothing: it compares a copy made earlier with its source again.

Exit status: 0 copied (or checked) and equal; 1 the sides differ; 2 refused (the bot is running,
no source, a source at another schema version, a target that is not empty...).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from bot.instance_lock import InstanceLock, InstanceLockedError
from chain.adapters.storage.database import is_postgres_url
from chain.adapters.storage.database_copy import (
    CopyReport,
    compare_databases,
    copy_database,
    iter_report_lines,
)
from chain.errors import CopyMismatchError, DatabaseCopyError

log = logging.getLogger(__name__)

EXIT_DIFFERENT = 1
EXIT_REFUSED = 2


def write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def refuse(reason: str, status: int = EXIT_REFUSED) -> int:
    """One line on stderr, no traceback: what is wrong and what to do."""
    sys.stderr.write(f"copy_database: {reason}\n")
    return status


def redacted(url: str) -> str:
    """The URL without its password, for the output."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


async def run(source: Path, target: str, *, check_only: bool) -> int:
    if not is_postgres_url(target):
        return refuse(f"--to must be a postgresql:// URL, got {target!r}")
    if not source.is_file():
        return refuse(f"there is no SQLite database at {source}")
    try:
        lock = InstanceLock.acquire(source)
    except InstanceLockedError as exc:
        return refuse(f"{exc} A copy of a database being written would be inconsistent: stop the bot, then copy.")
    except OSError as exc:  # the lock file cannot be made beside the database (a read-only folder, say)
        return refuse(f"cannot take the bot's lock on {source} (to be sure no bot writes it meanwhile): {exc}")
    with lock:
        try:
            if check_only:
                source_summary, target_summary = await compare_databases(source, target)
                report = CopyReport(source_summary, target_summary, 0, 0.0)
            else:
                write(f"copying {source} into {redacted(target)} (one transaction; checked before it commits)")
                report = await copy_database(source, target)
        except CopyMismatchError as exc:
            for side, lines in (("source (SQLite):", exc.source), ("target (PostgreSQL):", exc.target)):
                write(side)
                for line in lines:
                    write(f"  {line}")
            for difference in exc.differences:
                write(f"DIFFERENT: {difference}")
            state = "the copy was rolled back: the target is as empty as before" if not exc.committed else (
                "the target does not match the source: do not point a bot at it"
            )
            return refuse(f"{len(exc.differences)} differences; {state}", EXIT_DIFFERENT)
        except DatabaseCopyError as exc:
            return refuse(str(exc))
        # InterfaceError: asyncpg refused on its own side (a bad URL option, a closed connection).
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return refuse(f"cannot reach or use {redacted(target)}: {exc}")
    for line in iter_report_lines(report):
        write(line)
    if check_only:
        write("the target holds the same chains, state roots, balances, pending outbox and rows as the source")
    else:
        write(
            f"copied {report.rows} rows in {report.seconds:.1f} s; both sides hold the same chains, state roots, "
            f"balances, pending outbox and rows. Start the bot with DATABASE_URL set to the target and the SAME "
            f"master key (MASTER_KEY or its key file): the sealed wallet and validator keys moved as they are."
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.copy_database",
        description="Copy a stopped bot's SQLite database into an empty PostgreSQL database, and check the copy.",
    )
    parser.add_argument("--from", dest="source", type=Path, required=True, help="the SQLite database file")
    parser.add_argument("--to", dest="target", required=True, help="postgresql://user@host:port/database (empty)")
    parser.add_argument(
        "--check", action="store_true", help="copy nothing: compare an existing copy with its source again"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args.source, args.target, check_only=args.check))


if __name__ == "__main__":
    sys.exit(main())
