"""`python -m bot` refuses to start unsafely, and leaves nothing behind when killed.

Each test runs the real process in sandbox mode (no DISCORD_TOKEN) on a database of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from chain.adapters.storage import Store, StoredWallet
from chain.adapters.storage import database as store_module
from chain.keys import SigningKey, seal_key, wallet_aad

ROOT = Path(__file__).resolve().parents[2]
RIGHT_KEY = "a0b0ab5c" * 8
WRONG_KEY = "5ca0b0ab" * 8
LEGACY_SCHEMA = 5  # the last schema before the key check


def bot_env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "MASTER_KEY")}
    env.update(
        DATABASE_PATH=str(data / "playground.sqlite3"),
        MASTER_KEY_FILE=str(data / "master.key"),
        SANDBOX_PORT="0",
        DASHBOARD_PORT="0",  # tests run side by side: the sandbox's default dashboard port may be taken
        HASHING_WORKERS="1",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


async def run_to_end(env: dict[str, str], stdin: bytes = b":quit\n") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, stdout.decode(), stderr.decode()


@asynccontextmanager
async def ready_bot(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """A sandbox-mode bot in a session of its own, once it has answered a command."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=ROOT, env=env, start_new_session=True,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        proc.stdin.write(b":wait\nalice: /chain tip\n:wait\n")
        await proc.stdin.drain()
        seen = b""
        while b"Tip: block 0" not in seen:
            chunk = await asyncio.wait_for(proc.stdout.read(4096), 90)
            assert chunk, f"the bot ended before it was ready: {seen.decode()}"
            seen += chunk
        yield proc
    finally:
        # Whatever the test did, nothing of this session outlives it.
        for pid in session_members(proc.pid):
            # A worker bound to the bot (chain/adapters/worker_lifeline.py) may end on its own
            # between the listing and this kill, once an earlier pid (its owner) was killed.
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def session_members(session_id: int) -> list[int]:
    """Pids of every process whose session id is ``session_id`` (field 6 of /proc/<pid>/stat)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # ended while we looked
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == session_id:
            members.append(int(entry))
    return members


async def make_legacy_database(path: Path, master_key: bytes, monkeypatch) -> None:
    """A database as the bot wrote it before the key check existed, holding one sealed wallet."""
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", tuple(x for x in store_module.MIGRATIONS if x[0] <= LEGACY_SCHEMA))
        store = await Store.open(path)
    key = SigningKey(b"\x11" * 32)
    sealed = seal_key(master_key, key, b"\x22" * 12, wallet_aad(1, "42"))
    await store.wallets.insert(1, StoredWallet("42", key.public_key, sealed), 0)
    assert await store.db.schema_version() == LEGACY_SCHEMA
    await store.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_clean_line(stderr: str, *secrets: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for secret in secrets:
        assert secret not in stderr and secret[:16] not in stderr
    return lines[0]


async def test_a_wrong_master_key_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    db = tmp_path / "playground.sqlite3"
    await make_legacy_database(db, bytes.fromhex(RIGHT_KEY), monkeypatch)
    before = digest(db)

    code, _, stderr = await run_to_end(bot_env(tmp_path, MASTER_KEY=WRONG_KEY))

    assert code != 0
    line = assert_one_clean_line(stderr, WRONG_KEY, RIGHT_KEY)
    assert "MASTER_KEY" in line and "does not open" in line
    assert digest(db) == before
    assert not (tmp_path / "master.key").exists()


async def test_no_key_next_to_sealed_secrets_is_refused_instead_of_making_a_new_one(tmp_path, monkeypatch):
    db = tmp_path / "playground.sqlite3"
    await make_legacy_database(db, bytes.fromhex(RIGHT_KEY), monkeypatch)
    before = digest(db)

    code, _, stderr = await run_to_end(bot_env(tmp_path))

    assert code != 0
    line = assert_one_clean_line(stderr, RIGHT_KEY)
    assert "no master key" in line and "master.key" in line
    assert not (tmp_path / "master.key").exists()
    assert digest(db) == before


async def test_the_right_key_opens_an_old_database_and_records_the_key_check(tmp_path, monkeypatch):
    db = tmp_path / "playground.sqlite3"
    await make_legacy_database(db, bytes.fromhex(RIGHT_KEY), monkeypatch)

    code, stdout, stderr = await run_to_end(bot_env(tmp_path, MASTER_KEY=RIGHT_KEY), b":wait\n:quit\n")
    assert code == 0, (stdout, stderr)

    # From now on the database itself says which key it belongs to: a wrong one is refused
    # even once the sealed wallet is gone.
    store = await Store.open(db)
    assert await store.key_checks.get() is not None
    await store.close()
    code, _, stderr = await run_to_end(bot_env(tmp_path, MASTER_KEY=WRONG_KEY))
    assert code != 0
    assert "does not open" in assert_one_clean_line(stderr, WRONG_KEY, RIGHT_KEY)


async def test_a_mistyped_master_key_is_one_clean_line_without_the_key(tmp_path):
    typo = RIGHT_KEY[:-1]
    code, _, stderr = await run_to_end(bot_env(tmp_path, MASTER_KEY=typo))
    assert code != 0
    line = assert_one_clean_line(stderr, typo)
    assert "MASTER_KEY" in line and "must be 64 hex digits" in line
    assert not (tmp_path / "playground.sqlite3").exists()

    code, _, stderr = await run_to_end(bot_env(tmp_path, MASTER_KEY="0x" + RIGHT_KEY[:-2]))
    assert code != 0
    assert "hex" in assert_one_clean_line(stderr, RIGHT_KEY[:-2])


async def test_a_second_bot_on_the_same_database_is_refused_with_the_holders_pid(tmp_path):
    data = tmp_path / "data"
    async with ready_bot(bot_env(data)) as first:
        code, _, stderr = await run_to_end(bot_env(data))
        assert code != 0
        line = assert_one_clean_line(stderr)
        assert f"pid {first.pid}" in line and "playground.sqlite3" in line
        # The first bot is untouched and still answers.
        assert first.returncode is None
        first.stdin.write(b"alice: /wallet balance\n:wait\n")
        await first.stdin.drain()
        seen = b""
        while b"Your wallet" not in seen:
            chunk = await asyncio.wait_for(first.stdout.read(4096), 60)
            assert chunk, seen.decode()
            seen += chunk


async def test_the_data_folder_is_private(tmp_path):
    data = tmp_path / "data"
    async with ready_bot(bot_env(data)):
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        names = {p.name for p in data.iterdir()}
        assert {"playground.sqlite3", "playground.sqlite3-wal", "playground.sqlite3-shm", "master.key"} <= names
        for path in data.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


async def test_sigkill_leaves_no_process_behind(tmp_path):
    async with ready_bot(bot_env(tmp_path / "data", HASHING_WORKERS="2")) as proc:
        assert len(session_members(proc.pid)) >= 4  # the bot, its hashing workers, their forkserver...
        os.kill(proc.pid, signal.SIGKILL)
        # Not proc.wait(): asyncio waits for the pipes too, which leftover processes would hold open.
        # The kernel tells the workers at once; this only bounds a failure (they used to stay forever).
        for _ in range(300):
            if not session_members(proc.pid):
                break
            await asyncio.sleep(0.05)
        assert not [command_line(pid) for pid in session_members(proc.pid)]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
    except OSError:
        return f"pid {pid} (ended)"
