"""cogs/options.py: every bounded option publishes what Discord shows and checks what arrives."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import SimpleNamespace
from typing import Literal

import discord
import pytest
from discord import app_commands
from discord.app_commands.transformers import annotation_to_parameter
from discord.ext import commands

import cogs
from cogs.errors import describe_error
from cogs.options import CHECKED_TRANSFORMERS, Flag, OneOf, OptionRefused, Range

# Option types whose value is a bare JSON value: a modified client can put anything there.
RAW_VALUE_TYPES = {
    discord.AppCommandOptionType.string,
    discord.AppCommandOptionType.integer,
    discord.AppCommandOptionType.number,
    discord.AppCommandOptionType.boolean,
}


def every_command() -> list[tuple[str, app_commands.Command]]:
    """Every slash command declared in any cog module, found by walking the package: (its name, it)."""
    found = []
    for info in pkgutil.iter_modules(cogs.__path__):
        module = importlib.import_module(f"cogs.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, commands.Cog) and cls.__module__ == module.__name__:
                group = getattr(cls, "__cog_group_name__", None)
                for item in cls.__cog_app_commands__:
                    for command in [item] if isinstance(item, app_commands.Command) else item.walk_commands():
                        found.append((" ".join(filter(None, [group, command.qualified_name])), command))
    return found


def test_every_option_of_every_command_is_checked_on_arrival():
    options = [(name, p) for name, c in every_command() for p in c._params.values()]
    assert len(options) >= 25  # the walk found the cogs' commands
    unchecked = [
        f"/{name} {p.display_name}"
        for name, p in options
        if p.type in RAW_VALUE_TYPES and not isinstance(p._annotation, CHECKED_TRANSFORMERS)
    ]
    assert unchecked == [], "declare these with cogs.options (Range, OneOf, Flag)"


def parameter_dict(annotation, default=inspect.Parameter.empty) -> dict:
    parameter = inspect.Parameter("value", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
    result = annotation_to_parameter(annotation, parameter)
    result.description = "…"
    return result.to_dict()


@pytest.mark.parametrize(
    ("checked", "plain", "default"),
    [
        (Range[int, 0, 3600], app_commands.Range[int, 0, 3600], inspect.Parameter.empty),
        (Range[int, 1, 2**53 - 1] | None, app_commands.Range[int, 1, 2**53 - 1] | None, None),
        (Range[str, 64, 66], app_commands.Range[str, 64, 66], inspect.Parameter.empty),
        (Range[int, 1, 10_000], app_commands.Range[int, 1, 10_000], 1),
        (OneOf["pow", "pos", "hybrid"] | None, Literal["pow", "pos", "hybrid"] | None, None),
        (OneOf["balance", "blocks"], Literal["balance", "blocks"], "balance"),
        (Flag, bool, False),
    ],
)
def test_checked_options_publish_exactly_what_discord_py_publishes(checked, plain, default):
    assert parameter_dict(checked, default) == parameter_dict(plain, default)


def interaction_for(transformer, name: str = "amount"):
    """Just enough of an interaction for a transformer to find its option's name."""
    param = SimpleNamespace(_annotation=transformer, display_name=name)
    return SimpleNamespace(command=SimpleNamespace(_params={name: param}))


async def refusal(transformer, value) -> str:
    with pytest.raises(OptionRefused) as caught:
        await transformer.transform(interaction_for(transformer), value)
    text = describe_error(caught.value)
    assert text == str(caught.value)
    return text


async def test_integers_outside_the_range_or_of_another_type_are_refused():
    amount = Range[int, 1, 1_000]
    for value in (1, 500, 1_000):
        assert await amount.transform(interaction_for(amount), value) == value
    assert await refusal(amount, 0) == "`amount` must be between 1 and 1,000; you sent 0. Nothing was changed."
    assert "you sent 1,001" in await refusal(amount, 1_001)
    assert "you sent a 16,610-bit number" in await refusal(amount, 10**5000)
    for value in ("5", 5.0, True, None, [5]):
        assert "`amount` must be a whole number" in await refusal(amount, value)
    assert 'you sent `"5"`' in await refusal(amount, "5")


async def test_text_of_the_wrong_length_or_type_is_refused():
    query = Range[str, 1, 66]
    assert await query.transform(interaction_for(query), "9" * 66) == "9" * 66
    assert "`amount` must be between 1 and 66 characters long; you sent 5,000" in await refusal(query, "9" * 5000)
    assert "you sent 0" in await refusal(query, "")
    assert "must be text" in await refusal(query, 12)


async def test_only_the_choices_themselves_are_accepted():
    state = OneOf["on", "off"]
    assert await state.transform(interaction_for(state), "on") == "on"
    assert "must be one of on, off; you sent `evil`" in await refusal(state, "evil")
    assert "you sent `ON`" in await refusal(state, "ON")
    numbers = OneOf[1, 2]
    assert "you sent `True`" in await refusal(numbers, True)  # True == 1, but it is not the choice 1
    flag = Flag()
    assert await flag.transform(interaction_for(flag), True) is True
    assert "must be true or false; you sent `1`" in await refusal(flag, 1)


async def test_a_refused_value_cannot_break_out_of_its_quote():
    state = OneOf["on", "off"]
    text = await refusal(state, "`@everyone`\n" + "x" * 100)
    assert "you sent `'@everyone' xxx" in text and "…`" in text and "\n" not in text


def test_options_discord_py_cannot_convert_get_a_clear_refusal():
    user = SimpleNamespace(id=42)
    member = app_commands.transformers.MemberTransformer()
    error = app_commands.TransformerError(user, discord.AppCommandOptionType.user, member)
    assert describe_error(error) == "<@42> is not a member of this server. Nothing was changed."
    text_channel = app_commands.transformers.BaseChannelTransformer(discord.TextChannel)
    error = app_commands.TransformerError(SimpleNamespace(id=7), discord.AppCommandOptionType.channel, text_channel)
    assert describe_error(error) == "<#7> is not a text channel of this server. Nothing was changed."
    mismatch = app_commands.CommandSignatureMismatch(SimpleNamespace(name="pay"))
    assert "reload Discord" in describe_error(mismatch)
