"""Ed25519 account keys and their encryption at rest.

Randomness is an argument: callers pass 32 fresh bytes (``os.urandom(32)``)
for a new key and 12 for a sealing nonce, so the engine itself stays
deterministic and testable with RFC 8032's vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from chain.errors import BadSignatureError, EncodingError, WalletError

PUBLIC_KEY_SIZE_BYTES = 32
SECRET_SEED_SIZE_BYTES = 32
SIGNATURE_SIZE_BYTES = 64
MASTER_KEY_SIZE_BYTES = 32  # AES-256-GCM
SEAL_NONCE_SIZE_BYTES = 12
_SEAL_VERSION = b"\x01"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An account's private key; ``public_key`` is the account's identity."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SECRET_SEED_SIZE_BYTES:
            raise WalletError(f"an Ed25519 seed has 32 bytes, got {len(self.seed)}")

    def __repr__(self) -> str:  # never let a secret reach a log line
        return f"SigningKey(public_key={self.public_key.hex()})"

    @property
    def public_key(self) -> bytes:
        return _private(self.seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        return _private(self.seed).sign(message)


@lru_cache(maxsize=4096)
def _private(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


@lru_cache(maxsize=65536)
def _public(public_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key)


def is_valid_public_key(public_key: bytes) -> bool:
    if len(public_key) != PUBLIC_KEY_SIZE_BYTES:
        return False
    try:
        _public(public_key)
    except ValueError:
        return False
    return True


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise ``BadSignatureError`` unless ``signature`` is ``public_key``'s over ``message``."""
    if len(signature) != SIGNATURE_SIZE_BYTES:
        raise BadSignatureError(f"a signature has 64 bytes, got {len(signature)}")
    try:
        _public(public_key).verify(signature, message)
    except ValueError as exc:
        raise BadSignatureError(f"public key {public_key.hex()} is not a valid Ed25519 key") from exc
    except InvalidSignature as exc:
        raise BadSignatureError(
            f"signature does not match sender {public_key.hex()[:16]}…"
        ) from exc


def wallet_aad(chain_id: int, owner: str) -> bytes:
    """Associated data binding a sealed wallet key to its chain and its owner."""
    return f"consensus-playground/wallet/{chain_id}/{owner}".encode()


def validator_key_aad(chain_id: int, owner: str) -> bytes:
    """Associated data binding a sealed validator key to its chain, its owner and its purpose."""
    return f"consensus-playground/validator/{chain_id}/{owner}".encode()


def webhook_url_aad(chain_id: int) -> bytes:
    """Associated data binding a sealed webhook URL to its server's chain."""
    return f"consensus-playground/webhook/{chain_id}".encode()


def seal_bytes(master_key: bytes, plaintext: bytes, nonce: bytes, associated: bytes) -> bytes:
    """Encrypt a secret with AES-GCM; ``associated`` binds it to its owner and purpose."""
    _check_master_key(master_key)
    if len(nonce) != SEAL_NONCE_SIZE_BYTES:
        raise WalletError(f"a sealing nonce has 12 bytes, got {len(nonce)}")
    return _SEAL_VERSION + nonce + AESGCM(master_key).encrypt(nonce, plaintext, associated)


def open_bytes(master_key: bytes, sealed: bytes, associated: bytes) -> bytes:
    _check_master_key(master_key)
    if sealed[:1] != _SEAL_VERSION or len(sealed) < 1 + SEAL_NONCE_SIZE_BYTES + 16:
        raise EncodingError("sealed secret has an unknown format")
    nonce = sealed[1 : 1 + SEAL_NONCE_SIZE_BYTES]
    try:
        return AESGCM(master_key).decrypt(nonce, sealed[1 + SEAL_NONCE_SIZE_BYTES :], associated)
    except InvalidTag as exc:
        raise WalletError(
            "secret cannot be decrypted: wrong master key, or it belongs to someone else"
        ) from exc


def seal_key(master_key: bytes, key: SigningKey, nonce: bytes, associated: bytes) -> bytes:
    """Encrypt a wallet key at rest."""
    return seal_bytes(master_key, key.seed, nonce, associated)


def open_key(master_key: bytes, sealed: bytes, associated: bytes) -> SigningKey:
    return SigningKey(open_bytes(master_key, sealed, associated))


def _check_master_key(master_key: bytes) -> None:
    if len(master_key) != MASTER_KEY_SIZE_BYTES:
        raise WalletError(f"the master key has 32 bytes, got {len(master_key)}")
