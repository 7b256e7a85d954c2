"""The master key check: a wrong key is refused before anything is sealed with it."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.instance_lock import InstanceLock
from bot.preflight import StartupRefusedError, run_preflight
from bot.settings import Settings
from bot.storage import StoredWebhook, WebhookRepository
from chain.adapters.key_check import (
    Verdict,
    judge_master_key,
    key_check_opens,
    record_key_check,
    seal_key_check,
)
from chain.adapters.storage import Database, SealedSample, SealedSecrets, Store, StoredValidatorKey, StoredWallet
from chain.adapters.storage import database as store_module
from chain.errors import MasterKeyMismatchError
from chain.keys import SigningKey, seal_bytes, seal_key, validator_key_aad, wallet_aad

RIGHT = bytes.fromhex("a0b0ab5c" * 8)
WRONG = bytes.fromhex("5ca0b0ab" * 8)
NONCE = b"\x33" * 12


def judge(key: bytes, secrets: SealedSecrets | None) -> Verdict:
    return judge_master_key(key, secrets, source="MASTER_KEY", database="db.sqlite3")


def test_the_key_check_opens_only_under_its_key():
    sealed = seal_key_check(RIGHT, NONCE)
    assert key_check_opens(RIGHT, sealed)
    assert not key_check_opens(WRONG, sealed)
    # Bound to its purpose: a wallet sealed under the right key is no key check.
    assert not key_check_opens(RIGHT, seal_bytes(RIGHT, b"x" * 32, NONCE, wallet_aad(1, "a")))


def test_a_wrong_key_is_refused_by_the_key_check_without_naming_either_key():
    secrets = SealedSecrets(seal_key_check(RIGHT, NONCE), None)
    assert judge(RIGHT, secrets) is Verdict.CHECKED
    with pytest.raises(MasterKeyMismatchError) as caught:
        judge(WRONG, secrets)
    message = str(caught.value)
    assert "MASTER_KEY does not open db.sqlite3" in message
    assert RIGHT.hex()[:8] not in message and WRONG.hex()[:8] not in message


def sample(kind: str, key: bytes) -> SealedSample:
    if kind == "wallet":
        return SealedSample(kind, 7, "42", seal_key(key, SigningKey(b"\x01" * 32), NONCE, wallet_aad(7, "42")))
    if kind == "validator key":
        sealed = seal_key(key, SigningKey(b"\x01" * 32), NONCE, validator_key_aad(7, "42"))
        return SealedSample(kind, 7, "42", sealed)
    return SealedSample(kind, 7, None, seal_bytes(key, b"https://hook", NONCE, b"consensus-playground/webhook/7"))


@pytest.mark.parametrize("kind", ["wallet", "validator key", "webhook URL"])
def test_an_old_database_is_judged_by_one_of_its_sealed_secrets(kind):
    secrets = SealedSecrets(None, sample(kind, RIGHT))
    assert judge(RIGHT, secrets) is Verdict.OPENS_OLD_SECRET
    with pytest.raises(MasterKeyMismatchError, match=f"cannot open a {kind} sealed there"):
        judge(WRONG, secrets)


def test_nothing_sealed_accepts_any_key():
    assert judge(WRONG, None) is Verdict.NOTHING_SEALED
    assert judge(WRONG, SealedSecrets(None, None)) is Verdict.NOTHING_SEALED


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def legacy_database(path: Path, monkeypatch, *, key: bytes = RIGHT) -> None:
    """Schema 5 (before the key check) with a wallet, a validator key and a webhook sealed under ``key``."""
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", tuple(x for x in store_module.MIGRATIONS if x[0] <= 5))
        store = await Store.open(path)
    signing = SigningKey(b"\x05" * 32)
    await store.validator_keys.insert(
        3, StoredValidatorKey("9", signing.public_key, seal_key(key, signing, NONCE, validator_key_aad(3, "9"))), 0
    )
    await WebhookRepository(store.db).set(
        StoredWebhook(3, 1, 2, seal_bytes(key, b"https://hook", NONCE, b"consensus-playground/webhook/3"), None), 0
    )
    await store.close()


async def test_reading_the_sealed_secrets_changes_nothing(tmp_path, monkeypatch):
    missing = tmp_path / "missing.sqlite3"
    assert await Database.sealed_secrets(missing) is None
    assert not missing.exists()

    db = tmp_path / "old.sqlite3"
    await legacy_database(db, monkeypatch)
    before = digest(db)
    secrets = await Database.sealed_secrets(db)
    assert secrets.key_check is None and secrets.sample.kind == "validator key"
    assert digest(db) == before


async def test_the_key_check_is_recorded_once(tmp_path):
    store = await Store.open(tmp_path / "db.sqlite3")
    assert await store.key_checks.get() is None
    # Two starts racing (in one process, as the instance lock rules out two): one check wins.
    await asyncio.gather(
        record_key_check(store.key_checks, RIGHT, NONCE, 1),
        record_key_check(store.key_checks, RIGHT, b"\x44" * 12, 2),
    )
    first = await store.key_checks.get()
    assert key_check_opens(RIGHT, first)
    await record_key_check(store.key_checks, RIGHT, b"\x55" * 12, 3)
    assert await store.key_checks.get() == first
    with pytest.raises(MasterKeyMismatchError):
        await record_key_check(store.key_checks, WRONG, NONCE, 4)
    assert await store.key_checks.get() == first
    await store.close()


def settings_for(tmp_path: Path, key: bytes | None) -> Settings:
    return Settings(
        database_path=tmp_path / "data" / "db.sqlite3",
        master_key=None if key is None else key.hex(),
        master_key_file=tmp_path / "data" / "master.key",
        _env_file=None,
    )


async def test_preflight_refuses_a_wrong_key_leaves_the_database_alone_and_releases_the_lock(tmp_path, monkeypatch):
    db = tmp_path / "data" / "db.sqlite3"
    await legacy_database(db, monkeypatch)
    before = digest(db)
    with pytest.raises(StartupRefusedError, match="does not open"):
        await run_preflight(settings_for(tmp_path, WRONG))
    assert digest(db) == before
    InstanceLock.acquire(db).release()  # not left held

    preflight = await run_preflight(settings_for(tmp_path, RIGHT))
    assert preflight.master_key == RIGHT
    preflight.release()


async def test_preflight_refuses_to_make_a_new_key_next_to_sealed_secrets(tmp_path, monkeypatch):
    await legacy_database(tmp_path / "data" / "db.sqlite3", monkeypatch)
    with pytest.raises(StartupRefusedError, match="no master key"):
        await run_preflight(settings_for(tmp_path, None))
    assert not (tmp_path / "data" / "master.key").exists()


async def test_preflight_makes_a_key_for_a_new_database(tmp_path):
    preflight = await run_preflight(settings_for(tmp_path, None), lambda n: b"\x07" * n)
    assert preflight.master_key == b"\x07" * 32
    assert (tmp_path / "data" / "master.key").exists()
    preflight.release()


async def test_a_recorded_key_check_refuses_a_wrong_key_once_the_secrets_are_gone(tmp_path):
    db = tmp_path / "data" / "db.sqlite3"
    store = await Store.open(db)
    await record_key_check(store.key_checks, RIGHT, NONCE, 0)
    await store.close()
    with pytest.raises(StartupRefusedError, match="is not the key this database's wallets"):
        await run_preflight(settings_for(tmp_path, WRONG))
    # Nor does a missing key get replaced by a new one.
    with pytest.raises(StartupRefusedError, match="no master key"):
        await run_preflight(settings_for(tmp_path, None))



async def test_an_old_database_is_judged_by_its_oldest_secret(tmp_path, monkeypatch):
    """A database that once ran under a wrong key holds newer wallets sealed under it, never older ones."""
    db = tmp_path / "data" / "db.sqlite3"
    with monkeypatch.context() as m:
        m.setattr(store_module, "MIGRATIONS", tuple(x for x in store_module.MIGRATIONS if x[0] <= 5))
        store = await Store.open(db)
    for owner, key, created_at in (("late", WRONG, 20), ("first", RIGHT, 10)):
        signing = SigningKey(owner.encode().ljust(32, b"."))
        sealed = seal_key(key, signing, NONCE, wallet_aad(1, owner))
        await store.wallets.insert(1, StoredWallet(owner, signing.public_key, sealed), created_at)
    await store.close()
    assert (await Database.sealed_secrets(db)).sample.owner == "first"
    (await run_preflight(settings_for(tmp_path, RIGHT))).release()
    with pytest.raises(StartupRefusedError):
        await run_preflight(settings_for(tmp_path, WRONG))


async def test_on_postgres_the_key_check_guards_the_database_alike(postgres_url, tmp_path):
    """DATABASE_URL: the preflight reads the sealed secrets from PostgreSQL and refuses a wrong key."""
    assert await Database.sealed_secrets(postgres_url) is None  # an empty database: nothing sealed yet
    store = await Store.open(postgres_url)
    await asyncio.gather(
        record_key_check(store.key_checks, RIGHT, NONCE, 1),
        record_key_check(store.key_checks, RIGHT, b"\x44" * 12, 2),
    )
    first = await store.key_checks.get()
    signing = SigningKey(b"owner".ljust(32, b"."))
    await store.wallets.insert(1, StoredWallet("owner", signing.public_key, seal_key(
        RIGHT, signing, NONCE, wallet_aad(1, "owner"))), 5)
    await store.close()
    secrets = await Database.sealed_secrets(postgres_url)
    assert secrets.key_check == first and key_check_opens(RIGHT, first)
    assert (secrets.sample.kind, secrets.sample.owner) == ("wallet", "owner")

    def settings(key: bytes) -> Settings:
        return settings_for(tmp_path, key).model_copy(update={"database_url": SecretStr(postgres_url)})

    await (await run_preflight(settings(RIGHT))).close()
    with pytest.raises(StartupRefusedError) as refused:
        await run_preflight(settings(WRONG))
    assert "PostgreSQL database" in str(refused.value)


async def test_a_postgres_database_that_is_not_there_refuses_the_start_in_one_line(postgres_url, tmp_path):
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    settings = settings_for(tmp_path, RIGHT).model_copy(update={"database_url": SecretStr(missing)})
    with pytest.raises(StartupRefusedError) as refused:
        await run_preflight(settings)
    assert "PostgreSQL database no_such_database on 127.0.0.1" in str(refused.value)
    assert "\n" not in str(refused.value)
    (await run_preflight(settings_for(tmp_path, RIGHT))).release()  # the lock was released
