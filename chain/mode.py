"""A chain's consensus mode: proof of work, proof of stake, or hybrid (FFG over proof of work).

The values are the exact strings stored in the database and committed in a genesis block's
consensus config (``ConsensusConfig.to_bytes``): ``Mode`` is a ``StrEnum`` so that JSON and
f-strings see ``"pos"``, byte for byte as before the enum existed.  Anything read from storage
or from an export goes through ``parse_mode``, the one place an unknown mode is refused.
"""

from __future__ import annotations

from enum import StrEnum

from chain.errors import UnknownModeError


class Mode(StrEnum):
    POW = "pow"
    POS = "pos"
    HYBRID = "hybrid"


def parse_mode(value: object) -> Mode:
    """``value`` as a ``Mode``; ``UnknownModeError`` names the modes there are and what came instead."""
    if isinstance(value, Mode):
        return value
    if isinstance(value, str):
        try:
            return Mode(value)
        except ValueError:
            pass
    raise UnknownModeError(f"mode must be one of {', '.join(Mode)}, got {value!r}")
