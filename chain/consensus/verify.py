"""Replay a chain from genesis and check every rule again: the main chain, and every orphaned
(side) block of its tree against its own branch's state.

The orphans are checked during the main replay, a height at a time: when the replay stands at
block h - 1, the orphans at height h are processed on a copy of that state (a branch forking
there) or on the state their orphaned parent left (a branch going on); a branch's state is copied
only where the tree forks (a block with two children or more), and dropped as soon as no orphan
at the next height builds on it.  Memory is one state per branch open at the current height.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from chain.consensus.block import Block
from chain.consensus.genesis import check_genesis_block
from chain.consensus.rule_changes import compute_merge_schedule_commitment, compute_params_commitment
from chain.consensus.state import ChainState
from chain.consensus.transition import process_block
from chain.errors import (
    ChainError,
    OrphanHeightError,
    OrphanOnMainChainError,
    OrphanParentUnknownError,
    OrphanVerificationError,
    VerificationError,
)
from chain.hashing import hash_to_display
from chain.ledger.accounts import Account
from chain.mode import Mode
from chain.params import ChainParams
from chain.pos.beacon import ConsensusConfig


@dataclass(frozen=True, slots=True)
class VerifyReport:
    chain_id: int
    blocks: int
    transfers: int
    signatures: int
    proofs_of_work: int
    retargets: int
    accounts: int
    supply: int
    tip_hash: str
    # Chains with a consensus config only.
    mode: Mode | None = None
    pos_blocks: int = 0
    operations: int = 0
    epochs: int = 0
    validators: int = 0
    staked_units: int = 0
    finalized_epoch: int = 0
    merge_height: int | None = None
    # Blocks off the main chain, each fully checked on its own branch (not counted in ``blocks``).
    orphans: int = 0

    def summary(self) -> str:
        orphans = f"; {self.orphans} orphaned blocks checked on their own branches" if self.orphans else ""
        if self.mode is None:
            return (
                f"verified {self.blocks} blocks: {self.proofs_of_work} proofs of work, "
                f"{self.retargets} retargets, {self.transfers} transfers ({self.signatures} signatures); "
                f"{self.accounts} accounts hold {self.supply} points, exactly what was minted{orphans}; "
                f"tip {self.tip_hash}"
            )
        merge = f", the Merge at block {self.merge_height}" if self.merge_height is not None else ""
        return (
            f"verified {self.blocks} blocks of a {self.mode} chain: {self.proofs_of_work} proofs of work, "
            f"{self.pos_blocks} proof-of-stake blocks (proposers and signatures checked){merge}, "
            f"{self.retargets} retargets, {self.transfers} transfers, {self.operations} operations, "
            f"{self.signatures} signatures, {self.epochs} epoch transitions; finalized epoch "
            f"{self.finalized_epoch}; {self.accounts} accounts hold {self.supply} points and "
            f"{self.validators} validators {self.staked_units} nanopoints, exactly what was minted minus what "
            f"was burned{orphans}; tip {self.tip_hash}"
        )


@dataclass(frozen=True, slots=True)
class OrphanListing:
    """Where a block off the main chain says it belongs: its hash, its parent's and its height."""

    block_hash: bytes
    parent_hash: bytes
    height: int


@dataclass(frozen=True, slots=True)
class Orphans:
    """A tree's blocks off the main chain, for ``verify_chain``.

    ``listings`` are known before the replay (they say which parents the main chain must have);
    ``blocks()`` streams the blocks themselves in the listings' order, which is by ascending
    height (parents before children).
    """

    listings: Sequence[OrphanListing]
    blocks: Callable[[], Iterable[Block]]

    @classmethod
    def of(cls, blocks: Sequence[tuple[int, Block]]) -> Orphans:
        """Orphans held in memory as (height, block), sorted here by height."""
        ordered = sorted(blocks, key=lambda item: item[0])
        listings = [OrphanListing(b.hash(), b.header.prev_hash, h) for h, b in ordered]
        return cls(listings, lambda: (b for _, b in ordered))


NO_ORPHANS = Orphans((), tuple)


def _short(block_hash: bytes) -> str:
    return hash_to_display(block_hash)[:16] + "…"


