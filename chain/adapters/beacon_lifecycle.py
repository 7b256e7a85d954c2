"""A chain's consensus lifecycle: started over (a reset, or a switch to another mode) and the Merge.

Both ways of starting over are one atomic step (``Node.replace_chain``) taken under the chain's
slot lock, so the slot driver never runs a slot of a chain half replaced, and the consensus memory
goes with the old chain.  ``schedule_merge`` has the next proof-of-work block commit to the Merge.
"""

from __future__ import annotations

from dataclasses import replace

from chain.adapters.beacon_runtime import BeaconChains
from chain.adapters.storage.records import StoredKey
from chain.mode import Mode
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig, GenesisAllocation, GenesisValidator

# Points a member gets at the genesis of a pos chain (nothing is mined there), so they can stake.
GENESIS_ALLOCATION_POINTS = 100


class BeaconLifecycle:
    """Resets, mode switches and the Merge schedule of a chain that can stake."""

    def __init__(self, chains: BeaconChains) -> None:
        self.chains = chains

    async def schedule_merge(
        self, chain_id: int, *, at_height: int | None = None, at_total_difficulty: int | None = None
    ) -> ConsensusConfig:
        config = self.chains.beacon(chain_id).config
        proposed = config.evolve(merge_at_height=at_height or 0, merge_at_total_difficulty=at_total_difficulty or 0)
        await self.chains.node.propose_consensus(chain_id, proposed)
        return proposed

    async def switch_mode(
        self, chain_id: int, mode: Mode, admin_owner: str, now: int, *, base: ConsensusConfig | None = None,
        initial_bits: int | None = None,
    ) -> ConsensusConfig:
        """Start the chain over in ``mode``.  In pos the admin is the genesis validator and every
        member with a wallet gets ``GENESIS_ALLOCATION_POINTS`` (nothing is mined in pos).

        One atomic step (``Node.replace_chain``): the old chain is never missing, so no command
        can slip a default chain in between; the slot driver waits on this chain's lock.
        """
        node, signer = self.chains.node, self.chains.signer
        async with self.chains.lock(chain_id):
            old = node.chain(chain_id).state
            base = base or (old.beacon.config if old.beacon is not None else ConsensusConfig())
            bits = old.tip.bits if initial_bits is None else initial_bits
            owners = dict(await node.owners(chain_id))
            admin_wallet = await node.address(chain_id, admin_owner)  # wallets outlive the reset
            validators: tuple[GenesisValidator, ...] = ()
            allocations: tuple[GenesisAllocation, ...] = ()
            # Validator keys go with the old chain; the admin's is made anew, stored with the new chain.
            keys: tuple[StoredKey, ...] = ()
            if mode is Mode.POS:
                admin_key = signer.new_validator_key(chain_id, admin_owner)
                keys = (admin_key,)
                validators = (GenesisValidator(admin_key.pubkey, admin_wallet, base.min_deposit_points),)
                funded = {pubkey: GENESIS_ALLOCATION_POINTS for pubkey in owners}
                funded[admin_wallet] = GENESIS_ALLOCATION_POINTS
                allocations = tuple(GenesisAllocation(a, p) for a, p in sorted(funded.items()))
            config = replace(
                base, mode=mode, merge_at_height=0, merge_at_total_difficulty=0,
                genesis_validators=validators, genesis_allocations=allocations,
            )
            # The genesis validator auto-attests from the start: a new pos chain whose only validator
            # waits for someone to press Attest starts leaking its stake within minutes.
            await node.replace_chain(chain_id, old.params, initial_bits=bits, consensus=config,
                                     validator_keys=keys, auto_attest=tuple(k.owner for k in keys))
            # No await since the commit: nothing has read the old keys or candidates in between.
            self.chains.forget(chain_id)
            for key in keys:
                signer.adopt(chain_id, key)
            await self.chains.runtime(chain_id)  # owners known at once, for /validators
        return config

    async def reset(
        self, chain_id: int, params: ChainParams, *, initial_bits: int, consensus: ConsensusConfig | None,
        keep_rules: bool = False,
    ) -> None:
        """A plain reset (same mode): the chain starts over atomically, and its memory here with it.
        ``keep_rules``: as ``Node.replace_chain``."""
        async with self.chains.lock(chain_id):
            await self.chains.node.replace_chain(
                chain_id, params, initial_bits=initial_bits, consensus=consensus, keep_rules=keep_rules
            )
            self.chains.forget(chain_id)
