"""Small builders shared by the engine tests: keys, chains, and inline mining."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from chain.consensus.block import Block, BlockTemplate
from chain.consensus.genesis import make_genesis_block
from chain.consensus.state import ChainState
from chain.consensus.templates import build_template
from chain.consensus.transition import process_block
from chain.keys import SigningKey
from chain.ledger.transaction import Transfer, make_transfer
from chain.params import REGTEST, ChainParams
from chain.pow.compact import encode_compact
from chain.pow.difficulty import is_valid_proof_of_work

CHAIN_ID = 424242
GENESIS_TIME = 1_700_000_000


def key(name: str) -> SigningKey:
    """A deterministic key per name, so failures are reproducible."""
    return SigningKey(hashlib.sha256(name.encode()).digest())


def genesis_block(params: ChainParams = REGTEST, chain_id: int = CHAIN_ID, bits: int | None = None) -> Block:
    if bits is None:
        bits = encode_compact(params.pow_limit)
    return make_genesis_block(params, chain_id, GENESIS_TIME, bits)


def new_chain(params: ChainParams = REGTEST, chain_id: int = CHAIN_ID, bits: int | None = None) -> ChainState:
    return ChainState(params, chain_id, genesis_block(params, chain_id, bits))


def solve(template: BlockTemplate, params: ChainParams) -> Block:
    """Find a nonce in the test process (easy targets only)."""
    header = template.header
    for nonce in range(1 << 20):
        candidate = header.with_nonce(nonce)
        if is_valid_proof_of_work(candidate.hash(), candidate.bits, params):
            return template.solve(template.coinbase.extra_nonce, nonce)
    raise AssertionError("no nonce found in 2^20 tries: target too hard for a test")


def mine(
    state: ChainState,
    miner: bytes,
    transfers: Sequence[Transfer] = (),
    time: int | None = None,
    apply: bool = True,
) -> Block:
    """Build, solve and (by default) apply a block on ``state``."""
    now = time if time is not None else state.tip.time + state.params.target_spacing_s
    block = solve(build_template(state, miner, list(transfers), now), state.params)
    if apply:
        state.apply(block, process_block(state, block, now))
    return block


def pay(
    state: ChainState, sender: SigningKey, recipient: bytes, amount: int, fee: int = 0, nonce: int | None = None
) -> Transfer:
    if nonce is None:
        nonce = state.ledger.get(sender.public_key).nonce if sender.public_key in state.ledger else 0
    return make_transfer(sender, recipient, amount, fee, nonce, state.chain_id)
