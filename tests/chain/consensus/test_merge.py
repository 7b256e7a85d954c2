"""Modes and the Merge: pow, hybrid (Casper FFG over proof-of-work checkpoints) and pos chains; a
Merge at a height or at a total difficulty (Ethereum's TERMINAL_TOTAL_DIFFICULTY, EIP-3675: the
terminal block is the first whose total difficulty reaches it); merged chains verify offline."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from chain.consensus.export import (
    export_chain,
    import_chain,
    import_consensus,
    import_param_changes,
)
from chain.consensus.genesis import make_genesis_block
from chain.consensus.templates import build_pos_block
from chain.consensus.transition import process_block, replay_chain
from chain.consensus.verify import verify_chain
from chain.errors import (
    ConsensusConfigError,
    IssuanceRateError,
    MergeError,
    VerificationError,
)
from chain.events import CHECKPOINT_FINALIZED, THE_MERGE
from chain.params import REGTEST
from chain.pos.beacon import ConsensusConfig, GenesisValidator
from chain.pos.operations import Operations, make_deposit
from tests.chainkit import CHAIN_ID, GENESIS_TIME, key
from tests.poskit import (
    Harness,
    attest_pow,
    mine_v2,
    new_consensus_chain,
    validator_keys,
)

MINER = key("miner")
VALS = validator_keys(3)


def genesis(config):
    return make_genesis_block(REGTEST, CHAIN_ID, GENESIS_TIME, 0x207FFFFF, config)


def staked_pow_chain(mode="pow", merge_at_height=12, stop_at=100, **overrides):
    """Miner mines, stakes three validators at block 3, and (hybrid) they vote on every checkpoint."""
    config = ConsensusConfig(mode=mode, checkpoint_interval_blocks=4, merge_at_height=merge_at_height, **overrides)
    state = new_consensus_chain(config)
    blocks = [genesis(config)]
    events = []
    pending = []
    for _ in range(2):
        blocks.append(mine_v2(state, MINER.public_key))
    deposits = tuple(make_deposit(MINER, v, 32, i, CHAIN_ID) for i, v in enumerate(VALS))
    blocks.append(mine_v2(state, MINER.public_key, pool=Operations(deposits=deposits)))
    while state.beacon.terminal is None and state.height < stop_at:
        block = mine_v2(state, MINER.public_key, pool=Operations(attestations=tuple(pending)), apply=False)
        effects = process_block(state, block, block.header.time)
        state.apply(block, effects)
        blocks.append(block)
        events.extend(effects.events)
        pending = attest_pow(state, VALS) if mode == "hybrid" and state.height % 4 == 0 else []
    return state, blocks, events


def test_merge_at_height_switches_to_proof_of_stake():
    state, blocks, _ = staked_pow_chain()
    assert state.height == 11 and state.beacon.terminal.height == 11
    h = Harness(state, VALS)
    with pytest.raises(MergeError):
        mine_v2(state, MINER.public_key)
    slot = 12
    block, effects = h.propose(slot)
    assert block.seal is not None and state.height == 12
    (merge,) = [e for e in effects.events if e.kind == THE_MERGE]
    assert merge.payload["height"] == 12 and merge.payload["terminal_height"] == 11
    assert merge.payload["validators"] == 3
    # The terminal block's epoch checkpoint is final: proof of work cannot be reorganised past the Merge.
    assert state.beacon.finality.finalized_checkpoint.epoch == 2
    h.run_epochs(3)
    assert state.beacon.finality.finalized_checkpoint.epoch > 2
    assert state.total_supply_units() == state.issued_supply_units()


def test_merge_at_total_difficulty():
    # Regtest blocks each carry 2 hashes of work; genesis counts too.
    config = ConsensusConfig(
        mode="pow",
        merge_at_total_difficulty=10,
        genesis_validators=(GenesisValidator(VALS[0].public_key, bytes(32), 32),),
    )
    state = new_consensus_chain(config)
    for _ in range(3):
        mine_v2(state, MINER.public_key)
    assert state.beacon.terminal is None and state.beacon.total_difficulty == 8
    mine_v2(state, MINER.public_key)
    assert state.beacon.terminal.height == 4 and state.beacon.terminal.total_difficulty == 10
    with pytest.raises(MergeError):
        mine_v2(state, MINER.public_key)
    Harness(state, VALS).propose(5)
    assert state.beacon.merged


def test_hybrid_validators_finalize_proof_of_work_checkpoints():
    state, _, events = staked_pow_chain(mode="hybrid", merge_at_height=30)
    finalized = [e for e in events if e.kind == CHECKPOINT_FINALIZED]
    assert finalized, "FFG votes on PoW checkpoints should finalize before the Merge"
    assert not state.beacon.merged


def test_merged_chain_exports_and_verifies_offline(tmp_path):
    state, blocks, _ = staked_pow_chain(mode="hybrid", merge_at_height=14)
    h = Harness(state, VALS)
    h.run_epochs(2)
    blocks += h.blocks
    document = json.loads(json.dumps(export_chain(REGTEST, CHAIN_ID, blocks, [], state.consensus)))
    params, chain_id, imported = import_chain(document)
    replayed, report = verify_chain(
        params,
        chain_id,
        imported,
        now=h.slot_time(state.beacon.slot),
        param_changes=import_param_changes(document),
        consensus=import_consensus(document),
    )
    assert replayed.tip_hash == state.tip_hash and replayed.beacon == state.beacon
    assert report.merge_height == 14 and report.pos_blocks == len(h.blocks)
    path = tmp_path / "merged.json"
    path.write_text(json.dumps(document))
    run = subprocess.run(
        [sys.executable, "-m", "chain", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "the Merge at block 14" in run.stdout


def test_invalid_export_with_an_edited_consensus_config():
    state, blocks, _ = staked_pow_chain()
    edited = replace(state.consensus, issuance_rate_bp=1_500)
    with pytest.raises(VerificationError) as info:
        verify_chain(REGTEST, CHAIN_ID, blocks, now=blocks[-1].header.time, consensus=edited)
    assert info.value.height == 0


def test_invalid_pos_block_before_the_merge():
    state, _, _ = staked_pow_chain(merge_at_height=40, stop_at=8)
    with pytest.raises(MergeError):
        build_pos_block(state, VALS[0], 20)
    # A forged proof-of-stake block is refused by the chain itself, whatever its slot clock says.
    from chain.consensus.block import Block, BlockTemplate, PosSeal
    from chain.ledger.transaction import Coinbase

    template = BlockTemplate.build(
        2, state.tip_hash, state.tip.time + 30, 0, Coinbase(9, bytes(32), 0), (), Operations()
    )
    block = Block(template.header, template.coinbase, (), Operations(), PosSeal(9, 0, bytes(64)))
    with pytest.raises(MergeError):
        process_block(state, block, state.tip.time + 60)


def test_invalid_consensus_configs():
    with pytest.raises(ConsensusConfigError):
        ConsensusConfig(mode="proof-of-authority")
    with pytest.raises(ConsensusConfigError):
        ConsensusConfig(merge_at_height=5, merge_at_total_difficulty=5)
    with pytest.raises(ConsensusConfigError):
        ConsensusConfig(mode="pos", merge_at_height=5)
    with pytest.raises(ConsensusConfigError):
        ConsensusConfig(mode="pos")  # nobody to propose
    with pytest.raises(IssuanceRateError):
        ConsensusConfig(issuance_rate_bp=299)
    with pytest.raises(IssuanceRateError):
        ConsensusConfig(issuance_rate_bp=1_501)
    with pytest.raises(ConsensusConfigError):
        ConsensusConfig(unbonding_epochs=10, slashed_unbonding_epochs=5)


def test_consensus_config_roundtrips_through_json():
    config = ConsensusConfig(
        mode="hybrid",
        merge_at_total_difficulty=1_000,
        genesis_validators=(GenesisValidator(VALS[0].public_key, MINER.public_key, 40),),
    )
    assert ConsensusConfig.from_json(config.to_json()) == config


def test_merge_scheduled_on_a_running_chain_is_committed_and_replayed():
    from chain.consensus.templates import build_template
    from chain.events import MERGE_SCHEDULED
    from tests.chainkit import solve

    state, blocks, _ = staked_pow_chain(merge_at_height=0, stop_at=5)
    schedule = replace(state.consensus, merge_at_height=9)
    now = state.tip.time + 60
    block = solve(build_template(state, MINER.public_key, [], now, proposed_consensus=schedule), REGTEST)
    from chain.errors import BadCoinbaseError

    with pytest.raises(BadCoinbaseError):
        process_block(state, block, now)  # a commitment nobody proposed is refused
    effects = process_block(state, block, now, proposed_consensus=schedule)
    assert [e.kind for e in effects.events if e.kind == MERGE_SCHEDULED] == [MERGE_SCHEDULED]
    state.apply(block, effects)
    blocks.append(block)
    while state.beacon.terminal is None:
        blocks.append(mine_v2(state, MINER.public_key))
    assert state.beacon.terminal.height == 8
    h = Harness(state, VALS)
    h.propose(9)
    blocks += h.blocks
    document = json.loads(
        json.dumps(export_chain(REGTEST, CHAIN_ID, blocks, [], state.consensus, state.consensus_changes))
    )
    from chain.consensus.export import import_consensus_changes

    _, report = verify_chain(
        REGTEST,
        CHAIN_ID,
        blocks,
        now=h.slot_time(9),
        consensus=state.consensus,
        consensus_changes=import_consensus_changes(document),
    )
    assert report.merge_height == 9
    with pytest.raises(VerificationError):
        verify_chain(REGTEST, CHAIN_ID, blocks, now=h.slot_time(9), consensus=state.consensus)


def test_invalid_merge_schedules():
    from chain.consensus.consensus_block import check_merge_schedule
    from chain.errors import ParamsError

    state, _, _ = staked_pow_chain(merge_at_height=0, stop_at=5)
    with pytest.raises(ParamsError):
        check_merge_schedule(state, 6, replace(state.consensus, merge_at_height=7))  # not in the future
    with pytest.raises(ParamsError):
        check_merge_schedule(state, 6, replace(state.consensus, merge_at_height=20, issuance_rate_bp=900))
    with pytest.raises(ParamsError):
        check_merge_schedule(
            state, 6, replace(state.consensus, merge_at_total_difficulty=state.beacon.total_difficulty)
        )
    merged, _, _ = staked_pow_chain(merge_at_height=8)
    with pytest.raises(MergeError):
        check_merge_schedule(merged, 8, replace(merged.consensus, merge_at_height=20))


def test_invalid_export_with_a_forged_proposer_signature():
    state, blocks, _ = staked_pow_chain(merge_at_height=10)
    h = Harness(state, VALS)
    h.run_epochs(1)
    forged = list(blocks + h.blocks)
    target = len(blocks) + 2
    forged[target] = replace(forged[target], seal=replace(forged[target].seal, signature=bytes(64)))
    from chain.errors import BadSignatureError

    with pytest.raises(VerificationError) as info:
        verify_chain(REGTEST, CHAIN_ID, forged, now=h.slot_time(state.beacon.slot), consensus=state.consensus)
    assert info.value.height == target and isinstance(info.value.cause, BadSignatureError)


def test_the_merge_waits_for_a_validator():
    config = ConsensusConfig(mode="pow", checkpoint_interval_blocks=4, merge_at_height=3)
    state = new_consensus_chain(config)
    for _ in range(4):
        mine_v2(state, MINER.public_key)
    assert state.beacon.terminal is None  # nobody staked: keep mining rather than halt
    mine_v2(state, MINER.public_key, pool=Operations(deposits=(make_deposit(MINER, VALS[0], 32, 0, CHAIN_ID),)))
    assert state.height == 5 and state.beacon.registry.validators[0].activation_epoch == 2
    mine_v2(state, MINER.public_key)
    assert state.beacon.terminal is None  # block 7 would still be in epoch 1, before the activation
    mine_v2(state, MINER.public_key)
    assert state.beacon.terminal.height == 7
    Harness(state, VALS).propose(8)
    assert state.beacon.merged


def test_a_delayed_merge_is_announced_and_the_merge_post_has_the_real_numbers():
    """Issue 9: with nobody active at the scheduled block, the only posts were the schedule's ("block 2
    is the last proof-of-work block") and, later, a Merge post saying "Validators: 0" just before
    "Validator #0 is active". Now the due block says the Merge waits, and the Merge names the real
    terminal block and the validators of the first proof-of-stake epoch."""
    from chain.consensus.transition import process_block
    from chain.events import MERGE_DELAYED, THE_MERGE

    config = ConsensusConfig(mode="pow", checkpoint_interval_blocks=4, merge_at_height=3)
    state = new_consensus_chain(config)
    kinds = []
    for _ in range(4):
        block = mine_v2(state, MINER.public_key, apply=False)
        effects = process_block(state, block, block.header.time)
        state.apply(block, effects)
        kinds.append([e.kind for e in effects.events])
    delayed = [i + 1 for i, k in enumerate(kinds) if MERGE_DELAYED in k]
    assert delayed == [2]  # once, at the block that was due to be the last proof-of-work block
    mine_v2(state, MINER.public_key, pool=Operations(deposits=(make_deposit(MINER, VALS[0], 32, 0, CHAIN_ID),)))
    mine_v2(state, MINER.public_key)
    mine_v2(state, MINER.public_key)
    assert state.beacon.terminal.height == 7
    block, effects = Harness(state, VALS).propose(8)
    [merge] = [e for e in effects.events if e.kind == THE_MERGE]
    assert merge.payload["terminal_height"] == 7 and merge.payload["height"] == 8
    assert merge.payload["validators"] == 1


def test_replay_rebuilds_the_beacon_state_for_a_restart():
    state, blocks, _ = staked_pow_chain(merge_at_height=10)
    h = Harness(state, VALS)
    h.run_epochs(1)
    restarted = replay_chain(REGTEST, CHAIN_ID, blocks + h.blocks, state.consensus)
    assert restarted.beacon == state.beacon and restarted.tip_hash == state.tip_hash
    assert dict(restarted.ledger.items()) == dict(state.ledger.items())
