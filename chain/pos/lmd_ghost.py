"""LMD-GHOST fork choice over a block tree, and the rule that no reorg crosses finality.

Follows consensus-specs phase0 ``fork-choice.md`` (the current text, with ``get_weight``,
``get_checkpoint_block`` and ``equivocating_indices``), function by function, on a pure value:
every handler returns a new ``Store`` and leaves the one it was given untouched (the spec's
"invalid calls to handlers must not modify store" comes for free).

What the store holds (phase0 ``Store``, reduced to what the fork choice reads):

- ``blocks``: every block by root, as a ``BlockNode`` (parent, slot, and the justified and
  finalized checkpoints of its post-state: the two fields of ``block_states`` the filter reads);
- ``justified_checkpoint`` / ``finalized_checkpoint``, which only move forward;
- ``justified_balances``: the fork-choice weight of each validator index in the justified
  checkpoint's state (``checkpoint_states[justified_checkpoint]``): its effective balance if
  active and not slashed, else 0 (``chain.pos.forkchoice.get_fork_choice_weights`` computes it);
- ``latest_messages``: each validator's latest (target epoch, head root), and
  ``equivocating_indices``, whose messages never count (``on_attester_slashing``);
- ``current_slot``: the spec's ``time``, counted in slots (the caller owns the clock).

Why a module of its own rather than ``forkchoice.py``: that store chooses among the blocks
proposed for ONE slot on top of a linear chain and the slot driver depends on its behaviour; this
one is a different value (a whole tree with checkpoints) that the node will switch to when the
tree is wired in.  Both share phase0's latest-message rule.

Simplifications, all deliberate:

- no proposer boost (``proposer_boost_root`` stays empty, so ``get_weight`` is the attestation
  score alone, exactly what the spec returns when no boost is set);
- no unrealized ("pulled-up") justification: a leaf's voting source is the justified checkpoint
  of its own post-state (``BlockNode.justified_checkpoint``), as ``get_voting_source`` returns for
  a block of the current epoch; the rest of the viability rule of ``filter_block_tree`` is kept
  (justified: same epoch as the store's, or at most two epochs old; finalized: the leaf's
  checkpoint block at the finalized epoch is the finalized root);
- the anchor (``get_forkchoice_store``'s trusted block) is the oldest block known:
  ``get_ancestor`` below it answers the anchor, since the store cannot see further back;
- handlers trust what the caller already checked (signatures, the state transition, the
  slashing evidence); they check everything the fork choice itself asserts.

No reorg across finality: ``on_block`` refuses a block that does not descend from the finalized
checkpoint, ``get_head`` never leaves its subtree, and ``check_head_change`` refuses with
``HeadOffFinalizedCheckpointError`` any head a caller would switch to outside it.  Blocks that arrived
before finality moved past their fork stay in the store; ``get_refused_branches`` names those that
votes would have chosen were it not for finality, so a front end can announce the refusal.

Costs: ``get_head`` is about linear in the blocks and votes (weights of all blocks in one pass,
children first); the handlers copy the block mapping, linear in the blocks held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from chain.errors import (
    BlockSlotOrderError,
    EncodingError,
    ForkChoiceError,
    ForkChoiceTimingError,
    ForkChoiceUnknownParentError,
    HeadOffFinalizedCheckpointError,
    InconsistentVoteError,
    JustifiedBalancesError,
    NotFinalizedDescendantError,
    UnknownForkChoiceBlockError,
)
from chain.hashing import HASH_SIZE_BYTES, ZERO_HASH, hash_to_display
from chain.pos.attestation import (
    GENESIS_EPOCH,
    AttestationData,
    Checkpoint,
    check_uint64,
    compute_epoch_at_slot,
    compute_start_slot_at_epoch,
)


def _short(root: bytes) -> str:
    return hash_to_display(root)[:16] + "…"


def _check_root(name: str, root: bytes) -> None:
    if not isinstance(root, bytes) or len(root) != HASH_SIZE_BYTES:
        raise EncodingError(f"{name} must be {HASH_SIZE_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class LatestMessage:
    """phase0 ``LatestMessage``: the target epoch of a validator's newest vote and the head it named."""

    epoch: int
    root: bytes


