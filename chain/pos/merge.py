"""The Merge on a proof-of-work chain with a schedule: the terminal block, a delayed Merge (no
proposer yet), and ``process_merge``, which starts the proof-of-stake slot timeline (Bellatrix's
terminal-block rule, by height or by total difficulty)."""

from __future__ import annotations

from dataclasses import replace

from chain.errors import (
    OperationsError,
)
from chain.events import (
    MergeDelayed,
    TheMerge,
)
from chain.mode import Mode
from chain.pos.attestation import (
    Checkpoint,
)
from chain.pos.beacon import BeaconState, TerminalBlock, get_checkpoint_root, get_epoch_at_slot
from chain.pos.staking import (
    is_active_validator,
)

# --- the Merge ------------------------------------------------------------------


def has_proposer_after(state: BeaconState, height: int) -> bool:
    """Whether a validator could propose the slot after block ``height`` (not slashed, active then)."""
    epoch = get_epoch_at_slot(state, height + 1)
    return any(is_active_validator(v, epoch) and not v.slashed for v in state.registry.validators)


def is_proposed_height(state: BeaconState | None, height: int) -> bool:
    """Whether block ``height`` of this chain was proposed by a validator (not mined): every block
    after genesis of a chain started in proof of stake, every block after the terminal one of a merged chain."""
    if state is None or height == 0:
        return False
    if state.config.mode is Mode.POS:
        return True
    return state.terminal is not None and height > state.terminal.height


def is_terminal_block(state: BeaconState, height: int) -> bool:
    """Whether the proof-of-work block just counted (``state.total_difficulty`` includes it) is the last.

    Ethereum's rule (EIP-3675: the first block whose total difficulty reaches
    TERMINAL_TOTAL_DIFFICULTY; here also: the block before ``merge_at_height``), with one
    playground guard: the Merge waits until some validator can propose the next slot, so a
    server that scheduled it before anyone staked keeps mining instead of halting for good.
    """
    config = state.config
    if state.terminal is not None or config.mode is Mode.POS:
        return False
    if config.merge_at_height:
        reached = height >= config.merge_at_height - 1
    elif config.merge_at_total_difficulty:
        reached = state.total_difficulty >= config.merge_at_total_difficulty
    else:
        return False
    return reached and has_proposer_after(state, height)


def is_merge_delayed(state: BeaconState, height: int, previous_total_difficulty: int) -> bool:
    """Whether the block just counted is where the scheduled Merge was due, but no validator can
    propose the next slot, so it is not the terminal block and mining goes on (once per schedule:
    the due block itself, or the first block whose total difficulty reaches the terminal one)."""
    config = state.config
    if state.terminal is not None or config.mode is Mode.POS or has_proposer_after(state, height):
        return False
    if config.merge_at_height:
        return height == config.merge_at_height - 1
    if config.merge_at_total_difficulty:
        return previous_total_difficulty < config.merge_at_total_difficulty <= state.total_difficulty
    return False


def process_merge_delay(state: BeaconState, height: int) -> BeaconState:
    """Announce that the Merge waits for a validator (``is_merge_delayed``)."""
    event = MergeDelayed(
        height=height,
        merge_at_height=state.config.merge_at_height,
        merge_at_total_difficulty=state.config.merge_at_total_difficulty,
        total_difficulty=state.total_difficulty,
        pending_validators=sum(1 for v in state.registry.validators if v.activation_epoch > state.epoch),
    )
    return state.with_events(event)


def mark_terminal_block(state: BeaconState, height: int, time: int, root: bytes) -> BeaconState:
    """Fix the post-Merge slot clock on the terminal block: the next slots are proof-of-stake slots."""
    terminal_epoch = get_epoch_at_slot(state, height)
    merge_epoch = terminal_epoch + 1
    terminal = TerminalBlock(height, height, time, root, state.total_difficulty)
    return replace(
        state,
        terminal=terminal,
        merge_epoch=merge_epoch,
        merge_slot=merge_epoch * state.config.checkpoint_interval_blocks,
        anchor=(height, time),
    )


def process_merge(state: BeaconState, first_pos_height: int) -> BeaconState:
    """At the first proof-of-stake block: the terminal block's checkpoint becomes final.

    Proof of work cannot be reorganised past the Merge, so the checkpoint of the
    terminal block's epoch is taken as finalized and justified (a pow chain
    had no votes before; a hybrid chain's own justified checkpoints are older).
    Without this, the finality delay of the whole proof-of-work history would
    start an inactivity leak at once.
    """
    terminal = state.terminal
    if terminal is None:
        raise OperationsError("the Merge needs a terminal proof-of-work block")
    epoch = get_epoch_at_slot(state, terminal.slot)
    checkpoint = Checkpoint(epoch, get_checkpoint_root(state, epoch))
    finality = replace(
        state.finality,
        justification_bits=(False, False, False, False),
        previous_justified_checkpoint=checkpoint,
        current_justified_checkpoint=checkpoint,
        finalized_checkpoint=checkpoint,
    )
    event = TheMerge(
        height=first_pos_height,
        terminal_height=terminal.height,
        terminal_hash=terminal.root,
        total_difficulty=terminal.total_difficulty,
        # Active in the first proof-of-stake epoch: the ones who propose from now on (at the terminal
        # block's epoch they may still be pending, which read "Validators: 0" next to "#0 is active").
        validators=sum(
            1 for v in state.registry.validators
            if is_active_validator(v, state.merge_epoch if state.merge_epoch is not None else state.epoch)
        ),
    )
    return replace(state, finality=finality, merged=True, events=state.events + (event,))
