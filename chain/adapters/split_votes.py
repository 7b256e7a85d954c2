"""A hybrid chain's votes during a network split (issue 11, games item 6): each side's validators vote
on their own side's blocks only.

On a hybrid chain (Casper FFG over proof of work) validators vote for each new block and miners put
the votes in the next block; a checkpoint is justified by two thirds of the active stake and finalized
by the next one's justification. During a split the validators are split as the miners are: a
validator's side is its owner's (the split's role). The bot signs for the validators it custodies
whose owners turned auto-attest on (the same validators the slot driver votes for on the main chain:
members who did not ask the bot to vote keep voting themselves, and during the split their votes go
to the main tip, which does not move). When a side's block is found, that side's voters sign a vote
whose data is computed on the side's branch state with the new block as the head
(``compute_attestation_data``): it goes into the side's next block, checked there on the branch's state
(``Node.branch_template(operations=...)``). Each vote goes through ``ValidatorSigner.sign_attestation``,
so the EIP-3076 record refuses anything slashable: a validator votes once per epoch, and after the
heal it does not vote again for an epoch it voted for on a branch that lost.

On a proof-of-stake chain (``SplitVoting(..., heads=, slots=)``) blocks are proposed, not mined: the
slot driver hands each slot to the running split (``SlotDriver.splits``), and ``propose`` has the
slot's proposer, drawn on a side's branch state, sign that side's block when its owner is on that
side (a validator proposes on its own side only, so its slashing record never sees two blocks for
one slot). The votes work as on a hybrid chain, computed at the block's slot.

Pure of Discord: the runner (``chain.adapters.network_split``) calls it under its lock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from chain.adapters.beacon_runtime import BeaconChains
from chain.adapters.head_choice import HeadChoice
from chain.adapters.slot_driver import SlotDriver
from chain.consensus.block import Block
from chain.consensus.duties import compute_attestation_data
from chain.consensus.state import ChainState
from chain.consensus.templates import build_unsigned_pos_block, seal_pos_block
from chain.errors import ChainError
from chain.games.network_split import SIDES, compute_stake_shares
from chain.ledger.transaction import Transfer
from chain.pos.attestation import SignedAttestation
from chain.pos.operations import Operations
from chain.pos.staking import is_active_validator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SideFinality:
    """A side's votes and what they achieved on its branch: ``stake``/``total`` is its voters' share
    of the active stake at the split; the epochs are its branch's justified and finalized checkpoints."""

    stake: int
    total: int
    justified_epoch: int
    finalized_epoch: int