@dataclass(frozen=True, slots=True)
class BlockNode:
    """What the fork choice keeps of a block: its place in the tree and its post-state's checkpoints."""

    root: bytes
    parent_root: bytes
    slot: int
    justified_checkpoint: Checkpoint
    finalized_checkpoint: Checkpoint

    def __post_init__(self) -> None:
        _check_root("block root", self.root)
        _check_root("parent root", self.parent_root)
        check_uint64("block slot", self.slot)
        if not isinstance(self.justified_checkpoint, Checkpoint) or not isinstance(
            self.finalized_checkpoint, Checkpoint
        ):
            raise EncodingError("a block's justified and finalized checkpoints must be Checkpoints")
        if self.root == self.parent_root:
            raise BlockSlotOrderError(f"block {_short(self.root)} names itself as its parent")


@dataclass(frozen=True, slots=True)
class Store:
    """phase0 ``Store`` as an immutable value; build it with ``get_forkchoice_store``."""

    current_slot: int
    slots_per_epoch: int
    anchor_root: bytes
    justified_checkpoint: Checkpoint
    finalized_checkpoint: Checkpoint
    justified_balances: tuple[int, ...]
    blocks: Mapping[bytes, BlockNode]
    latest_messages: Mapping[int, LatestMessage]
    equivocating_indices: frozenset[int]
    # parent root -> child roots: an index over ``blocks`` (phase0 scans every block for children).
    children: Mapping[bytes, tuple[bytes, ...]]


@dataclass(frozen=True, slots=True)
class RefusedBranch:
    """A branch off the finalized chain that the votes prefer, refused because it reverts finality."""

    fork_point: bytes  # the last block it shares with the finalized chain
    root: bytes  # its first block
    tip: bytes  # where LMD-GHOST would lead inside it
    weight: int  # get_weight(root)
    canonical_weight: int  # the weight of the finalized chain's child at the same fork point (0 if none)


@dataclass(frozen=True, slots=True)
class HeadChange:
    """From one head to the next: which blocks are disconnected, and which heavier branches were refused."""

    previous_head: bytes
    head: bytes
    common_ancestor: bytes
    orphaned: tuple[bytes, ...]  # the previous head's blocks after the common ancestor, newest first
    refused: tuple[RefusedBranch, ...]

    @property
    def depth(self) -> int:
        """How many blocks the change disconnects: 0 when the new head extends the previous one."""
        return len(self.orphaned)


def _check_balances(balances: Sequence[int]) -> tuple[int, ...]:
    if isinstance(balances, (bytes, str)) or not isinstance(balances, Sequence):
        raise JustifiedBalancesError("justified balances must be a sequence of whole numbers, one per validator")
    for index, balance in enumerate(balances):
        if isinstance(balance, bool) or not isinstance(balance, int) or balance < 0:
            raise JustifiedBalancesError(
                f"validator {index}'s justified balance {balance!r} is not a non-negative whole number"
            )
    return tuple(balances)


def _block(store: Store, root: bytes, what: str = "block") -> BlockNode:
    node = store.blocks.get(root)
    if node is None:
        raise UnknownForkChoiceBlockError(f"the fork choice store holds no {what} {_short(root)}", root)
    return node


def get_forkchoice_store(
    anchor_root: bytes,
    anchor_slot: int,
    justified_balances: Sequence[int],
    *,
    slots_per_epoch: int,
    anchor_parent_root: bytes = ZERO_HASH,
    current_slot: int | None = None,
) -> Store:
    """phase0 ``get_forkchoice_store``: the anchor is trusted, justified and finalized at its epoch."""
    if isinstance(slots_per_epoch, bool) or not isinstance(slots_per_epoch, int) or slots_per_epoch < 1:
        raise EncodingError(f"an epoch has at least one slot, got {slots_per_epoch!r}")
    anchor_epoch = compute_epoch_at_slot(anchor_slot, slots_per_epoch)
    _check_root("anchor root", anchor_root)
    checkpoint = Checkpoint(anchor_epoch, anchor_root)
    anchor = BlockNode(anchor_root, anchor_parent_root, anchor_slot, checkpoint, checkpoint)
    now = anchor_slot if current_slot is None else current_slot
    check_uint64("current slot", now)
    if now < anchor_slot:
        raise ForkChoiceTimingError(f"the clock (slot {now}) is before the anchor's slot {anchor_slot}")
    return Store(
        current_slot=now,
        slots_per_epoch=slots_per_epoch,
        anchor_root=anchor_root,
        justified_checkpoint=checkpoint,
        finalized_checkpoint=checkpoint,
        justified_balances=_check_balances(justified_balances),
        blocks=MappingProxyType({anchor_root: anchor}),
        latest_messages=MappingProxyType({}),
        equivocating_indices=frozenset(),
        children=MappingProxyType({}),
    )


