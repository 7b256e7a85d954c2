"""Ed25519 keys (RFC 8032 vectors) and AES-GCM sealing of wallet keys."""

import pytest

from chain.errors import BadSignatureError, EncodingError, WalletError
from chain.keys import SigningKey, is_valid_public_key, open_key, seal_key, verify_signature
from tests.vectors import RFC8032_TEST_1, RFC8032_TEST_2

MASTER = bytes(range(32))


@pytest.mark.parametrize("vector", [RFC8032_TEST_1, RFC8032_TEST_2], ids=["test1", "test2"])
def test_rfc8032_vectors(vector):
    key = SigningKey(bytes.fromhex(vector["secret"]))
    message = bytes.fromhex(vector["message"])
    assert key.public_key.hex() == vector["public"]
    assert key.sign(message).hex() == vector["signature"]
    verify_signature(key.public_key, message, bytes.fromhex(vector["signature"]))


def test_invalid_signature_over_other_message():
    key = SigningKey(bytes.fromhex(RFC8032_TEST_1["secret"]))
    with pytest.raises(BadSignatureError, match="does not match"):
        verify_signature(key.public_key, b"x", bytes.fromhex(RFC8032_TEST_1["signature"]))


def test_invalid_signature_length():
    with pytest.raises(BadSignatureError, match="64 bytes"):
        verify_signature(bytes(32), b"", b"short")


def test_public_key_validity():
    assert is_valid_public_key(bytes.fromhex(RFC8032_TEST_1["public"]))
    assert not is_valid_public_key(b"\x01" * 31)


def test_seal_round_trip_and_binding():
    key = SigningKey(bytes.fromhex(RFC8032_TEST_2["secret"]))
    sealed = seal_key(MASTER, key, b"\x07" * 12, b"alice")
    assert key.seed not in sealed
    assert open_key(MASTER, sealed, b"alice") == key
    with pytest.raises(WalletError, match="belongs to someone else"):
        open_key(MASTER, sealed, b"mallory")
    with pytest.raises(WalletError, match="wrong master key"):
        open_key(bytes(32), sealed, b"alice")


def test_invalid_master_key_and_format():
    key = SigningKey(bytes(32))
    with pytest.raises(WalletError, match="32 bytes"):
        seal_key(b"short", key, bytes(12), b"")
    with pytest.raises(EncodingError):
        open_key(MASTER, b"\x09" + bytes(40), b"")


def test_repr_never_shows_the_secret():
    key = SigningKey(bytes.fromhex(RFC8032_TEST_1["secret"]))
    assert RFC8032_TEST_1["secret"] not in repr(key)
