"""A chain's genesis block: it commits to the chain id, the parameters and the consensus config,
so an export verifies alone (``compute_genesis_commitment``); ``make_genesis_block`` builds it and
``check_genesis_block`` is the rule every state starts from."""

from __future__ import annotations

import hashlib
import struct

from chain.consensus.block import BLOCK_VERSION, Block, BlockTemplate
from chain.errors import BadCoinbaseError, BadParentError, MergeError, MerkleRootMismatchError
from chain.hashing import ZERO_HASH
from chain.ledger.transaction import Coinbase
from chain.mode import Mode
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig
from chain.pow.compact import compute_target

GENESIS_MINER = bytes(32)  # nobody: the genesis block mints nothing
GENESIS_TAG = b"consensus-playground genesis "


def compute_genesis_commitment(params: ChainParams, chain_id: int, consensus: ConsensusConfig | None = None) -> bytes:
    """Genesis commits to its chain id, parameters and consensus config, so an export verifies alone.

    A chain without a consensus config commits exactly as before.
    """
    payload = struct.pack("<Q", chain_id) + params.to_bytes()
    if consensus is not None:
        payload += b"|consensus|" + consensus.to_bytes()
    return GENESIS_TAG + hashlib.sha256(payload).digest()


def make_genesis_block(
    params: ChainParams, chain_id: int, time: int, bits: int, consensus: ConsensusConfig | None = None
) -> Block:
    """The anchor block: no proof of work, its ``bits`` set the first difficulty (0 in a pos chain)."""
    if consensus is not None and consensus.mode is Mode.POS:
        bits = 0
    else:
        compute_target(bits, params.pow_limit)
    coinbase = Coinbase(0, GENESIS_MINER, 0, 0, compute_genesis_commitment(params, chain_id, consensus))
    template = BlockTemplate.build(BLOCK_VERSION, ZERO_HASH, time, bits, coinbase, ())
    return template.solve(0, 0)


def check_genesis_block(
    block: Block, params: ChainParams, chain_id: int, consensus: ConsensusConfig | None = None
) -> None:
    if block.header.prev_hash != ZERO_HASH:
        raise BadParentError("the genesis block must have an all-zero parent hash")
    expected = Coinbase(
        0, GENESIS_MINER, 0, block.coinbase.extra_nonce, compute_genesis_commitment(params, chain_id, consensus)
    )
    if block.coinbase != expected or block.transfers or block.operations is not None:
        raise BadCoinbaseError("genesis does not commit to this chain id, these parameters and this consensus config")
    if block.compute_merkle_root() != block.header.merkle_root:
        raise MerkleRootMismatchError("genesis merkle root does not match its coinbase")
    if consensus is not None and consensus.mode is Mode.POS:
        if block.header.bits != 0 or block.header.nonce != 0:
            raise MergeError("a pos chain's genesis has no proof of work: bits and nonce are 0")
    else:
        compute_target(block.header.bits, params.pow_limit)