def get_current_store_epoch(store: Store) -> int:
    return compute_epoch_at_slot(store.current_slot, store.slots_per_epoch)


def get_ancestor(store: Store, root: bytes, slot: int) -> bytes:
    """phase0 ``get_ancestor``: the root of the latest block at or before ``slot`` on ``root``'s chain.

    Walks parents in a loop (the spec recurses; a long chain would exhaust Python's stack).  Below
    the anchor the store knows nothing, so the anchor answers for any earlier slot.
    """
    check_uint64("slot", slot)
    node = _block(store, root)
    while node.slot > slot and node.root != store.anchor_root:
        node = store.blocks[node.parent_root]
    return node.root


def get_checkpoint_block(store: Store, root: bytes, epoch: int) -> bytes:
    """phase0 ``get_checkpoint_block``: the block ``root``'s chain has at the start of ``epoch``."""
    return get_ancestor(store, root, compute_start_slot_at_epoch(epoch, store.slots_per_epoch))


def _counted_messages(store: Store) -> Iterable[tuple[int, LatestMessage]]:
    """Latest messages that carry weight: not from an equivocator, and with stake at the justified state."""
    for index, message in store.latest_messages.items():
        if index in store.equivocating_indices or index >= len(store.justified_balances):
            continue
        if store.justified_balances[index] > 0:
            yield index, message


def get_weight(store: Store, root: bytes) -> int:
    """phase0 ``get_weight`` without proposer boost: the stake whose latest vote descends from ``root``."""
    slot = _block(store, root).slot
    return sum(
        store.justified_balances[index]
        for index, message in _counted_messages(store)
        if get_ancestor(store, message.root, slot) == root
    )


def get_weights(store: Store) -> Mapping[bytes, int]:
    """``get_weight`` of every block at once: each vote's stake, summed up the tree children first.

    Equal to ``get_weight(store, root)`` for every root (a test checks it), in one pass over the
    blocks and the votes instead of one walk per block and per vote.
    """
    weights = dict.fromkeys(store.blocks, 0)
    for index, message in _counted_messages(store):
        weights[message.root] += store.justified_balances[index]
    # A child's slot is always after its parent's, so latest slot first means children before parents.
    for node in sorted(store.blocks.values(), key=lambda n: n.slot, reverse=True):
        if node.root != store.anchor_root:
            weights[node.parent_root] += weights[node.root]
    return MappingProxyType(weights)


def get_voting_source(store: Store, root: bytes) -> Checkpoint:
    """phase0 ``get_voting_source`` for a block of the current epoch (no pull-up: see the module note)."""
    return _block(store, root).justified_checkpoint


def is_finalized_descendant(store: Store, root: bytes) -> bool:
    """Whether ``root``'s chain holds the finalized checkpoint: its checkpoint block at the finalized
    epoch is the finalized root (``filter_block_tree``'s ``correct_finalized``; at genesis every
    known block qualifies, as the spec's ``GENESIS_EPOCH`` shortcut says)."""
    finalized = store.finalized_checkpoint
    return get_checkpoint_block(store, root, finalized.epoch) == finalized.root


def _is_viable_leaf(store: Store, root: bytes) -> bool:
    """``filter_block_tree``'s test of a leaf: its checkpoints agree with the store's."""
    current_epoch = get_current_store_epoch(store)
    voting_source = get_voting_source(store, root)
    justified = store.justified_checkpoint
    correct_justified = (
        justified.epoch == GENESIS_EPOCH
        or voting_source.epoch == justified.epoch
        or voting_source.epoch + 2 >= current_epoch
    )
    correct_finalized = store.finalized_checkpoint.epoch == GENESIS_EPOCH or is_finalized_descendant(store, root)
    return correct_justified and correct_finalized


def _subtree(store: Store, root: bytes) -> list[bytes]:
    """``root`` and its descendants, parents before children."""
    order = [root]
    position = 0
    while position < len(order):
        order.extend(store.children.get(order[position], ()))
        position += 1
    return order


