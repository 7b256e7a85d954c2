"""Option types that Discord's client enforces and the bot enforces again.

Discord's client keeps a member inside an option's min/max, length and choices, but
Discord's API forwards whatever a modified client sends, and discord.py hands it to the
command unchecked (``app_commands.Range`` and ``Literal`` only *publish* their bounds).
Every bounded option of every cog is declared with these types instead:

* ``Range[int, 1, 10]``, ``Range[str, 1, 66]``: publish exactly what
  ``app_commands.Range`` publishes (min/max value, min/max length);
* ``OneOf["on", "off"]``: publishes exactly what ``Literal["on", "off"]`` publishes;
* ``Flag``: a boolean option.

Each re-checks the value's JSON type and bounds in ``transform``, before the command
runs, and refuses with ``OptionRefused`` (a ``TransformerError``), which
``cogs.errors.describe_error`` shows to the member as is.  ``tests/cogs/test_options.py``
checks that every option of every command uses one of them.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, TypeGuard

import discord
from discord import app_commands
from discord.app_commands.transformers import LiteralTransformer, RangeTransformer

# How much of a refused value a refusal quotes.
SHOWN_VALUE_CHARS = 40
# Integers from here on are shown by their size (str() refuses beyond 4,300 digits).
HUGE = 10**60


class OptionRefused(app_commands.TransformerError):
    """An option value the official client could not have sent; the message says what was wrong."""

    def __init__(self, value: Any, transformer: app_commands.Transformer, message: str) -> None:
        # Not TransformerError.__init__: its message ("Failed to convert …") is for developers,
        # and formatting a 5,000-digit integer into it raises.
        app_commands.AppCommandError.__init__(self, message)
        self.value = value
        self.type = transformer.type
        self.transformer = transformer


def option_name(interaction: discord.Interaction, transformer: app_commands.Transformer) -> str:
    """The name of the option ``transformer`` checks in the running command.

    A transformer does not know its parameter; discord.py keeps each parameter's
    transformer in ``Command._params`` (each annotation is its own instance).
    """
    params = getattr(interaction.command, "_params", None) or {}
    for param in params.values():
        if getattr(param, "_annotation", None) is transformer:
            return param.display_name
    return "option"


def shown_value(value: Any, *, typed: bool = False) -> str:
    """A refused value as a refusal quotes it: short, and unable to break out of its backticks.

    ``typed``: the value's type was wrong, so show it as JSON would (``"5"`` is text, ``5`` a number).
    """
    if is_integer(value) and abs(value) >= HUGE:
        return shown_number(value)
    try:
        text = json.dumps(value) if typed else value if isinstance(value, str) else repr(value)
    except (TypeError, ValueError):
        text = type(value).__name__
    text = text.replace("`", "'").replace("\n", " ")
    if len(text) > SHOWN_VALUE_CHARS:
        text = text[:SHOWN_VALUE_CHARS] + "…"
    return f"`{text}`"


def is_integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_integer(value) or isinstance(value, float)) and math.isfinite(value)


class CheckedRange(RangeTransformer):
    """``app_commands.Range`` that also checks the value it receives."""

    async def transform(self, interaction: discord.Interaction, value: Any, /) -> Any:
        name = option_name(interaction, self)
        low, high = self.min_value, self.max_value
        if self.type is discord.AppCommandOptionType.string:
            if not isinstance(value, str):
                raise OptionRefused(value, self, f"`{name}` must be text; you sent {shown_value(value)}. "
                                    "Nothing was changed.")
            if (low is not None and len(value) < low) or (high is not None and len(value) > high):
                raise OptionRefused(
                    value, self,
                    f"`{name}` must be {describe_bounds(low, high)} characters long; you sent {len(value):,}. "
                    "Nothing was changed.",
                )
            return value
        whole = self.type is discord.AppCommandOptionType.integer
        if not (is_integer(value) if whole else is_number(value)):
            kind = "a whole number" if whole else "a number"
            raise OptionRefused(value, self, f"`{name}` must be {kind}; you sent {shown_value(value, typed=True)}. "
                                "Nothing was changed.")
        if (low is not None and value < low) or (high is not None and value > high):
            raise OptionRefused(
                value, self,
                f"`{name}` must be {describe_bounds(low, high)}; you sent {shown_number(value)}. Nothing was changed.",
            )
        return value


def shown_number(value: int | float) -> str:
    # Beyond Python's 4,300-digit str() limit a value can only have come from a modified client.
    if is_integer(value) and abs(value) >= HUGE:
        return f"a {value.bit_length():,}-bit number"
    return f"{value:,}"


def describe_bounds(low: int | float | None, high: int | float | None) -> str:
    if low is not None and high is not None:
        return f"between {low:,} and {high:,}"
    if low is not None:
        return f"at least {low:,}"
    return f"at most {high:,}"


class CheckedChoice(LiteralTransformer):
    """``Literal[...]`` as an option: publishes the same choices and accepts only them."""

    async def transform(self, interaction: discord.Interaction, value: Any, /) -> Any:
        allowed = [choice.value for choice in self.choices]
        # ``in`` alone would take True for 1; a choice must have the choice's own type.
        if not any(type(value) is type(a) and value == a for a in allowed):
            name = option_name(interaction, self)
            raise OptionRefused(
                value, self,
                f"`{name}` must be one of {', '.join(map(str, allowed))}; you sent {shown_value(value)}. "
                "Nothing was changed.",
            )
        return value


def named_choices(names: dict[str, str]) -> CheckedChoice:
    """Choices shown by a name other than their value (value -> name), checked like ``OneOf``:
    ``kind: app_commands.Transform[str, named_choices({"difficulty": "Difficulty and retargets"})]``."""
    checked = CheckedChoice(tuple(names))
    # LiteralTransformer names each choice after its value; only the shown names differ here.
    checked._choices = [app_commands.Choice(name=name, value=value) for value, name in names.items()]
    return checked


class CheckedFlag(app_commands.Transformer):
    """A boolean option that is a boolean."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        return discord.AppCommandOptionType.boolean

    async def transform(self, interaction: discord.Interaction, value: Any, /) -> bool:
        if not isinstance(value, bool):
            name = option_name(interaction, self)
            raise OptionRefused(
                value,
                self,
                f"`{name}` must be true or false; you sent {shown_value(value, typed=True)}. Nothing was changed.",
            )
        return value


CHECKED_TRANSFORMERS = (CheckedRange, CheckedChoice, CheckedFlag)

if TYPE_CHECKING:
    from typing import Annotated as Range
    from typing import Literal as OneOf

    Flag = bool
else:

    class Range:
        """``Range[int, low, high]`` / ``Range[str, min_length, max_length]``, checked on arrival."""

        def __class_getitem__(cls, args: tuple[Any, ...]) -> CheckedRange:
            # discord.py's own Range works out the option type and bounds; keep exactly its definition.
            published = app_commands.Range[args]
            return CheckedRange(published.type, min=published.min_value, max=published.max_value)

    class OneOf:
        """``OneOf["on", "off"]``: the choices of ``Literal["on", "off"]``, checked on arrival."""

        def __class_getitem__(cls, values: Any) -> CheckedChoice:
            return CheckedChoice(values if isinstance(values, tuple) else (values,))

    # A fresh instance per use would not matter: a flag has no bounds to tell options apart by.
    Flag = CheckedFlag