class _OrphanReplay:
    """The orphans' side of ``verify_chain``: told each main-chain block as the replay passes it,
    it checks the orphans at the next height against the state they build on."""

    def __init__(self, orphans: Orphans, now: int, changes: Iterable[ChainParams],
                 schedules: Iterable[ConsensusConfig]) -> None:
        self._now = now
        self._listings = orphans.listings
        self._blocks: Iterator[Block] = iter(orphans.blocks())
        self._next = 0
        self._height_of: dict[bytes, int] = {}
        previous = 1
        for listing in self._listings:
            display = hash_to_display(listing.block_hash)
            if listing.block_hash in self._height_of:
                raise OrphanVerificationError(listing.height, display, OrphanOnMainChainError("it is listed twice"))
            if listing.height < previous:
                raise OrphanVerificationError(
                    listing.height, display,
                    OrphanOnMainChainError(
                        f"it is listed after orphans at height {previous} (orphans are listed by height, and none "
                        "is at height 0)"
                    ),
                )
            previous = listing.height
            self._height_of[listing.block_hash] = listing.height
        # Parents that only the main chain can hold, and where the replay found them.
        self._main_parents = {o.parent_hash for o in self._listings if o.parent_hash not in self._height_of}
        self._main_height_of: dict[bytes, int] = {}
        # The state after each orphan at the last height processed, for its children at the next one.
        self._states: dict[bytes, ChainState] = {}
        self._states_height = -1
        # Orphans whose parent the main chain had not passed yet: judged when the replay ends.
        self._unresolved: list[OrphanListing] = []
        self._params_by_commitment = {compute_params_commitment(p): p for p in changes}
        self._schedules_by_commitment = {compute_merge_schedule_commitment(c): c for c in schedules}
        self.checked = 0

    def saw_main(self, block_hash: bytes, height: int) -> None:
        """The replay accepted main-chain block ``height``."""
        if block_hash in self._height_of:
            raise OrphanVerificationError(
                self._height_of[block_hash], hash_to_display(block_hash),
                OrphanOnMainChainError(f"it is main-chain block {height}, not an orphan"),
            )
        if block_hash in self._main_parents:
            self._main_height_of[block_hash] = height

    def check_up_to(self, main: ChainState, height: int) -> None:
        """Check every orphan listed at ``height`` or below (``main`` stands at ``height - 1``)."""
        listings = self._listings
        while self._next < len(listings) and listings[self._next].height <= height:
            self._check_height(main, listings[self._next].height)

    def finish(self, main: ChainState) -> None:
        """The replay is over: check the orphans above the tip, and judge the unresolved ones."""
        if self._listings:
            self.check_up_to(main, self._listings[-1].height)
        for listing in self._unresolved:
            parent_height = self._main_height_of.get(listing.parent_hash)
            raise self._misplaced(listing, parent_height, "block")

    def _misplaced(self, listing: OrphanListing, parent_height: int | None, where: str) -> OrphanVerificationError:
        display = hash_to_display(listing.block_hash)
        if parent_height is None:
            return OrphanVerificationError(
                listing.height, display,
                OrphanParentUnknownError(
                    f"its parent {_short(listing.parent_hash)} is neither on the main chain nor orphaned"
                ),
            )
        return OrphanVerificationError(
            listing.height, display,
            OrphanHeightError(
                f"its parent {_short(listing.parent_hash)} is {where} {parent_height}, so it belongs at height "
                f"{parent_height + 1}, not {listing.height}"
            ),
        )

    def _check_height(self, main: ChainState, height: int) -> None:
        group: list[tuple[OrphanListing, Block]] = []
        while self._next < len(self._listings) and self._listings[self._next].height == height:
            listing = self._listings[self._next]
            block = next(self._blocks, None)
            if block is None:
                raise OrphanVerificationError(
                    height, hash_to_display(listing.block_hash), OrphanOnMainChainError("its block is missing")
                )
            if block.hash() != listing.block_hash or block.header.prev_hash != listing.parent_hash:
                raise OrphanVerificationError(
                    height, hash_to_display(block.hash()),
                    OrphanOnMainChainError(
                        f"the block is not its listing's (listed as {_short(listing.block_hash)} "
                        f"on {_short(listing.parent_hash)})"
                    ),
                )
            group.append((listing, block))
            self._next += 1
        # States of orphans one height down are what this height builds on; older ones have no children left.
        parents = self._states if self._states_height == height - 1 else {}
        children = Counter(listing.parent_hash for listing, _ in group)
        states: dict[bytes, ChainState] = {}
        for listing, block in group:
            state = self._branch_state(main, parents, children, listing)
            if state is None:
                continue
            try:
                effects = process_block(
                    state, block, self._now, self._params_by_commitment.get(block.coinbase.message),
                    self._schedules_by_commitment.get(block.coinbase.message),
                )
            except ChainError as exc:
                raise OrphanVerificationError(height, hash_to_display(listing.block_hash), exc) from exc
            state.apply(block, effects)
            states[listing.block_hash] = state
            self.checked += 1
        self._states, self._states_height = states, height

    def _branch_state(
        self, main: ChainState, parents: dict[bytes, ChainState], children: Counter[bytes], listing: OrphanListing
    ) -> ChainState | None:
        """The state ``listing``'s block builds on, its own to change; None to judge it later."""
        parent = listing.parent_hash
        if parent in self._height_of:
            parent_height = self._height_of[parent]
            if parent_height != listing.height - 1:
                raise self._misplaced(listing, parent_height, "orphaned at height")
            if parent not in parents:
                # The parent waits to be judged at the end of the replay (its error is the one raised).
                return None
            children[parent] -= 1
            # The last child takes the parent's state itself; the others a copy (a fork in the tree).
            return parents.pop(parent) if children[parent] == 0 else parents[parent].copy_for_branch()
        if main.height == listing.height - 1 and parent == main.tip_hash:
            return main.copy_for_branch()
        if parent in self._main_height_of:
            raise self._misplaced(listing, self._main_height_of[parent], "block")
        # Not passed yet, or not on the main chain at all: only the end of the replay can tell.
        self._unresolved.append(listing)
        return None