def filter_block_tree(store: Store, block_root: bytes) -> Mapping[bytes, BlockNode]:
    """phase0 ``filter_block_tree`` from ``block_root``: the blocks of its subtree that lead to a
    viable leaf, or nothing if none does.  Returns the spec's ``blocks`` dictionary instead of
    filling one, and visits children before parents in a loop instead of recursing."""
    _block(store, block_root)
    viable: dict[bytes, BlockNode] = {}
    for root in reversed(_subtree(store, block_root)):
        children = store.children.get(root, ())
        # A leaf is tested against the store's checkpoints; an inner block lives if any child branch does.
        keep = any(child in viable for child in children) if children else _is_viable_leaf(store, root)
        if keep:
            viable[root] = store.blocks[root]
    return MappingProxyType(viable)


def get_filtered_block_tree(store: Store) -> Mapping[bytes, BlockNode]:
    """phase0 ``get_filtered_block_tree``: the viable branches under the justified checkpoint."""
    return filter_block_tree(store, store.justified_checkpoint.root)


def _descend(store: Store, start: bytes, weights: Mapping[bytes, int], allowed: Mapping[bytes, object]) -> bytes:
    head = start
    while True:
        children = [child for child in store.children.get(head, ()) if child in allowed]
        if not children:
            return head
        # Ties go to the lexicographically higher root, as phase0 breaks them.
        head = max(children, key=lambda child: (weights[child], child))


def get_head(store: Store) -> bytes:
    """phase0 ``get_head``: from the justified root, follow the heaviest viable child down to a leaf."""
    return _descend(store, store.justified_checkpoint.root, get_weights(store), get_filtered_block_tree(store))


def check_head_change(store: Store, new_head: bytes) -> None:
    """Refuse a head outside the finalized checkpoint's subtree, however much stake backs it."""
    if not is_finalized_descendant(store, new_head):
        finalized = store.finalized_checkpoint
        raise HeadOffFinalizedCheckpointError(
            f"switching the head to {_short(new_head)} would revert the finalized checkpoint "
            f"(epoch {finalized.epoch}, block {_short(finalized.root)}): finalized blocks are never reverted",
            head=new_head,
            finalized_epoch=finalized.epoch,
            finalized_root=finalized.root,
        )


def get_refused_branches(store: Store) -> tuple[RefusedBranch, ...]:
    """Branches that conflict with the finalized checkpoint yet would win LMD-GHOST at their fork point.

    They fork from the finalized block's ancestors, or from the finalized block itself at a slot
    not after the finalized epoch's start (such a block changes which block the checkpoint names).
    A branch is listed when, at its fork point, it outweighs every finality-consistent child (ties
    by the higher root, as ``get_head``), or carries stake where there is no such child.  Oldest
    fork point first.
    """
    weights = get_weights(store)
    finalized_root = store.finalized_checkpoint.root
    everything: Mapping[bytes, object] = store.blocks
    refused: list[RefusedBranch] = []
    line = [finalized_root]
    while line[-1] != store.anchor_root:
        line.append(store.blocks[line[-1]].parent_root)
    for position in range(len(line) - 1, -1, -1):
        fork_point = line[position]
        children = store.children.get(fork_point, ())
        if fork_point == finalized_root:
            consistent = [child for child in children if is_finalized_descendant(store, child)]
        else:
            consistent = [line[position - 1]]
        best = max(((weights[child], child) for child in consistent), default=None)
        for child in sorted(children):
            if child in consistent:
                continue
            beats = weights[child] > 0 if best is None else (weights[child], child) > best
            if beats:
                refused.append(
                    RefusedBranch(
                        fork_point=fork_point,
                        root=child,
                        tip=_descend(store, child, weights, everything),
                        weight=weights[child],
                        canonical_weight=0 if best is None else best[0],
                    )
                )
    return tuple(refused)


def get_common_ancestor(store: Store, a: bytes, b: bytes) -> bytes:
    """The latest block both chains share (the anchor at worst)."""
    node_a, node_b = _block(store, a), _block(store, b)
    while node_a.root != node_b.root:
        # The anchor's slot is the lowest held, so the later of two different blocks is never the anchor.
        if node_a.slot >= node_b.slot:
            node_a = store.blocks[node_a.parent_root]
        else:
            node_b = store.blocks[node_b.parent_root]
    return node_a.root


