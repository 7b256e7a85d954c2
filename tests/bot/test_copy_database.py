"""``python -m bot.copy_database``: the command around the copy (exit status, output, the bot's lock)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg

from bot.copy_database import EXIT_DIFFERENT, EXIT_REFUSED, run
from bot.instance_lock import InstanceLock
from tests.chain.adapters.test_database_copy import POS_CHAIN, POW_CHAIN, Clock, build_source, count_rows

ROOT = Path(__file__).resolve().parents[2]


async def test_the_command_copies_prints_both_sides_and_names_the_master_key(tmp_path, postgres_url):
    path = tmp_path / "playground.sqlite3"
    await build_source(path, Clock())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.copy_database", "--from", str(path), "--to", postgres_url,
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    text = out.decode()
    for chain_id in (POW_CHAIN, POS_CHAIN):
        assert text.count(f"chain {chain_id}: tip ") == 2  # the source's line and the target's
    assert "state root" in text and "undelivered announcements" in text and "rows: accounts" in text
    assert "SAME master key" in text
    assert "password" not in text


async def test_a_running_bot_on_the_file_is_refused_and_nothing_is_copied(tmp_path, postgres_url, capsys):
    path = tmp_path / "playground.sqlite3"
    await build_source(path, Clock())
    with InstanceLock.acquire(path):  # what a running bot holds (bot/preflight.py)
        status = await run(path, postgres_url, check_only=False)
    assert status == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "already running" in err and "stop the bot, then copy" in err and len(err.splitlines()) == 1
    assert all(n == 0 for n in (await count_rows(postgres_url)).values())


async def test_a_target_with_rows_is_refused_in_one_line(tmp_path, postgres_url, capsys):
    path = tmp_path / "playground.sqlite3"
    await build_source(path, Clock())
    assert await run(path, postgres_url, check_only=False) == 0
    before = await count_rows(postgres_url)
    capsys.readouterr()
    assert await run(path, postgres_url, check_only=False) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "not empty (2 chains" in err
    assert await count_rows(postgres_url) == before


async def test_check_names_a_balance_changed_in_the_copy_and_exits_non_zero(tmp_path, postgres_url, capsys):
    path = tmp_path / "playground.sqlite3"
    await build_source(path, Clock())
    assert await run(path, postgres_url, check_only=False) == 0
    assert await run(path, postgres_url, check_only=True) == 0
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute(
            "UPDATE accounts SET balance = balance + 7 WHERE chain_id = $1 AND pubkey = "
            "(SELECT pubkey FROM accounts WHERE chain_id = $1 ORDER BY pubkey LIMIT 1)", POW_CHAIN,
        )
    finally:
        await connection.close()
    capsys.readouterr()
    assert await run(path, postgres_url, check_only=True) == EXIT_DIFFERENT
    captured = capsys.readouterr()
    assert f"DIFFERENT: chain {POW_CHAIN}: balances differ" in captured.out
    assert captured.out.count(f"chain {POW_CHAIN}: tip ") == 2  # both sides' summaries, to compare by eye
    assert "REPLAY FAILED" in captured.out
    assert f"DIFFERENT: chain {POW_CHAIN}: the replay of the target fails" in captured.out
    assert "do not point a bot at it" in captured.err


async def test_a_lock_file_that_cannot_be_made_is_a_one_line_refusal(tmp_path, postgres_url, capsys, monkeypatch):
    path = tmp_path / "playground.sqlite3"
    await build_source(path, Clock())

    def unwritable(_path: Path) -> InstanceLock:
        raise PermissionError(13, "Permission denied", str(_path) + ".lock")

    monkeypatch.setattr(InstanceLock, "acquire", staticmethod(unwritable))  # a read-only folder (root ignores modes)
    assert await run(path, postgres_url, check_only=False) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot take the bot's lock" in err and "Permission denied" in err, err
    assert all(n == 0 for n in (await count_rows(postgres_url)).values())


async def test_a_url_asyncpg_refuses_on_its_side_is_a_one_line_refusal(tmp_path, capsys):
    path = tmp_path / "playground.sqlite3"
    await build_source(path, Clock())
    # asyncpg checks sslmode itself (a client-side InterfaceError, not a PostgresError): no server is reached.
    assert await run(path, "postgresql://bot@127.0.0.1:1/playground?sslmode=bogus", check_only=False) == EXIT_REFUSED
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot reach or use postgresql://bot@127.0.0.1:1/playground" in err, err
