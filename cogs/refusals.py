"""What a member reads when the engine refuses: the engine's facts, in the bot's words.

An engine error (``chain/errors.py``) carries a stable ``code`` and the values it is about;
its ``str`` is a plain sentence for the command line and the logs, naming no command.  The
table here gives the codes whose answer needs more than that sentence their member-facing
words: the slash command that fixes it, what an admin can do.  An error is worded by the
nearest class up its hierarchy that has an entry (a subclass without one reads like its
family), and one with none at all by the engine's sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from chain.errors import (
    ChainBeforeStakingError,
    ChainError,
    ChainOfflineError,
    ChaosModeOffError,
    FaucetEmptyError,
    LessonAlreadyCompletedError,
    LessonUnavailableError,
    MiningBaseDuringGameError,
    NoFaucetError,
    NoValidatorError,
)

E = TypeVar("E", bound=ChainError)

# code -> the member-facing words of an error with that code.
WORDS: dict[str, Callable[[Any], str]] = {}

# The slashable actions of ChaosModeOffError.action, as a member asks for them.
CHAOS_ACTIONS = {"double_vote": "`double_vote`", "equivocate": "`/stake equivocate`"}


def words_for(error_class: type[E]) -> Callable[[Callable[[E], str]], Callable[[E], str]]:
    """Register the decorated function as the words for ``error_class``'s code."""

    def register(words: Callable[[E], str]) -> Callable[[E], str]:
        # Raised, not asserted: python -O would drop an assert and let a second entry win silently.
        if error_class.code in WORDS:
            raise ValueError(f"{error_class.__name__} is worded twice")
        WORDS[error_class.code] = words
        return words

    return register


def refusal(error: ChainError) -> str:
    """The member-facing words for an engine error."""
    for cls in type(error).__mro__:
        if issubclass(cls, ChainError):
            words = WORDS.get(cls.code)
            if words is not None:
                return words(error)
    return str(error)


@words_for(NoValidatorError)
def _no_validator(error: NoValidatorError) -> str:
    then = ", then turn auto-attest on" if error.action == "auto_attest" else ""
    return f"{error}; `/stake deposit` makes one{then}"


@words_for(ChainBeforeStakingError)
def _chain_before_staking(error: ChainBeforeStakingError) -> str:
    return (
        "This server's chain was created before proof of stake existed, so it cannot stake. "
        "An admin can start a new chain with `/playground reset`."
    )


@words_for(ChaosModeOffError)
def _chaos_mode_off(error: ChaosModeOffError) -> str:
    action = CHAOS_ACTIONS.get(error.action, error.action)
    return (
        f"{action} only works in chaos mode, which is off on this server: your signer refuses to sign "
        "anything slashable (EIP-3076 slashing protection). To demonstrate slashing, an admin can turn "
        "chaos mode on with `/playground chaos`."
    )


@words_for(ChainOfflineError)
def _chain_offline(error: ChainOfflineError) -> str:
    return (
        f"This server's chain could not be loaded ({error.reason}). An admin can start over with "
        "`/playground reset` (the old chain's blocks and balances are lost); other servers are not affected."
    )


@words_for(NoFaucetError)
def _no_faucet(error: NoFaucetError) -> str:
    return (
        f"{error}. An admin's `/playground reset` starts a new chain with a faucet (the old chain's blocks "
        "and balances are lost)."
    )


@words_for(FaucetEmptyError)
def _faucet_empty(error: FaucetEmptyError) -> str:
    return (
        f"the faucet has {error.left} points left, fewer than the {error.amount} a claim gives. "
        "Earn points by mining or staking, or ask a member to `/wallet pay` you; "
        "an admin's `/playground reset` refills it with a new chain."
    )


@words_for(LessonAlreadyCompletedError)
def _lesson_already_completed(error: LessonAlreadyCompletedError) -> str:
    return (f"You already completed the `{error.lesson_id}` lesson <t:{error.completed_at}:R>; its reward is paid "
            "once; `/learn list` shows what is left. Nothing was changed.")


@words_for(LessonUnavailableError)
def _lesson_unavailable(error: LessonUnavailableError) -> str:
    return (f"The `{error.lesson_id}` lesson is not available yet: {error.reason}. `/learn list` shows the lessons "
            "you can do now. Nothing was changed.")


@words_for(MiningBaseDuringGameError)
def _mining_base_during_game(error: MiningBaseDuringGameError) -> str:
    return (
        f"A {error.kind.replace('_', ' ')} game is running: it decides where its players mine. "
        "`/mine start` without `on_block` mines where the game sends you. Nothing was changed."
    )
