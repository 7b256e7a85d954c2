"""What every part of the beacon node shares about a chain: one ``BeaconChains``.

The beacon node (``chain.adapters.beacon_node``) is split by concern: staking, votes, the slot
driver, slashing reports, the mode lifecycle, status reads.  Each part holds the same
``BeaconChains``, so there is one place for the per-chain memory (``BeaconRuntime``, kept in the
node's ``ChainRuntime.consensus``), one dict of slot locks, and one signer and store; no part
keeps a copy of either.

Two locks guard a chain's check-then-act steps, and the parts use them exactly as before the split:
``Node.locked`` (the chain lock payments take: deposits and exits) and ``BeaconChains.lock`` (the
slot lock: slot ticks, equivocation, resets and mode switches).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from chain.adapters.node import ChainRuntime, Node
from chain.adapters.signer import ValidatorSigner
from chain.consensus.block import Block
from chain.consensus.state import ChainState
from chain.errors import ChainBeforeStakingError, ChaosModeOffError
from chain.pos import lmd_ghost
from chain.pos.beacon import BeaconState
from chain.pos.forkchoice import SlashingDetector


@dataclass
class BeaconRuntime:
    """The per-chain state a consensus client keeps beside the chain itself (memory only)."""

    # The LMD-GHOST store over the chain's block tree (chain/adapters/head_choice.py), and the branches
    # finality refused at the last decision (each announced once).
    head_choice: lmd_ghost.Store | None = None
    refused_branches: tuple[lmd_ghost.RefusedBranch, ...] = ()
    # The blocks proposed in the slot running now, by root (all in the tree; a second one is chaos).
    proposed: dict[bytes, Block] = field(default_factory=dict)
    detector: SlashingDetector = field(default_factory=SlashingDetector)
    last_slot: int = -1
    # Validator pubkey -> owner, for the keys the bot custodies on this chain.
    owners: dict[bytes, str] = field(default_factory=dict)
    auto_attest: set[str] = field(default_factory=set)
    # Validator index -> the latest target epoch it voted for (so auto-attest asks once an epoch).
    voted: dict[int, int] = field(default_factory=dict)


def require_beacon(state: ChainState) -> BeaconState:
    """The chain's beacon state; a chain without one has no proof-of-stake side to act on."""
    if state.beacon is None:
        raise ChainBeforeStakingError(state.chain_id)
    return state.beacon


def is_pos(beacon: BeaconState) -> bool:
    return beacon.merged or beacon.terminal is not None


class BeaconChains:
    """The node, the signer, the store, the slot locks and the per-chain memory: shared by every part."""

    def __init__(self, node: Node, signer: ValidatorSigner) -> None:
        self.node = node
        self.signer = signer
        self.store = node.store
        self._locks: dict[int, asyncio.Lock] = {}

    def chain(self, chain_id: int) -> ChainRuntime:
        runtime = self.node.chain(chain_id)
        require_beacon(runtime.state)
        return runtime

    def beacon(self, chain_id: int) -> BeaconState:
        return require_beacon(self.node.chain(chain_id).state)

    async def runtime(self, chain_id: int) -> BeaconRuntime:
        """This chain's consensus memory, kept in the node's runtime of the chain (one per server)."""
        runtime = self.node.chain(chain_id).consensus
        if runtime is None:
            runtime = BeaconRuntime()
            for stored in await self.store.validator_keys.all(chain_id):
                runtime.owners[stored.pubkey] = stored.owner
            runtime.auto_attest = set(await self.store.validator_settings.auto_attesters(chain_id))
            # Read again after the awaits: another caller may have built it first (keep theirs), or a
            # reset may have replaced the chain (the memory goes with the new one, read from the store).
            chain = self.node.chain(chain_id)
            if chain.consensus is None:
                chain.consensus = runtime
            runtime = chain.consensus
        return runtime

    @property
    def runtimes(self) -> dict[int, BeaconRuntime]:
        """The consensus memory of every loaded chain that has one, by chain id: a read-only view
        (it lives in the node's runtimes; tests wait on a runtime's ``last_slot`` through it)."""
        return {
            chain_id: runtime for chain_id in self.node.chain_ids()
            if (runtime := self.node.chain(chain_id).consensus) is not None
        }

    def lock(self, chain_id: int) -> asyncio.Lock:
        """The chain's slot lock: slot ticks, equivocation, resets and mode switches take it."""
        return self._locks.setdefault(chain_id, asyncio.Lock())

    async def load(self) -> None:
        """Read who owns which validator (and who auto-attests) for every consensus chain."""
        for chain_id in self.consensus_chain_ids():
            await self.runtime(chain_id)

    async def validator_owners(self, chain_id: int) -> dict[bytes, str]:
        """Validator public key -> owner, for the keys the bot custodies on this chain."""
        if not self.node.has_chain(chain_id):  # an offline chain's events still name their owners
            return {stored.pubkey: stored.owner for stored in await self.store.validator_keys.all(chain_id)}
        return dict((await self.runtime(chain_id)).owners)

    def forget(self, chain_id: int) -> None:
        """Drop the per-chain memory (after a reset): candidates, fork choice, detector, cached keys.
        A reset's new chain runtime starts without it anyway; this also covers a chain that stays."""
        if self.node.has_chain(chain_id):
            self.node.chain(chain_id).consensus = None
        self.signer.forget(chain_id)

    def consensus_chain_ids(self) -> list[int]:
        return [c for c in self.node.chain_ids() if self.node.chain(c).state.beacon is not None]

    async def index_of(self, chain_id: int, owner: str) -> int | None:
        # Only looks: a member who never deposited gets no key from asking.
        pubkey = await self.signer.find_validator_key(chain_id, owner)
        if pubkey is None:
            return None
        (await self.runtime(chain_id)).owners[pubkey] = owner
        return self.beacon(chain_id).registry.index_of(pubkey)

    async def require_chaos(self, chain_id: int, what: str) -> None:
        """The one place chaos mode is checked: before anything deliberately slashable is signed."""
        if not await self.store.chaos_mode.get_chaos_mode(chain_id):
            raise ChaosModeOffError(chain_id, what)
