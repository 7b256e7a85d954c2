"""The data folder is 0700 and every file in it 0600; looser ones are tightened at startup."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from bot.preflight import run_preflight
from bot.private_files import database_files, make_private_files, make_private_folder
from bot.settings import Settings
from chain.adapters.storage import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    """The usual 022: what made the files 0644 before."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


async def test_the_store_creates_its_folder_and_files_private(tmp_path, open_umask):
    db = tmp_path / "data" / "playground.sqlite3"
    store = await Store.open(db)
    await store.key_checks.record_key_check(b"x" * 40, 0)  # a write, so the -wal exists
    assert mode(db.parent) == 0o700
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        assert mode(path) == 0o600, path
    await store.close()


async def test_preflight_tightens_an_old_install_with_a_warning(tmp_path, open_umask, caplog):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    store = await Store.open(data / "playground.sqlite3")
    await store.close()
    (data / "master.key").write_text("ab" * 32 + "\n")
    for path in (data / "playground.sqlite3", data / "master.key"):
        os.chmod(path, 0o644)
    settings = Settings(
        database_path=data / "playground.sqlite3", master_key_file=data / "master.key", _env_file=None
    )
    with caplog.at_level(logging.WARNING):
        preflight = await run_preflight(settings)
    preflight.release()
    assert mode(data) == 0o700
    for path in data.iterdir():
        assert mode(path) == 0o600, path
    assert "was open to other users (mode 0755): now 0700" in caplog.text
    assert "master.key was open to other users (mode 0644): now 0600" in caplog.text
    assert "ab" * 32 not in caplog.text


def test_private_files_are_left_alone_silently(tmp_path, caplog):
    path = tmp_path / "f"
    path.write_text("x")
    os.chmod(path, 0o600)
    with caplog.at_level(logging.WARNING):
        make_private_files([path, tmp_path / "missing"])
        make_private_folder(tmp_path)
    assert mode(path) == 0o600 and caplog.text == ""


def test_a_shared_folder_is_not_taken_over(tmp_path, caplog):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    with caplog.at_level(logging.WARNING):
        make_private_folder(shared)
    assert mode(shared) == 0o1777
    assert "left as it is" in caplog.text


def test_database_files_include_the_lock_and_sqlite_companions(tmp_path):
    names = [p.name for p in database_files(tmp_path / "a.sqlite3")]
    assert names == ["a.sqlite3", "a.sqlite3-wal", "a.sqlite3-shm", "a.sqlite3-journal", "a.sqlite3.lock"]
