"""Changing a running chain's rules: proposed, committed by a block, replayed by verify."""

import json
import os

import pytest

from chain.adapters.node import Node
from chain.adapters.storage import Store
from chain.consensus.export import import_chain, import_param_changes
from chain.consensus.rule_changes import compute_params_commitment
from chain.consensus.templates import build_template
from chain.consensus.transition import process_block
from chain.consensus.verify import verify_chain
from chain.errors import BadCoinbaseError, ParamsError, VerificationError
from chain.events import PARAMS_CHANGED
from chain.params import REGTEST
from tests.chainkit import key, mine, new_chain, solve

MINER = key("miner")


def test_a_committed_change_governs_the_blocks_after_it():
    state = new_chain()
    mine(state, MINER.public_key)
    richer = state.params.evolve(initial_subsidy_points=80)
    now = state.tip.time + 1
    block = solve(build_template(state, MINER.public_key, [], now, proposed_params=richer), REGTEST)
    assert block.coinbase.message == compute_params_commitment(richer)
    effects = process_block(state, block, now, richer)
    assert effects.params_change == richer
    assert effects.subsidy == 50  # the committing block still pays under the old rules
    changed = [e.payload for e in effects.events if e.kind == PARAMS_CHANGED]
    assert changed == [{"height": 2, "initial_subsidy_points": [50, 80]}]
    state.apply(block, effects)
    assert state.params.initial_subsidy_points == 80
    assert state.params_at(2).initial_subsidy_points == 50
    mine(state, MINER.public_key)
    assert state.ledger.total_balance() == state.ledger.minted == 50 + 50 + 80


def test_invalid_commitment_to_an_unproposed_change():
    state = new_chain()
    sneaky = state.params.evolve(initial_subsidy_points=5000)
    now = state.tip.time + 1
    block = solve(build_template(state, MINER.public_key, [], now, proposed_params=sneaky), REGTEST)
    with pytest.raises(BadCoinbaseError, match="not proposed"):
        process_block(state, block, now)
    with pytest.raises(BadCoinbaseError, match="not proposed"):
        process_block(state, block, now, state.params.evolve(initial_subsidy_points=60))


def test_invalid_change_of_a_fixed_rule():
    state = new_chain()
    easier = state.params.evolve(pow_limit=state.params.pow_limit // 2)
    now = state.tip.time + 1
    block = solve(build_template(state, MINER.public_key, [], now, proposed_params=easier), REGTEST)
    with pytest.raises(ParamsError, match="fixed at genesis"):
        process_block(state, block, now, easier)


async def test_node_proposal_survives_restart_and_verifies(tmp_path):
    path = tmp_path / "rules.sqlite3"
    clock = iter(range(1_800_000_000, 1_900_000_000))

    async def open_node():
        store = await Store.open(path)
        node = Node(store, clock=lambda: float(next(clock)), randomness=os.urandom, master_key=bytes(32))
        await node.load()
        return node

    node = await open_node()
    await node.create_chain(1, REGTEST, initial_bits=0x207FFFFF)
    miner = await node.address(1, "m")
    await node.submit_block(1, solve(node.template(1, miner), REGTEST))
    with pytest.raises(ParamsError):
        await node.propose_params(1, node.chain(1).state.params)
    slower = node.chain(1).state.params.evolve(target_spacing_s=120, retarget_window_blocks=5)
    await node.propose_params(1, slower)
    await node.store.close()

    node = await open_node()
    assert node.pending_params(1) == slower
    effects = await node.submit_block(1, solve(node.template(1, miner), REGTEST))
    assert effects.params_change == slower and node.pending_params(1) is None
    await node.submit_block(1, solve(node.template(1, miner), REGTEST))
    await node.store.close()

    node = await open_node()
    assert node.chain(1).state.params == slower
    assert node.chain(1).state.param_changes == [(2, slower)]
    report = await node.verify(1)
    assert report.blocks == 4

    document = json.loads(json.dumps(await node.export(1)))
    params, chain_id, blocks = import_chain(document)
    verify_chain(params, chain_id, blocks, node.now(), param_changes=import_param_changes(document))
    with pytest.raises(VerificationError, match="block 2"):
        verify_chain(params, chain_id, blocks, node.now())  # the change withheld
    forged = [(2, slower.evolve(initial_subsidy_points=999))]
    with pytest.raises(VerificationError, match="block 2"):
        verify_chain(params, chain_id, blocks, node.now(), param_changes=forged)
    await node.store.close()
