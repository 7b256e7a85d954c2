"""Casper FFG justification and finality, as phase0's ``weigh_justification_and_finalization``.

At the end of each epoch the chain weighs the votes for the checkpoints of the
previous and the current epoch.  A checkpoint is *justified* when validators
holding at least two thirds of the active stake voted for it as their target
(``attesting_balance * 3 >= total_active_balance * 2``, integers only).  A
justified checkpoint is *finalized* when a later checkpoint was justified by
votes whose source it was, with every checkpoint between them justified too.
phase0 looks back four epochs (``justification_bits``: bit 0 is the current
epoch, bit 1 the previous one...) and finalizes in four cases:

1. the 2nd, 3rd and 4th most recent epochs are justified, the 2nd with the 4th as source;
2. the 2nd and 3rd are justified, the 2nd with the 3rd as source;
3. the 1st, 2nd and 3rd are justified, the 1st with the 3rd as source;
4. the 1st and 2nd are justified, the 1st with the 2nd as source.

Finality needs consecutive justified epochs: a gap breaks every case.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chain.errors import FinalityError
from chain.hashing import ZERO_HASH
from chain.pos.attestation import GENESIS_EPOCH, Checkpoint, check_uint64

JUSTIFICATION_BITS_LENGTH = 4


@dataclass(frozen=True, slots=True)
class FinalityState:
    """The FFG part of phase0's ``BeaconState`` during epoch ``current_epoch``, weighed at its end."""

    current_epoch: int
    # justification_bits[0] is current_epoch, [1] the epoch before, and so on.
    justification_bits: tuple[bool, bool, bool, bool]
    previous_justified_checkpoint: Checkpoint
    current_justified_checkpoint: Checkpoint
    finalized_checkpoint: Checkpoint

    def __post_init__(self) -> None:
        check_uint64("current epoch", self.current_epoch)
        if len(self.justification_bits) != JUSTIFICATION_BITS_LENGTH or not all(
            isinstance(bit, bool) for bit in self.justification_bits
        ):
            raise FinalityError(f"justification bits are {JUSTIFICATION_BITS_LENGTH} booleans")
        for name in ("previous_justified_checkpoint", "current_justified_checkpoint", "finalized_checkpoint"):
            checkpoint = getattr(self, name)
            if checkpoint.epoch > self.current_epoch:
                raise FinalityError(
                    f"{name.replace('_', ' ')} is at epoch {checkpoint.epoch}, after the current epoch "
                    f"{self.current_epoch}"
                )


def genesis_finality_state(genesis_root: bytes = ZERO_HASH) -> FinalityState:
    """Epoch 0: nothing justified but genesis, which is final by definition."""
    genesis = Checkpoint(GENESIS_EPOCH, genesis_root)
    return FinalityState(GENESIS_EPOCH, (False, False, False, False), genesis, genesis, genesis)


def is_supermajority(attesting_balance: int, total_active_balance: int) -> bool:
    """At least two thirds of the active stake, compared without division."""
    return attesting_balance * 3 >= total_active_balance * 2


def compute_justification_threshold(total_active_balance: int) -> int:
    """The smallest attesting balance that justifies: what a progress bar counts toward."""
    return (2 * total_active_balance + 2) // 3


def _check_balances(total_active_balance: int, **attesting: int) -> None:
    if isinstance(total_active_balance, bool) or not isinstance(total_active_balance, int) or total_active_balance < 1:
        # phase0 floors the total at EFFECTIVE_BALANCE_INCREMENT so that zero votes never justify.
        raise FinalityError(f"total active balance must be at least 1, got {total_active_balance!r}")
    for name, balance in attesting.items():
        if isinstance(balance, bool) or not isinstance(balance, int) or not 0 <= balance <= total_active_balance:
            raise FinalityError(
                f"{name.replace('_', ' ')} {balance!r} must be between 0 and the total active balance "
                f"{total_active_balance}"
            )


