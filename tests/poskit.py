"""Builders for proof-of-stake tests: pos/hybrid chains, proposing, attesting."""

from __future__ import annotations

from collections.abc import Sequence

from chain.consensus.block import Block
from chain.consensus.duties import get_slot_proposer
from chain.consensus.genesis import make_genesis_block
from chain.consensus.state import ChainState
from chain.consensus.templates import build_pos_block
from chain.consensus.transition import process_block
from chain.keys import SigningKey
from chain.ledger.transaction import Transfer
from chain.mode import Mode
from chain.params import REGTEST, ChainParams
from chain.pos.attestation import (
    AttestationData,
    Checkpoint,
    SignedAttestation,
    sign_attestation,
)
from chain.pos.beacon import (
    ConsensusConfig,
    GenesisAllocation,
    GenesisValidator,
    compute_slot_time,
    get_checkpoint_root,
)
from chain.pos.operations import Operations
from tests.chainkit import CHAIN_ID, GENESIS_TIME, key

VALIDATOR_NAMES = ("val-alice", "val-bob", "val-carol", "val-dave")
WALLET_NAMES = ("alice", "bob", "carol", "dave")


def validator_keys(count: int = 4) -> list[SigningKey]:
    return [key(f"val-{i}") for i in range(count)]


def pos_config(count: int = 4, stake_points: int = 32, allocation: int = 1_000, **overrides) -> ConsensusConfig:
    vals = validator_keys(count)
    wallets = [key(f"wallet-{i}") for i in range(count)]
    return ConsensusConfig(
        mode=Mode.POS,
        genesis_validators=tuple(
            GenesisValidator(v.public_key, w.public_key, stake_points) for v, w in zip(vals, wallets, strict=True)
        ),
        genesis_allocations=tuple(GenesisAllocation(w.public_key, allocation) for w in wallets),
        **overrides,
    )


def new_consensus_chain(config: ConsensusConfig, params: ChainParams = REGTEST) -> ChainState:
    genesis = make_genesis_block(params, CHAIN_ID, GENESIS_TIME, 0x207FFFFF, config)
    return ChainState(params, CHAIN_ID, genesis, config)


class Harness:
    """Drives a consensus chain: proposes each slot with the drawn proposer's key."""

    def __init__(self, state: ChainState, keys: Sequence[SigningKey]) -> None:
        self.state = state
        self.keys = {k.public_key: k for k in keys}
        self.blocks: list[Block] = []
        self.events = []

    def key_of(self, index: int) -> SigningKey:
        return self.keys[self.state.beacon.registry.validators[index].pubkey]

    def slot_time(self, slot: int) -> int:
        return compute_slot_time(self.state.beacon, slot)

    def build(self, slot: int, transfers: Sequence[Transfer] = (), pool: Operations = Operations()) -> Block:
        proposer = get_slot_proposer(self.state, slot)
        return build_pos_block(self.state, self.key_of(proposer), slot, transfers, pool)

    def apply(self, block: Block, now: int | None = None):
        slot = block.seal.slot if block.seal else None
        now = now if now is not None else (self.slot_time(slot) if slot is not None else block.header.time)
        effects = process_block(self.state, block, now)
        self.state.apply(block, effects)
        self.blocks.append(block)
        self.events.extend(effects.events)
        return effects

    def propose(self, slot: int, transfers: Sequence[Transfer] = (), pool: Operations = Operations()):
        block = self.build(slot, transfers, pool)
        return block, self.apply(block)

    def attest(
        self, slot: int, voters: Sequence[int] | None = None, head: bytes | None = None
    ) -> list[SignedAttestation]:
        """Votes at ``slot`` (the state's current epoch) by ``voters`` (default: every active validator)."""
        beacon = self.state.beacon
        epoch = beacon.epoch
        target = Checkpoint(epoch, get_checkpoint_root(beacon, epoch))
        data = AttestationData(
            self.state.chain_id, slot, head or self.state.tip_hash, beacon.finality.current_justified_checkpoint, target
        )
        if voters is None:
            voters = [i for i, v in enumerate(beacon.registry.validators) if v.activation_epoch <= epoch < v.exit_epoch]
        return [sign_attestation(self.key_of(i), data) for i in voters]

    def run_epochs(self, epochs: int, voters: Sequence[int] | None = None, pool: Operations = Operations()) -> None:
        """Fill every slot; at each epoch's first slot the voters attest, included in the next slot."""
        spe = self.state.consensus.slots_per_epoch
        start = self.state.beacon.slot + 1
        pending: list[SignedAttestation] = []
        for slot in range(start, start + epochs * spe):
            ops = Operations(
                attestations=tuple(pending), **{k: getattr(pool, k) for k in ("deposits", "voluntary_exits")}
            )
            self.propose(slot, pool=ops)
            pool = Operations()
            pending = self.attest(slot, voters) if slot % spe in (0, 1) and not pending else []


