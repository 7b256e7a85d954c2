"""chain/pos/snapshot.py: a beacon state as bytes and back, exactly; anything else is a SnapshotError."""

from __future__ import annotations

import hashlib
from dataclasses import fields, replace

import pytest

from chain.errors import SnapshotError
from chain.pos.beacon import BeaconState
from chain.pos.snapshot import MAGIC, decode_beacon_state, encode_beacon_state
from chain.pos.staking import FAR_FUTURE_EPOCH
from tests.poskit import merged_chain_with_exit_and_slashing, pos_chain, staked_chain


def states():
    merged, _ = merged_chain_with_exit_and_slashing()
    hybrid, _ = staked_chain("hybrid", blocks=30)
    pos, _ = pos_chain()
    pow_chain, _ = staked_chain("pow", blocks=12)
    return {"merged": merged.beacon, "hybrid": hybrid.beacon, "pos": pos.beacon, "pow": pow_chain.beacon}


STATES = states()


@pytest.mark.parametrize("kind", sorted(STATES))
def test_engine_states_roundtrip_exactly(kind):
    state = STATES[kind]
    decoded = decode_beacon_state(encode_beacon_state(state), [state.config])
    assert decoded == state
    # Field by field too (dataclass equality skips nothing but events, which are not state).
    for f in fields(BeaconState):
        if f.name != "events":
            assert getattr(decoded, f.name) == getattr(state, f.name), f.name


def test_the_merged_state_covers_slashed_exited_and_the_terminal_block():
    state = STATES["merged"]
    validators = state.registry.validators
    assert any(v.slashed for v in validators)
    assert any(not v.slashed and v.exit_epoch != FAR_FUTURE_EPOCH for v in validators)
    assert state.terminal is not None and state.merged and state.burned_units > 0
    assert decode_beacon_state(encode_beacon_state(state), [state.config]).terminal == state.terminal


def test_big_numbers_and_empty_slots_roundtrip():
    state = replace(STATES["pos"], total_difficulty=2**300 + 5, epoch_proposers=(None, 0, None, 3), in_leak=True)
    assert decode_beacon_state(encode_beacon_state(state), [state.config]) == state


def test_the_index_of_a_decoded_registry_answers():
    state = STATES["merged"]
    registry = decode_beacon_state(encode_beacon_state(state), [state.config]).registry
    for index, validator in enumerate(registry.validators):
        assert registry.index_of(validator.pubkey) == index


def test_every_corruption_is_a_snapshot_error():
    blob = encode_beacon_state(STATES["merged"])
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    body = blob[:-32]

    def resealed(new_body: bytes) -> bytes:
        return new_body + hashlib.sha256(new_body).digest()

    corrupt = {
        "a flipped byte": bytes(flipped),
        "truncated": blob[:-1],
        "empty": b"",
        "wrong magic": b"XXXX" + blob[4:],
        "unknown version": resealed(MAGIC + b"\x09" + body[5:]),
        "trailing bytes (checksum recomputed)": resealed(body + b"\x00"),
        "body cut short (checksum recomputed)": resealed(body[:-3]),
    }
    for what, data in corrupt.items():
        try:
            decode_beacon_state(data, [STATES["merged"].config])
        except SnapshotError:
            continue
        pytest.fail(f"{what}: decoded without a SnapshotError")


def test_a_snapshot_is_bytes():
    with pytest.raises(SnapshotError):
        decode_beacon_state("not bytes", [])  # type: ignore[arg-type]


def test_a_snapshot_names_its_config_and_only_that_one_decodes_it():
    state = STATES["hybrid"]
    blob = encode_beacon_state(state)
    assert state.config.to_bytes() not in blob  # named by its digest, not copied into every block's snapshot
    other = STATES["pos"].config
    assert decode_beacon_state(blob, [other, state.config]).config == state.config
    with pytest.raises(SnapshotError, match="consensus config this chain does not have"):
        decode_beacon_state(blob, [other])