def decide_head(store: Store, previous_head: bytes) -> HeadChange:
    """The head now, what switching to it from ``previous_head`` disconnects, and what finality refused."""
    head = get_head(store)
    check_head_change(store, head)
    common = get_common_ancestor(store, previous_head, head)
    orphaned: list[bytes] = []
    node = store.blocks[previous_head]
    while node.root != common:
        orphaned.append(node.root)
        node = store.blocks[node.parent_root]
    return HeadChange(previous_head, head, common, tuple(orphaned), get_refused_branches(store))


# --- handlers -----------------------------------------------------------------


def on_tick(store: Store, slot: int) -> Store:
    """phase0 ``on_tick``, counted in slots: the clock never goes back."""
    check_uint64("slot", slot)
    if slot < store.current_slot:
        raise ForkChoiceTimingError(
            f"the fork choice clock is at slot {store.current_slot}; it cannot go back to {slot}"
        )
    return replace(store, current_slot=slot)


def update_checkpoints(
    store: Store,
    justified_checkpoint: Checkpoint,
    finalized_checkpoint: Checkpoint,
    justified_balances: Sequence[int] | None = None,
) -> Store:
    """phase0 ``update_checkpoints``: a checkpoint of a newer epoch replaces the store's.

    A new justified checkpoint comes with the balances of its state (the spec reads them from
    ``checkpoint_states``).  A new finalized checkpoint must descend from the old one, and the
    justified one from the finalized one: anything else means two conflicting finalized blocks,
    which only a third of the stake being slashable can produce, and is refused.
    """
    justified, finalized, balances = store.justified_checkpoint, store.finalized_checkpoint, store.justified_balances
    if finalized_checkpoint.epoch > finalized.epoch:
        _block(store, finalized_checkpoint.root, "finalized checkpoint block")
        if not is_finalized_descendant(store, finalized_checkpoint.root):
            raise NotFinalizedDescendantError(
                f"the new finalized checkpoint (epoch {finalized_checkpoint.epoch}, block "
                f"{_short(finalized_checkpoint.root)}) conflicts with the finalized checkpoint (epoch "
                f"{finalized.epoch}, block {_short(finalized.root)})"
            )
        finalized = finalized_checkpoint
    if justified_checkpoint.epoch > justified.epoch:
        _block(store, justified_checkpoint.root, "justified checkpoint block")
        if justified_balances is None:
            raise JustifiedBalancesError(
                f"the justified checkpoint moves to epoch {justified_checkpoint.epoch}: "
                "its state's balances are needed to weigh votes"
            )
        justified, balances = justified_checkpoint, _check_balances(justified_balances)
    moved = replace(store, justified_checkpoint=justified, finalized_checkpoint=finalized, justified_balances=balances)
    if not is_finalized_descendant(moved, justified.root):
        raise NotFinalizedDescendantError(
            f"the justified checkpoint (epoch {justified.epoch}, block {_short(justified.root)}) does not "
            f"descend from the finalized checkpoint (epoch {finalized.epoch}, block {_short(finalized.root)})"
        )
    return moved


def on_block(store: Store, block: BlockNode, justified_balances: Sequence[int] | None = None) -> Store:
    """phase0 ``on_block`` for a block whose state transition the caller already ran.

    ``justified_balances`` is needed only when the block's post-state justifies a newer checkpoint.
    A block already held is accepted again without change.
    """
    if not isinstance(block, BlockNode):
        raise EncodingError("on_block takes a BlockNode")
    held = store.blocks.get(block.root)
    if held is not None:
        if held != block:
            raise ForkChoiceError(
                f"block {_short(block.root)} is already held with another parent, slot or checkpoints"
            )
        return store
    parent = store.blocks.get(block.parent_root)
    if parent is None:
        raise ForkChoiceUnknownParentError(
            f"block {_short(block.root)} builds on {_short(block.parent_root)}, "
            "which the fork choice store does not hold"
        )
    if block.slot > store.current_slot:
        raise ForkChoiceTimingError(
            f"block {_short(block.root)} is for slot {block.slot}; the clock is only at slot {store.current_slot}"
        )
    if block.slot <= parent.slot:
        raise BlockSlotOrderError(
            f"block {_short(block.root)} is for slot {block.slot}, not after its parent's slot {parent.slot}"
        )
    block_epoch = compute_epoch_at_slot(block.slot, store.slots_per_epoch)
    for name, checkpoint in (("justified", block.justified_checkpoint), ("finalized", block.finalized_checkpoint)):
        if checkpoint.epoch > block_epoch:
            raise BlockSlotOrderError(
                f"block {_short(block.root)} of epoch {block_epoch} claims a {name} checkpoint "
                f"from epoch {checkpoint.epoch}"
            )
    finalized = store.finalized_checkpoint
    finalized_slot = compute_start_slot_at_epoch(finalized.epoch, store.slots_per_epoch)
    # phase0 checks the slot first only to spare the walk; both refuse a block outside finality's subtree.
    on_finalized_chain = get_checkpoint_block(store, block.parent_root, finalized.epoch) == finalized.root
    if block.slot <= finalized_slot or not on_finalized_chain:
        raise NotFinalizedDescendantError(
            f"block {_short(block.root)} (slot {block.slot}) does not descend from the finalized checkpoint "
            f"(epoch {finalized.epoch}, block {_short(finalized.root)}): finalized blocks are never reverted"
        )
    blocks = dict(store.blocks)
    blocks[block.root] = block
    children = dict(store.children)
    children[block.parent_root] = children.get(block.parent_root, ()) + (block.root,)
    added = replace(store, blocks=MappingProxyType(blocks), children=MappingProxyType(children))
    return update_checkpoints(added, block.justified_checkpoint, block.finalized_checkpoint, justified_balances)