def mine_v2(
    state: ChainState,
    miner: bytes,
    transfers: Sequence[Transfer] = (),
    pool: Operations = Operations(),
    time: int | None = None,
    apply: bool = True,
) -> Block:
    """Build, solve and (by default) apply a proof-of-work block on a consensus chain."""
    from chain.consensus.templates import build_template
    from tests.chainkit import solve

    now = time if time is not None else state.tip.time + state.params.target_spacing_s
    block = solve(build_template(state, miner, list(transfers), now, pool=pool), state.params)
    if apply:
        state.apply(block, process_block(state, block, now))
    return block


def attest_pow(state: ChainState, keys: Sequence[SigningKey]) -> list[SignedAttestation]:
    """Hybrid votes at the tip's slot (its height) by ``keys``."""
    beacon = state.beacon
    target = Checkpoint(beacon.epoch, get_checkpoint_root(beacon, beacon.epoch))
    data = AttestationData(
        state.chain_id, state.height, state.tip_hash, beacon.finality.current_justified_checkpoint, target
    )
    return [sign_attestation(k, data) for k in keys]


def forge_pos_block(
    state: ChainState,
    slot: int,
    operations: Operations = Operations(),
    transfers: Sequence[Transfer] = (),
    signer: SigningKey | None = None,
    proposer_index: int | None = None,
    coinbase_amount: int | None = None,
    time: int | None = None,
    keys: Sequence[SigningKey] | None = None,
    parent: bytes | None = None,
) -> Block:
    """A proof-of-stake block with exactly these operations (no filtering), for refusal tests."""
    from chain.consensus.block import BLOCK_VERSION_OPERATIONS, BlockTemplate, PosSeal
    from chain.ledger.transaction import Coinbase
    from chain.pos.attestation import ProposalHeader

    keys = keys or validator_keys(len(state.beacon.registry.validators))
    by_pubkey = {k.public_key: k for k in keys}
    if proposer_index is None:
        proposer_index = get_slot_proposer(state, slot)
    pubkey = state.beacon.registry.validators[proposer_index].pubkey
    signer = signer or by_pubkey[pubkey]
    fees = sum(t.fee for t in transfers)
    coinbase = Coinbase(state.height + 1, bytes(32), fees if coinbase_amount is None else coinbase_amount)
    template = BlockTemplate.build(
        BLOCK_VERSION_OPERATIONS,
        parent or state.tip_hash,
        time if time is not None else compute_slot_time(state.beacon, slot),
        0,
        coinbase,
        tuple(transfers),
        operations,
    )
    header = ProposalHeader(state.chain_id, slot, pubkey, template.header.prev_hash, template.header.merkle_root)
    signature = signer.sign(header.signing_root())
    return Block(template.header, coinbase, tuple(transfers), operations, PosSeal(slot, proposer_index, signature))