def weigh_justification_and_finalization(
    state: FinalityState,
    total_active_balance: int,
    previous_epoch_target_balance: int,
    current_epoch_target_balance: int,
    previous_epoch_root: bytes,
    current_epoch_root: bytes,
) -> FinalityState:
    """phase0's function of the same name; the roots are ``get_block_root`` of each epoch."""
    _check_balances(
        total_active_balance,
        previous_epoch_target_balance=previous_epoch_target_balance,
        current_epoch_target_balance=current_epoch_target_balance,
    )
    current_epoch = state.current_epoch
    previous_epoch = max(current_epoch - 1, GENESIS_EPOCH)
    # Build both candidate checkpoints first: a bad root must fail before anything is decided.
    previous_checkpoint = Checkpoint(previous_epoch, previous_epoch_root)
    current_checkpoint = Checkpoint(current_epoch, current_epoch_root)
    old_previous_justified = state.previous_justified_checkpoint
    old_current_justified = state.current_justified_checkpoint

    # Process justifications
    previous_justified = state.current_justified_checkpoint
    current_justified = state.current_justified_checkpoint
    bits = [False, *state.justification_bits[: JUSTIFICATION_BITS_LENGTH - 1]]
    if is_supermajority(previous_epoch_target_balance, total_active_balance):
        current_justified = previous_checkpoint
        bits[1] = True
    if is_supermajority(current_epoch_target_balance, total_active_balance):
        current_justified = current_checkpoint
        bits[0] = True

    # Process finalizations
    finalized = state.finalized_checkpoint
    # The 2nd/3rd/4th most recent epochs are justified, the 2nd using the 4th as source
    if all(bits[1:4]) and old_previous_justified.epoch + 3 == current_epoch:
        finalized = old_previous_justified
    # The 2nd/3rd most recent epochs are justified, the 2nd using the 3rd as source
    if all(bits[1:3]) and old_previous_justified.epoch + 2 == current_epoch:
        finalized = old_previous_justified
    # The 1st/2nd/3rd most recent epochs are justified, the 1st using the 3rd as source
    if all(bits[0:3]) and old_current_justified.epoch + 2 == current_epoch:
        finalized = old_current_justified
    # The 1st/2nd most recent epochs are justified, the 1st using the 2nd as source
    if all(bits[0:2]) and old_current_justified.epoch + 1 == current_epoch:
        finalized = old_current_justified

    return replace(
        state,
        justification_bits=(bits[0], bits[1], bits[2], bits[3]),
        previous_justified_checkpoint=previous_justified,
        current_justified_checkpoint=current_justified,
        finalized_checkpoint=finalized,
    )


def process_justification_and_finalization(
    state: FinalityState,
    total_active_balance: int,
    previous_epoch_target_balance: int,
    current_epoch_target_balance: int,
    previous_epoch_root: bytes,
    current_epoch_root: bytes,
) -> FinalityState:
    """End of ``state.current_epoch``: weigh the votes, then move to the next epoch.

    As in phase0, the first two epochs are skipped: there is no previous epoch
    worth voting on yet.  The returned state is at ``current_epoch + 1``, so an
    epoch can be processed only once and none can be skipped.
    """
    _check_balances(
        total_active_balance,
        previous_epoch_target_balance=previous_epoch_target_balance,
        current_epoch_target_balance=current_epoch_target_balance,
    )
    Checkpoint(state.current_epoch, current_epoch_root)
    Checkpoint(max(state.current_epoch - 1, GENESIS_EPOCH), previous_epoch_root)
    check_uint64("next epoch", state.current_epoch + 1)
    weighed = state
    if state.current_epoch > GENESIS_EPOCH + 1:
        weighed = weigh_justification_and_finalization(
            state,
            total_active_balance,
            previous_epoch_target_balance,
            current_epoch_target_balance,
            previous_epoch_root,
            current_epoch_root,
        )
    return replace(weighed, current_epoch=state.current_epoch + 1)
