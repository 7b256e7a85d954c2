"""The Mode enum: the exact strings stored and committed, one parser that refuses anything else."""

from __future__ import annotations

import json

import pytest

from chain.errors import ConsensusConfigError, UnknownModeError
from chain.mode import Mode, parse_mode
from chain.pos.beacon import ConsensusConfig
from cogs.admin import ModeChoice
from cogs.admin_text import MODE_NAMES


def test_values_are_the_stored_strings() -> None:
    assert [m.value for m in Mode] == ["pow", "pos", "hybrid"]
    assert f"{Mode.POS}" == "pos" and str(Mode.HYBRID) == "hybrid"


@pytest.mark.parametrize("text", ["pow", "pos", "hybrid"])
def test_parse_mode_reads_each_stored_string(text: str) -> None:
    assert parse_mode(text) is Mode(text)


@pytest.mark.parametrize("value", ["POS", "proof", "", None, 1, b"pos"])
def test_parse_mode_refuses_anything_else_with_a_typed_error(value: object) -> None:
    with pytest.raises(UnknownModeError, match="mode must be one of pow, pos, hybrid"):
        parse_mode(value)


def test_an_unknown_mode_in_a_stored_config_is_a_typed_error() -> None:
    text = ConsensusConfig().to_json().replace('"mode":"pow"', '"mode":"proof"')
    with pytest.raises(UnknownModeError):
        ConsensusConfig.from_json(text)
    assert issubclass(UnknownModeError, ConsensusConfigError)  # callers catching the family still do


def test_config_mode_is_a_mode_and_serialises_as_before() -> None:
    config = ConsensusConfig(mode="hybrid")  # type: ignore[arg-type]  # a plain string, as old callers pass
    assert config.mode is Mode.HYBRID
    raw = json.loads(config.to_json())
    assert raw["mode"] == "hybrid" and type(raw["mode"]) is str
    assert b'"mode":"hybrid"' in config.to_bytes()
    again = ConsensusConfig.from_json(config.to_json())
    assert again.mode is Mode.HYBRID and again.to_bytes() == config.to_bytes()


def test_the_mode_option_offers_exactly_the_modes() -> None:
    assert [c.value for c in ModeChoice.choices] == [m.value for m in Mode]
    assert set(MODE_NAMES) == set(Mode)
