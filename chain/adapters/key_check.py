"""Does this master key belong to this database?  Answered before anything is sealed with it.

A wrong master key used to go unnoticed until a wallet failed to open; worse,
a member who first played during that run got a wallet sealed under the wrong
key, locked once the right key was back.  So the database keeps a *key check*:
a fixed value sealed under its master key with associated data of its own.
At startup:

* a key check that the key opens: the key is right;
* a key check that it does not open: refuse;
* no key check yet (a database from before the check existed) but sealed
  secrets: the key is right if it opens one of them (then the check is
  recorded), else refuse;
* nothing sealed at all: any key is right; the check is recorded.

Nonces are arguments, like everywhere in the engine.
"""

from __future__ import annotations

import enum
from typing import Protocol

from chain.errors import EncodingError, MasterKeyMismatchError, WalletError
from chain.keys import open_bytes, seal_bytes, validator_key_aad, wallet_aad, webhook_url_aad

KEY_CHECK_AAD = b"consensus-playground/master-key-check"
_KEY_CHECK_PLAINTEXT = b"consensus-playground master key check v1"


class Verdict(enum.Enum):
    CHECKED = "the key check opens"
    OPENS_OLD_SECRET = "no key check yet; the key opens a sealed secret"
    NOTHING_SEALED = "nothing sealed yet"


class Sample(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def chain_id(self) -> int: ...

    @property
    def owner(self) -> str | None: ...

    @property
    def sealed(self) -> bytes: ...


class Secrets(Protocol):
    @property
    def key_check(self) -> bytes | None: ...

    @property
    def sample(self) -> Sample | None: ...


class KeyCheckStore(Protocol):
    async def record_key_check(self, sealed: bytes, now: int) -> bytes: ...


def seal_key_check(master_key: bytes, nonce: bytes) -> bytes:
    return seal_bytes(master_key, _KEY_CHECK_PLAINTEXT, nonce, KEY_CHECK_AAD)


def key_check_opens(master_key: bytes, sealed: bytes) -> bool:
    return _opens(master_key, sealed, KEY_CHECK_AAD, expected=_KEY_CHECK_PLAINTEXT)


def sample_aad(sample: Sample) -> bytes:
    if sample.kind == "wallet" and sample.owner is not None:
        return wallet_aad(sample.chain_id, sample.owner)
    if sample.kind == "validator key" and sample.owner is not None:
        return validator_key_aad(sample.chain_id, sample.owner)
    if sample.kind == "webhook URL":
        return webhook_url_aad(sample.chain_id)
    raise EncodingError(f"no associated data is known for a sealed {sample.kind!r}")


def judge_master_key(master_key: bytes, secrets: Secrets | None, *, source: str, database: str) -> Verdict:
    """Whether ``master_key`` is the key of the database whose ``secrets`` these are.

    ``source`` (where the key came from) and ``database`` only go into the error's message.
    Raises ``MasterKeyMismatchError`` if it is not.
    """
    if secrets is None:
        return Verdict.NOTHING_SEALED
    if secrets.key_check is not None:
        if key_check_opens(master_key, secrets.key_check):
            return Verdict.CHECKED
        raise MasterKeyMismatchError(
            f"the master key from {source} does not open {database}: it is not the key this database's "
            "wallets and webhooks were sealed with. Set MASTER_KEY (or MASTER_KEY_FILE) to the key "
            "the database was created with. Nothing was changed."
        )
    sample = secrets.sample
    if sample is None:
        return Verdict.NOTHING_SEALED
    if _opens(master_key, sample.sealed, sample_aad(sample)):
        return Verdict.OPENS_OLD_SECRET
    raise MasterKeyMismatchError(
        f"the master key from {source} does not open {database}: it cannot open a {sample.kind} "
        f"sealed there (server {sample.chain_id}). Set MASTER_KEY (or MASTER_KEY_FILE) to the key "
        "the database was created with. Nothing was changed."
    )


async def record_key_check(store: KeyCheckStore, master_key: bytes, nonce: bytes, now: int) -> None:
    """Record the key check (once; a stored one stays) and make sure the stored one opens."""
    stored = await store.record_key_check(seal_key_check(master_key, nonce), now)
    if not key_check_opens(master_key, stored):
        raise MasterKeyMismatchError("the master key does not open the key check stored in the database")


def _opens(master_key: bytes, sealed: bytes, associated: bytes, *, expected: bytes | None = None) -> bool:
    try:
        plaintext = open_bytes(master_key, sealed, associated)
    except (WalletError, EncodingError):
        return False
    return expected is None or plaintext == expected