def snapshot(state: ChainState):
    return (state.height, state.tip_hash, dict(state.ledger.items()), state.ledger.minted, state.beacon)


def assert_refused(state: ChainState, block: Block, error: type[Exception], now: int | None = None):
    import pytest

    before = snapshot(state)
    slot = block.seal.slot if block.seal else None
    if now is None:
        now = compute_slot_time(state.beacon, slot) if slot is not None else block.header.time
    with pytest.raises(error) as info:
        process_block(state, block, now)
    assert snapshot(state) == before
    return info


# --- whole chains of each kind, as blocks (startup and snapshot tests) ----------------------


def staked_chain(mode: str = "pow", merge_at_height: int = 0, blocks: int = 20) -> tuple[ChainState, list[Block]]:
    """A mined chain where three validators stake at block 3; in hybrid mode they vote on every
    checkpoint.  With ``merge_at_height`` it stops at the terminal block."""
    from chain.pos.beacon import ConsensusConfig
    from chain.pos.operations import make_deposit

    miner = key("miner")
    vals = validator_keys(3)
    config = ConsensusConfig(mode=mode, checkpoint_interval_blocks=4, merge_at_height=merge_at_height)
    state = new_consensus_chain(config)
    chain = [make_genesis_block(REGTEST, CHAIN_ID, GENESIS_TIME, 0x207FFFFF, config)]
    chain += [mine_v2(state, miner.public_key) for _ in range(2)]
    deposits = tuple(make_deposit(miner, v, 32, i, CHAIN_ID) for i, v in enumerate(vals))
    chain.append(mine_v2(state, miner.public_key, pool=Operations(deposits=deposits)))
    pending: list[SignedAttestation] = []
    while state.beacon.terminal is None and state.height < blocks:
        chain.append(mine_v2(state, miner.public_key, pool=Operations(attestations=tuple(pending))))
        pending = attest_pow(state, vals) if mode == "hybrid" and state.height % 4 == 0 else []
    return state, chain


def merged_chain_with_exit_and_slashing() -> tuple[ChainState, list[Block]]:
    """A pow chain that merged at block 10, then proof of stake in which validator 2 exits and
    validator 1 is slashed for a double vote, and a few epochs more."""
    from chain.pos.attestation import AttesterSlashing
    from chain.pos.operations import make_voluntary_exit

    state, chain = staked_chain("pow", merge_at_height=10)
    vals = validator_keys(3)
    h = Harness(state, vals)
    h.run_epochs(1)
    epoch = state.beacon.epoch
    votes = [
        sign_attestation(
            vals[1], AttestationData(CHAIN_ID, epoch * 8, head, Checkpoint(0, bytes(32)), Checkpoint(epoch, bytes(32)))
        )
        for head in (b"\x01" * 32, b"\x02" * 32)
    ]
    slot = state.beacon.slot + 1
    while get_slot_proposer(state, slot) == 1:
        slot += 1
    h.propose(slot, pool=Operations(
        voluntary_exits=(make_voluntary_exit(vals[2], 2, epoch, CHAIN_ID),),
        attester_slashings=(AttesterSlashing(*votes),),
    ))
    # Three more epochs; a slashed validator may still be drawn, and may not propose: its slots stay empty.
    for slot in range(state.beacon.slot + 1, state.beacon.slot + 1 + 3 * 8):
        if not state.beacon.registry.validators[get_slot_proposer(state, slot)].slashed:
            h.propose(slot)
    return state, chain + h.blocks


def pos_chain(validators: int = 4, epochs: int = 3) -> tuple[ChainState, list[Block]]:
    """A pos chain from genesis: every slot proposed, every active validator voting."""
    config = pos_config(validators)
    state = new_consensus_chain(config)
    h = Harness(state, validator_keys(validators))
    h.run_epochs(epochs)
    return state, [make_genesis_block(REGTEST, CHAIN_ID, GENESIS_TIME, 0x207FFFFF, config), *h.blocks]
