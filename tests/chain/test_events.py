"""Typed events (chain/events.py): each kind reads back from today's stored bytes and writes them again
unchanged; anything else becomes an UnknownEvent, never an exception."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import pytest

from chain.events import (
    BLOCK_MINED,
    CHAIN_REORGANIZED,
    CHECKPOINT_FINALIZED,
    CHECKPOINT_JUSTIFIED,
    DIFFICULTY_CHANGED,
    EPOCH_REWARDS,
    EVENT_TYPES,
    INACTIVITY_LEAK_ENDED,
    INACTIVITY_LEAK_STARTED,
    MERGE_DELAYED,
    MERGE_SCHEDULED,
    MILESTONE_REACHED,
    PARAMS_CHANGED,
    PAYMENT_RETURNED_TO_MEMPOOL,
    PAYMENT_REVERSED,
    REORG_REFUSED_BY_FINALITY,
    REWARD_PAID,
    STAKE_DEPOSITED,
    STAKE_WITHDRAWN,
    THE_MERGE,
    VALIDATOR_ACTIVATED,
    VALIDATOR_EXITED,
    VALIDATOR_SLASHED,
    VALIDATOR_WITHDRAWABLE,
    BlockMined,
    ChainEvent,
    ChainReorganized,
    ParamsChanged,
    PaymentReversed,
    ReorgRefusedByFinality,
    StakeWithdrawn,
    UnknownEvent,
    ValidatorSlashed,
    decode_event,
)

# Captured from the code BEFORE typed events (main at d764749, where events were
# ``ChainEvent(kind, dict)``): the scenarios of tests/cogs/test_embeds.py (pow_events, merge_events,
# exit_events, leak_events, delayed_merge_events and its three slashings) were run and
# ``event.payload_json()`` printed for one event of each distinct shape (kind, keys, flag values,
# offence).  These are the bytes already sitting in users' outbox and stake_history tables.
# tests/cogs/test_embeds.py checks that today's engine, run on the same scenarios, writes them again.
GOLDEN_FROM_ENGINE = [
    (BLOCK_MINED,
     '{"bits":0,"hash":"e74da9a7136e02219e2d59021ca5b1d2fbc143bdaf6851ae732cc65aa4706deb","height":12,'
     '"miner":"a6f3558b68458b4be78d29705afeea90cfcd466e6f9cdd8110d0ec539b45ad7a",'
     '"proof_of_stake":true,"proposer_index":1,"reward":0,"slot":12,"time":1700000690,"transfers":0}'),
    (BLOCK_MINED,
     '{"bits":528482303,"hash":"00145dfcbbf98f1d126996e1036dddbfe07667b4cafc7b09854abb955e9a9ebf",'
     '"height":1,"miner":"a6f3558b68458b4be78d29705afeea90cfcd466e6f9cdd8110d0ec539b45ad7a",'
     '"reward":50,"time":1700000030,"transfers":0}'),
    (CHECKPOINT_FINALIZED,
     '{"epoch":3,"root":"e74da9a7136e02219e2d59021ca5b1d2fbc143bdaf6851ae732cc65aa4706deb"}'),
    (CHECKPOINT_JUSTIFIED,
     '{"epoch":3,"root":"e74da9a7136e02219e2d59021ca5b1d2fbc143bdaf6851ae732cc65aa4706deb"}'),
    (DIFFICULTY_CHANGED,
     '{"actual_timespan_s":270,"height":10,"new_bits":524287999,"old_bits":528482303,'
     '"sentence":"At height 10, blocks came 50% faster than the target,'
     ' so the target shrank by 50% (mining got harder).","target_timespan_s":540}'),
    (EPOCH_REWARDS,
     '{"active_units":128000000000,"attesting_units":64000000000,"burned_units":4904120,"epoch":5,'
     '"finality_delay":5,"in_inactivity_leak":true,"minted_units":6088}'),
    (EPOCH_REWARDS,
     '{"active_units":96000000000,"attesting_units":0,"burned_units":31962,"epoch":2,'
     '"finality_delay":0,"in_inactivity_leak":false,"minted_units":0}'),
    (INACTIVITY_LEAK_ENDED,
     '{"epoch":8}'),
    (INACTIVITY_LEAK_STARTED,
     '{"epoch":5,"finality_delay":5}'),
    (MERGE_DELAYED,
     '{"height":2,"merge_at_height":3,"merge_at_total_difficulty":0,"pending_validators":0,'
     '"total_difficulty":6}'),
    (MERGE_SCHEDULED,
     '{"height":4,"merge_at_height":12,"merge_at_total_difficulty":0,"total_difficulty":10}'),
    (MILESTONE_REACHED,
     '{"account":"a6f3558b68458b4be78d29705afeea90cfcd466e6f9cdd8110d0ec539b45ad7a","balance":100,'
     '"height":2,"milestone":100}'),
    (PARAMS_CHANGED,
     '{"height":10,"initial_subsidy_points":[50,60],"target_spacing_s":[60,15]}'),
    (REWARD_PAID,
     '{"fees":0,"height":1,"miner":"a6f3558b68458b4be78d29705afeea90cfcd466e6f9cdd8110d0ec539b45ad7a",'
     '"subsidy":50}'),
    (REWARD_PAID,
     '{"fees":0,"height":12,'
     '"miner":"a6f3558b68458b4be78d29705afeea90cfcd466e6f9cdd8110d0ec539b45ad7a",'
     '"proof_of_stake":true,"subsidy":0}'),
    (STAKE_DEPOSITED,
     '{"activation_epoch":1,"amount":32,'
     '"pubkey":"1fbe3f688bad78f53d45c2ca6af7e42e531112e270711945ad0f1682b2028807","top_up":false,'
     '"validator_index":0,'
     '"wallet":"a6f3558b68458b4be78d29705afeea90cfcd466e6f9cdd8110d0ec539b45ad7a"}'),
    (STAKE_WITHDRAWN,
     '{"address":"b15e60b1c78d0cd3e367b8d46cb2146134069f56d9f82b673fef9c05715898be",'
     '"dust_burned_units":999989346,"full":true,"points":31,"validator_index":3}'),
    (THE_MERGE,
     '{"height":12,"terminal_hash":"34aff4d9ffcaa8ba103b41239c378d88907aeaad7c46763f217e1c734631a665",'
     '"terminal_height":11,"total_difficulty":24,"validators":3}'),
    (VALIDATOR_ACTIVATED,
     '{"epoch":1,"pubkey":"1fbe3f688bad78f53d45c2ca6af7e42e531112e270711945ad0f1682b2028807",'
     '"validator_index":0}'),
    (VALIDATOR_EXITED,
     '{"epoch":1,"pubkey":"fccc94fb9a2cc0e35a16bde5ebae724a4bad5c3385b70ce9bdbaa7d43b8a2cbc",'
     '"slashed":false,"validator_index":3}'),
    (VALIDATOR_SLASHED,
     '{"burned_units":937500000,'
     '"description":"cast a vote 2 \\u2192 7 that surrounds its own vote 3 \\u2192 5",'
     '"offence":"surround vote","penalty_units":1000000000,"proposer_index":0,'
     '"pubkey":"4e2d43360281c6e2f2d0ce6c4d9a5462398624d2b7626fce473820aadeaaab25","validator_index":1,'
     '"votes":[[2,7],[3,5]],'
     '"wallet":"2d6bba39712becaf6bf3675348169b348f221af9781045b803c37b3e7902f3c0",'
     '"whistleblower_reward_units":62500000,"withdrawable_epoch":360}'),
    (VALIDATOR_SLASHED,
     '{"burned_units":937500000,"description":"signed two different blocks for slot 812",'
     '"offence":"double proposal","penalty_units":1000000000,"proposer_index":0,'
     '"pubkey":"4e2d43360281c6e2f2d0ce6c4d9a5462398624d2b7626fce473820aadeaaab25","slot":812,'
     '"validator_index":1,"wallet":"2d6bba39712becaf6bf3675348169b348f221af9781045b803c37b3e7902f3c0",'
     '"whistleblower_reward_units":62500000,"withdrawable_epoch":360}'),
    (VALIDATOR_SLASHED,
     '{"burned_units":937500000,"description":"voted twice for target epoch 12,'
     ' for two different things","offence":"double vote","penalty_units":1000000000,'
     '"proposer_index":0,"pubkey":"53d4953ed1d1adaf170a3b53e40aa3edf0a8b8f797898f1b3abbea86bc4b0d93",'
     '"validator_index":2,"votes":[[0,12],[0,12]],'
     '"wallet":"7c9889362f4ade85516d488998692cae79a0d8209e109be6411d86451a041b1d",'
     '"whistleblower_reward_units":62500000,"withdrawable_epoch":360}'),
    (VALIDATOR_WITHDRAWABLE,
     '{"epoch":3,"pubkey":"fccc94fb9a2cc0e35a16bde5ebae724a4bad5c3385b70ce9bdbaa7d43b8a2cbc",'
     '"validator_index":3}'),
]
# The same old ``ChainEvent(kind, dict).payload_json()`` on the hand-built payloads of
# tests/cogs/test_embeds.py (a top-up, a partial withdrawal, a Merge at a total difficulty): shapes
# the scenarios above do not reach.
GOLDEN_HAND_BUILT = [
    (STAKE_DEPOSITED,
     '{"activation_epoch":1,"amount":5,'
     '"pubkey":"53d4953ed1d1adaf170a3b53e40aa3edf0a8b8f797898f1b3abbea86bc4b0d93","top_up":true,'
     '"validator_index":2,'
     '"wallet":"7c9889362f4ade85516d488998692cae79a0d8209e109be6411d86451a041b1d"}'),
    (STAKE_WITHDRAWN,
     '{"address":"03f1ab9d89fddb9c121e61c67a359f7292e439333b742c851c4831176e7d09f2",'
     '"dust_burned_units":0,"full":false,"points":2,"validator_index":0}'),
    (MERGE_SCHEDULED,
     '{"height":5,"merge_at_height":0,"merge_at_total_difficulty":1000,"total_difficulty":640}'),
]
# Kinds added with the block tree (issue 11 item 3): no earlier version wrote them, so their bytes are
# written here by hand from the fields (every key, sorted; hashes shown byte-reversed as block
# explorers show them, keys and amounts as they are; null where a field does not apply).
TIP_OLD = "0000" + "a1" * 30
TIP_NEW = "0000" + "b2" * 30
FORK = "0000" + "c3" * 30
ALICE_KEY = "aa" * 32
BOB_KEY = "bb" * 32
TXID = "d4" * 32
GOLDEN_REORG = [
    (CHAIN_REORGANIZED,
     f'{{"connected":2,"depth":1,"fork_hash":"{FORK}","fork_height":2,"new_chain_work":10,'
     f'"new_tip_hash":"{TIP_NEW}","new_tip_height":4,"old_chain_work":8,"old_tip_hash":"{TIP_OLD}",'
     '"old_tip_height":3,"payments_returned":1,"payments_reversed":1,"proof_of_stake":false}'),
    (CHAIN_REORGANIZED,
     f'{{"connected":1,"depth":2,"fork_hash":"{FORK}","fork_height":7,"new_chain_work":null,'
     f'"new_tip_hash":"{TIP_NEW}","new_tip_height":8,"old_chain_work":null,"old_tip_hash":"{TIP_OLD}",'
     '"old_tip_height":9,"payments_returned":0,"payments_reversed":0,"proof_of_stake":true}'),
    (PAYMENT_RETURNED_TO_MEMPOOL,
     f'{{"amount":10,"fee":1,"height":3,"nonce":0,"recipient":"{BOB_KEY}","sender":"{ALICE_KEY}",'
     f'"txid":"{TXID}"}}'),
    (PAYMENT_REVERSED,
     f'{{"amount":30,"code":"nonce_replay","fee":2,"height":3,"nonce":0,'
     '"reason":"nonce 0 was already used; the next nonce is 1",'
     f'"recipient":"{BOB_KEY}","sender":"{ALICE_KEY}","txid":"{TXID}"}}'),
    (REORG_REFUSED_BY_FINALITY,
     f'{{"branch_weight":4,"canonical_weight":3,"depth":2,"finalized_epoch":null,"finalized_hash":"{FORK}",'
     f'"finalized_height":1,"fork_hash":"{TIP_OLD}","proof_of_stake":false,"tip_hash":"{TIP_NEW}",'
     '"tip_height":3,"tip_slot":null}'),
    (REORG_REFUSED_BY_FINALITY,
     f'{{"branch_weight":96000000000,"canonical_weight":32000000000,"depth":4,"finalized_epoch":1,'
     f'"finalized_hash":"{FORK}","finalized_height":null,"fork_hash":"{TIP_OLD}","proof_of_stake":true,'
     f'"tip_hash":"{TIP_NEW}","tip_height":null,"tip_slot":2}}'),
]
GOLDEN = GOLDEN_FROM_ENGINE + GOLDEN_HAND_BUILT + GOLDEN_REORG


def test_every_kind_has_golden_bytes():
    assert {kind for kind, _ in GOLDEN} == set(EVENT_TYPES)


@pytest.mark.parametrize(("kind", "stored"), GOLDEN, ids=[f"{k}-{i}" for i, (k, _) in enumerate(GOLDEN)])
def test_stored_bytes_read_back_typed_and_write_back_identical(kind, stored):
    event = decode_event(kind, stored)
    assert type(event) is EVENT_TYPES[kind], getattr(event, "reason", "")
    assert event.kind == kind
    assert event.payload == json.loads(stored)
    assert event.payload_json() == stored
    # Typed: the same facts, built from the fields, write the same bytes.
    rebuilt = type(event)(**{f.name: getattr(event, f.name) for f in dataclasses.fields(event)})
    assert rebuilt.payload_json() == stored


def test_fields_carry_the_values_not_their_encodings():
    [(_, stored)] = [g for g in GOLDEN_FROM_ENGINE if g[0] == BLOCK_MINED and '"slot"' in g[1]]
    block = decode_event(BLOCK_MINED, stored)
    assert isinstance(block, BlockMined)
    assert (block.slot, block.proposer_index, block.proof_of_stake) == (12, 1, True)
    # Hashes are stored as Bitcoin shows them (byte-reversed); the field holds the hash itself.
    assert block.hash == bytes.fromhex(json.loads(stored)["hash"])[::-1]
    assert block.miner == bytes.fromhex(json.loads(stored)["miner"])
    slashed = decode_event(VALIDATOR_SLASHED, SURROUND_VOTE)
    assert isinstance(slashed, ValidatorSlashed) and slashed.votes == ((2, 7), (3, 5)) and slashed.slot is None
    [(_, stored)] = [g for g in GOLDEN_FROM_ENGINE if g[0] == PARAMS_CHANGED]
    changed = decode_event(PARAMS_CHANGED, stored)
    assert isinstance(changed, ParamsChanged)
    assert changed.changes() == [("initial_subsidy_points", 50, 60), ("target_spacing_s", 60, 15)]


def test_reorg_events_carry_values_and_show_hashes_as_explorers_do():
    reorg = decode_event(*GOLDEN_REORG[0])
    assert isinstance(reorg, ChainReorganized)
    assert reorg.new_tip_hash == bytes.fromhex(TIP_NEW)[::-1] and reorg.new_tip_hash.endswith(b"\x00\x00")
    assert (reorg.depth, reorg.old_chain_work, reorg.proof_of_stake) == (1, 8, False)
    assert decode_event(*GOLDEN_REORG[1]).old_chain_work is None
    reversed_ = decode_event(*GOLDEN_REORG[3])
    assert isinstance(reversed_, PaymentReversed)
    assert reversed_.sender == bytes.fromhex(ALICE_KEY) and reversed_.code == "nonce_replay"
    refused = decode_event(*GOLDEN_REORG[5])
    assert isinstance(refused, ReorgRefusedByFinality)
    assert (refused.tip_slot, refused.finalized_epoch, refused.tip_height) == (2, 1, None)


def test_events_are_frozen_and_slotted():
    event = decode_event(*GOLDEN[0])
    assert not hasattr(event, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.height = 3  # type: ignore[misc]


def test_an_unknown_kind_keeps_its_kind_and_payload():
    event = decode_event("comet_sighted", '{"height":3,"tail":"long"}')
    assert isinstance(event, UnknownEvent)
    assert (event.kind, event.payload) == ("comet_sighted", {"height": 3, "tail": "long"})
    assert "does not know" in event.reason
    assert event.payload_json() == '{"height":3,"tail":"long"}'


SURROUND_VOTE = next(stored for kind, stored in GOLDEN_FROM_ENGINE if "surround vote" in stored)
WITHDRAWN = {"address": "03f1ab9d", "dust_burned_units": 0, "full": False, "points": 2, "validator_index": 0}


@pytest.mark.parametrize(
    ("kind", "stored", "why"),
    [
        (STAKE_WITHDRAWN, "{not json", "not JSON"),
        (STAKE_WITHDRAWN, "[1, 2]", "not a JSON object"),
        (STAKE_WITHDRAWN, "", "not JSON"),
        (STAKE_WITHDRAWN, json.dumps({k: v for k, v in WITHDRAWN.items() if k != "points"}), "'points' is missing"),
        (STAKE_WITHDRAWN, json.dumps({**WITHDRAWN, "comet": 1}), "['comet']"),
        (STAKE_WITHDRAWN, json.dumps({**WITHDRAWN, "points": True}), "'points'"),
        (STAKE_WITHDRAWN, json.dumps({**WITHDRAWN, "points": 2.5}), "'points'"),
        (STAKE_WITHDRAWN, json.dumps({**WITHDRAWN, "points": None}), "'points'"),
        (STAKE_WITHDRAWN, json.dumps({**WITHDRAWN, "full": 1}), "'full'"),
        (STAKE_WITHDRAWN, json.dumps({**WITHDRAWN, "address": "03F1AB9D"}), "lowercase"),
        (STAKE_WITHDRAWN, json.dumps({**WITHDRAWN, "address": "03f"}), "'address'"),
        (STAKE_WITHDRAWN, json.dumps({**WITHDRAWN, "address": 3}), "'address'"),
        (VALIDATOR_SLASHED, SURROUND_VOTE.replace('"votes":[[2,7],[3,5]]', '"votes":[[2,7]]'), "'votes'"),
        (VALIDATOR_SLASHED, SURROUND_VOTE.replace('"votes":[[2,7],[3,5]]', '"votes":"2-7"'), "'votes'"),
        (PARAMS_CHANGED, '{"height":10,"block_size":[1,2]}', "['block_size']"),
    ],
)
def test_a_payload_that_does_not_fit_becomes_an_unknown_event(kind, stored, why):
    event = decode_event(kind, stored)
    assert isinstance(event, UnknownEvent) and event.kind == kind
    assert why in event.reason
    assert isinstance(event.payload, dict)


def test_keys_older_renderers_defaulted_may_be_missing():
    """The renderers before typed events read these keys with a default; a row without them still
    reads as its kind (and renders as it did), rather than falling back to a plain embed."""
    event = decode_event(STAKE_WITHDRAWN, '{"address":"03f1ab9d","points":2,"validator_index":0}')
    assert event == StakeWithdrawn(validator_index=0, address=bytes.fromhex("03f1ab9d"), points=2)
    assert (event.dust_burned_units, event.full) == (0, False)


def test_a_field_type_the_codec_cannot_check_is_refused_at_once():
    """A float (or any type the decoder would pass through unchecked) fails the first encode, so
    the golden and round-trip tests catch it before a row is ever written."""
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Comet(ChainEvent):
        kind: ClassVar[str] = "comet"
        brightness: float

    with pytest.raises(TypeError, match="float"):
        Comet(brightness=1.5).payload_json()