def verify_chain(
    params: ChainParams,
    chain_id: int,
    blocks: Iterable[Block],
    now: int,
    expected_accounts: Mapping[bytes, Account] | None = None,
    param_changes: Iterable[tuple[int, ChainParams]] = (),
    consensus: ConsensusConfig | None = None,
    consensus_changes: Iterable[tuple[int, ConsensusConfig]] = (),
    orphans: Orphans = NO_ORPHANS,
) -> tuple[ChainState, VerifyReport]:
    """Rebuild the state block by block; raise ``VerificationError`` at the first bad one.

    ``now`` bounds block times the way it did when each block arrived: a block
    is never from the future relative to the verifier's clock.  When
    ``expected_accounts`` is given (the stored balances), they must match the
    replayed ledger exactly.  ``param_changes`` lists rule changes by the
    height of the block that committed to them; each must be committed there,
    and no block may commit to an unlisted change.  ``consensus`` is the
    chain's consensus config (the genesis block commits to it): proof-of-stake
    blocks, their proposers and signatures, every operation and every epoch
    transition are replayed, and the supply check counts stake in nanopoints.
    ``orphans`` are the tree's blocks off the main chain: each is fully checked (``process_block``)
    against its own branch's state; a bad one raises ``OrphanVerificationError`` naming it.
    """
    changes = dict(param_changes)
    schedules = dict(consensus_changes)
    side = _OrphanReplay(orphans, now, changes.values(), schedules.values())
    iterator = iter(blocks)
    try:
        genesis = next(iterator)
    except StopIteration:
        raise VerificationError(0, ChainError("the chain has no genesis block")) from None
    try:
        check_genesis_block(genesis, params, chain_id, consensus)
        state = ChainState(params, chain_id, genesis, consensus)
        # A listed change to a longer retarget window reads headers from before it: keep them.
        state.reserve_history(*changes.values())
    except ChainError as exc:
        raise VerificationError(0, exc) from exc
    side.saw_main(state.tip_hash, 0)

    transfers = retargets = pos_blocks = operations = signatures = 0
    merge_height = None
    for block in iterator:
        height = state.height + 1
        side.check_up_to(state, height)
        try:
            effects = process_block(state, block, now, changes.get(height), schedules.get(height))
        except ChainError as exc:
            raise VerificationError(height, exc) from exc
        if height in changes and effects.params_change is None:
            raise VerificationError(height, ChainError("a listed parameter change is not committed in this block"))
        if height in schedules and effects.consensus_change is None:
            raise VerificationError(height, ChainError("a listed Merge schedule is not committed in this block"))
        if block.seal is not None:
            pos_blocks += 1
            if merge_height is None and consensus is not None and consensus.mode is not Mode.POS:
                merge_height = height
        elif block.header.bits != state.tip.bits:
            retargets += 1
        if block.operations is not None:
            operations += sum(
                len(getattr(block.operations, name))
                for name in ("deposits", "voluntary_exits", "withdrawals", "attestations", "attester_slashings",
                             "proposer_slashings")
            )
        state.apply(block, effects)
        side.saw_main(effects.block_hash, height)
        transfers += len(block.transfers)
        signatures += effects.signatures_checked
    side.finish(state)

    ledger = state.ledger
    if state.beacon is not None and state.total_supply_units() != state.issued_supply_units():
        raise VerificationError(
            state.height,
            ChainError(
                f"ledger plus stake add up to {state.total_supply_units()} nanopoints, but minted minus burned "
                f"is {state.issued_supply_units()}"
            ),
        )
    if state.beacon is None and ledger.total_balance() != ledger.minted:
        raise VerificationError(
            state.height,
            ChainError(f"balances add up to {ledger.total_balance()}, but {ledger.minted} were minted"),
        )
    if expected_accounts is not None:
        replayed = dict(ledger.items())
        expected = dict(expected_accounts)
        differing = {k for k in replayed.keys() | expected.keys() if replayed.get(k) != expected.get(k)}
        if differing:
            raise VerificationError(
                state.height,
                ChainError(f"stored balances differ from the replay for {len(differing)} accounts"),
            )
    report = VerifyReport(
        chain_id=chain_id,
        blocks=state.height + 1,
        transfers=transfers,
        signatures=signatures,
        proofs_of_work=state.height - pos_blocks,
        retargets=retargets,
        accounts=len(ledger),
        supply=ledger.minted,
        tip_hash=hash_to_display(state.tip_hash),
        orphans=side.checked,
    )
    beacon = state.beacon
    if beacon is not None and consensus is not None:
        report = replace(
            report,
            supply=ledger.total_balance(),
            mode=consensus.mode,
            pos_blocks=pos_blocks,
            operations=operations,
            epochs=beacon.epoch,
            validators=len(beacon.registry.validators),
            staked_units=beacon.registry.total_balance(),
            finalized_epoch=beacon.finality.finalized_checkpoint.epoch,
            merge_height=merge_height,
        )
    return state, report