def _check_indices(indices: Iterable[int]) -> tuple[int, ...]:
    checked = tuple(indices)
    for index in checked:
        check_uint64("validator index", index)
    return checked


def validate_on_attestation(store: Store, data: AttestationData, *, from_block: bool = False) -> None:
    """phase0 ``validate_on_attestation`` (and ``validate_target_epoch_against_current_time``)."""
    target = data.target
    if not from_block:
        current_epoch = get_current_store_epoch(store)
        previous_epoch = max(current_epoch - 1, GENESIS_EPOCH)
        if target.epoch not in (current_epoch, previous_epoch):
            raise ForkChoiceTimingError(
                f"a vote for target epoch {target.epoch} counts only in epoch {target.epoch} or the next; "
                f"this is epoch {current_epoch}"
            )
    slot_epoch = compute_epoch_at_slot(data.slot, store.slots_per_epoch)
    if target.epoch != slot_epoch:
        raise InconsistentVoteError(f"a vote at slot {data.slot} (epoch {slot_epoch}) targets epoch {target.epoch}")
    _block(store, target.root, "target block")
    head = _block(store, data.beacon_block_root, "voted head block")
    if head.slot > data.slot:
        raise InconsistentVoteError(
            f"a vote at slot {data.slot} names block {_short(head.root)} of the later slot {head.slot}"
        )
    if get_checkpoint_block(store, head.root, target.epoch) != target.root:
        raise InconsistentVoteError(
            f"a vote's target {_short(target.root)} is not its head {_short(head.root)}'s block "
            f"for epoch {target.epoch}"
        )
    if store.current_slot < data.slot + 1:
        raise ForkChoiceTimingError(
            f"a vote at slot {data.slot} counts from slot {data.slot + 1}; the clock is at slot {store.current_slot}"
        )


def update_latest_messages(store: Store, attesting_indices: Iterable[int], data: AttestationData) -> Store:
    """phase0 ``update_latest_messages``: a vote of a newer target epoch replaces a validator's latest.

    The head it names must be held (``on_attestation`` checks the rest of the vote)."""
    _block(store, data.beacon_block_root, "voted head block")
    messages = dict(store.latest_messages)
    for index in _check_indices(attesting_indices):
        if index in store.equivocating_indices:
            continue
        previous = messages.get(index)
        if previous is None or data.target.epoch > previous.epoch:
            messages[index] = LatestMessage(data.target.epoch, data.beacon_block_root)
    return replace(store, latest_messages=MappingProxyType(messages))


def on_attestation(
    store: Store, attesting_indices: Iterable[int], data: AttestationData, *, from_block: bool = False
) -> Store:
    """phase0 ``on_attestation`` for a vote whose signatures the caller already checked."""
    indices = _check_indices(attesting_indices)
    validate_on_attestation(store, data, from_block=from_block)
    return update_latest_messages(store, indices, data)


def on_attester_slashing(store: Store, equivocating_indices: Iterable[int]) -> Store:
    """phase0 ``on_attester_slashing``, given the indices of checked evidence
    (``chain.pos.attestation.check_attester_slashing``): their votes never weigh again."""
    indices = frozenset(_check_indices(equivocating_indices))
    return replace(store, equivocating_indices=store.equivocating_indices | indices)