class SplitVoting:
    """The voters of each side of a split on a hybrid chain, and their votes (see the module)."""

    def __init__(
        self, chains: BeaconChains, chain_id: int, *, heads: HeadChoice | None = None, slots: SlotDriver | None = None
    ) -> None:
        self._chains = chains
        self.chain_id = chain_id
        # Proof of stake: the fork choice the heal feeds, and the slot driver that hands the split its slots.
        self.heads = heads
        self.slots = slots
        # owner -> (validator key, side), fixed when the split starts.
        self.voters: dict[str, tuple[bytes, str]] = {}
        self.shares: dict[str, tuple[int, int]] = {side: (0, 0) for side in SIDES}
        # validator key -> the last target epoch it voted for during the split (once an epoch).
        self._voted: dict[bytes, int] = {}

    async def resolve(self, side_of: Callable[[str], Awaitable[str]], state: ChainState) -> None:
        """Find each side's voters (owners with auto-attest on and a validator key) and their stake."""
        runtime = await self._chains.runtime(self.chain_id)
        for owner in sorted(runtime.auto_attest):
            pubkey = await self._chains.signer.find_validator_key(self.chain_id, owner)
            if pubkey is not None:
                self.voters[owner] = (pubkey, await side_of(owner))
        beacon = state.beacon
        if beacon is None:
            return
        by_key = {pubkey: side for pubkey, side in self.voters.values()}
        active = [
            (v.pubkey, v.effective_balance, v.slashed)
            for v in beacon.registry.validators if is_active_validator(v, beacon.epoch)
        ]
        self.shares = compute_stake_shares(active, by_key.get)

    def finality(self, side: str, state: ChainState) -> SideFinality:
        """The side's share of the stake and its branch's checkpoints (``state``: the branch's tip)."""
        stake, total = self.shares[side]
        beacon = state.beacon
        if beacon is None:
            return SideFinality(stake, total, 0, 0)
        finality = beacon.finality
        return SideFinality(
            stake, total, finality.current_justified_checkpoint.epoch, finality.finalized_checkpoint.epoch
        )

    @property
    def proof_of_stake(self) -> bool:
        """Whether the split's blocks are proposed slot by slot (``propose``), not mined."""
        return self.slots is not None

    @property
    def chains(self) -> BeaconChains:
        return self._chains

    async def propose(
        self, side: str, state: ChainState, slot: int, transfers: tuple[Transfer, ...],
        votes: tuple[SignedAttestation, ...], side_of: Callable[[str], Awaitable[str]],
    ) -> Block | None:
        """Proof of stake: ``slot``'s proposer drawn on ``state`` (``side``'s branch tip) signs the
        side's block, if its key is the bot's and its owner is on ``side``; None otherwise (the slot
        stays empty on this side, as it would for an offline proposer)."""
        template, header, proposer_index = build_unsigned_pos_block(
            state, slot, transfers, Operations(attestations=votes)
        )
        owner = None
        for stored in await self._chains.store.validator_keys.all(self.chain_id):
            if stored.pubkey == header.proposer:
                owner = stored.owner
        if owner is None or await side_of(owner) != side:
            return None
        try:
            signed = await self._chains.signer.sign_proposal(self.chain_id, owner, header)
        except ChainError as refusal:  # the protection record says no: this side's slot stays empty
            log.info("chain %d: slot %d on side %s: no block from %s: %s", self.chain_id, slot, side, owner, refusal)
            return None
        return seal_pos_block(template, slot, proposer_index, signed.signature)

    async def vote(self, side: str, state: ChainState, slot: int | None = None) -> list[SignedAttestation]:
        """The votes of ``side``'s voters for ``state``'s tip (a side's new block), computed on its
        branch at ``slot`` (the block's slot on proof of stake; its height on a hybrid chain). A
        validator not active, slashed, already voting this epoch, or whose record refuses the vote,
        is skipped (logged)."""
        beacon = state.beacon
        if beacon is None or not self.voters:
            return []
        try:
            data = compute_attestation_data(state, state.height if slot is None else slot, state.tip_hash)
        except ChainError as refusal:
            log.warning("chain %d: side %s's validators cannot vote: %s", self.chain_id, side, refusal)
            return []
        signed: list[SignedAttestation] = []
        for owner, (pubkey, voter_side) in sorted(self.voters.items()):
            if voter_side != side or self._voted.get(pubkey, -1) >= data.target.epoch:
                continue
            index = beacon.registry.index_of(pubkey)
            validator = None if index is None else beacon.registry.validators[index]
            if validator is None or validator.slashed or not is_active_validator(validator, data.target.epoch):
                continue
            self._voted[pubkey] = data.target.epoch
            try:
                signed.append(await self._chains.signer.sign_attestation(self.chain_id, owner, data))
            except ChainError as refusal:  # the protection record says no: the vote is not signed
                log.info("chain %d: %s's vote on side %s not signed: %s", self.chain_id, owner, side, refusal)
        return signed


def pending_after(
    votes: Iterable[SignedAttestation], included: Iterable[SignedAttestation], epoch: int
) -> list[SignedAttestation]:
    """A side's votes still waiting after a block that carried ``included``, at ``epoch``: a vote whose
    target is older than the previous epoch can no longer go into a block (phase0's window), so it goes."""
    carried = set(included)
    return [vote for vote in votes if vote not in carried and vote.data.target.epoch + 1 >= epoch]
