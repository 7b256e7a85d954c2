"""Per-network consensus parameters.

Each chain carries its own ``ChainParams`` (python-bitcoinlib keeps one global
params object and swaps it at runtime; we never do that).  Every field is an
integer with its unit in the name, so consensus math stays integer-only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from chain.errors import ParamsError

# Bitcoin mainnet's proof-of-work limit: ~uint256(0) >> 32.
BITCOIN_POW_LIMIT = (1 << 224) - 1
# Bitcoin regtest's limit (bits 0x207fffff): about one hash in two succeeds.
REGTEST_POW_LIMIT = 0x7FFFFF << 232

MEDIAN_TIME_SPAN_BLOCKS = 11
UINT32_MAX = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ChainParams:
    name: str
    pow_limit: int
    target_spacing_s: int
    retarget_window_blocks: int
    max_future_block_time_s: int
    initial_subsidy_points: int
    halving_interval_blocks: int
    # Regtest-style chains keep their genesis difficulty forever (tests only).
    no_retargeting: bool = False
    max_block_transfers: int = 500
    max_amount_points: int = 10**15
    mempool_max_transfers: int = 5_000
    max_pending_per_account: int = 25
    # A replacement must raise the fee by at least this many basis points.
    replacement_fee_bump_bp: int = 1_000
    # Bitcoin Core measures a retarget window from its first block, one interval short of the
    # window (2,015 of 2,016 intervals), and compares that with the whole window's timespan: a
    # 0.05% bias it keeps for consensus.  Over a 10-block window the same rule is an 11% bias
    # (9 intervals against 10), so the playground's own chains measure every interval instead.
    # Absent from the JSON of chains created before it existed: they keep Core's rule.
    retarget_full_window: bool = False
    # A change of target_spacing_s rescales the target for the very next block (new/old spacing),
    # and the next retarget measures only the blocks mined for the new spacing (chain/pow/difficulty.py
    # ``compute_rescaled_bits``).  Without it a new block time waits for the next retarget.
    rescale_on_spacing_change: bool = False
    # Calibration stretch: before the first retarget of a chain (or after a block time change),
    # a block whose stretch so far came more than 2x off the target is retargeted at once toward
    # the measured hash rate (chain/pow/difficulty.py ``is_early_retarget_height``).
    # Both are absent from the JSON of chains created before them: those keep the older rules.
    early_retarget: bool = False

    @property
    def target_timespan_s(self) -> int:
        return self.target_spacing_s * self.retarget_window_blocks

    def to_json(self) -> str:
        document = asdict(self)
        # Fields added after chains existed are left out at their default, so an old chain's
        # parameters (and the genesis commitment to them) read back byte for byte.
        for name in _OMITTED_AT_DEFAULT:
            if document[name] is False:
                del document[name]
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ChainParams:
        try:
            raw: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"chain parameters are not valid JSON: {exc}") from exc
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ParamsError(f"unknown chain parameters: {sorted(unknown)}")
        params = cls(**raw)
        check_params(params)
        return params

    def to_bytes(self) -> bytes:
        """Canonical bytes, committed to in the genesis block."""
        return self.to_json().encode()

    def evolve(self, **changes: Any) -> ChainParams:
        params = replace(self, **changes)
        check_params(params)
        return params


_OMITTED_AT_DEFAULT = ("retarget_full_window", "rescale_on_spacing_change", "early_retarget")


def check_params(params: ChainParams) -> None:
    """Refuse parameter sets that cannot make a working chain."""
    for f in fields(params):
        value = getattr(params, f.name)
        if f.name == "name" or f.name == "no_retargeting" or f.name in _OMITTED_AT_DEFAULT:
            if f.name != "name" and not isinstance(value, bool):
                raise ParamsError(f"{f.name} must be true or false, got {value!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{f.name} must be an integer, got {value!r}")
        if value < 0:
            raise ParamsError(f"{f.name} must not be negative, got {value}")
    if not 0 < params.pow_limit < (1 << 256):
        raise ParamsError("pow_limit must be a positive 256-bit integer")
    if params.target_spacing_s < 1:
        raise ParamsError("target_spacing_s must be at least 1 second")
    if params.retarget_window_blocks < 2:
        raise ParamsError("retarget_window_blocks must be at least 2")
    if params.halving_interval_blocks < 1:
        raise ParamsError("halving_interval_blocks must be at least 1")
    if params.max_future_block_time_s < params.target_spacing_s:
        raise ParamsError("max_future_block_time_s must be at least one target spacing")
    if params.initial_subsidy_points > params.max_amount_points:
        raise ParamsError("initial_subsidy_points exceeds max_amount_points")
    if params.mempool_max_transfers < 1 or params.max_pending_per_account < 1:
        raise ParamsError("mempool limits must be at least 1")


BITCOIN_MAINNET = ChainParams(
    name="bitcoin-mainnet",
    pow_limit=BITCOIN_POW_LIMIT,
    target_spacing_s=600,
    retarget_window_blocks=2016,
    max_future_block_time_s=2 * 60 * 60,
    initial_subsidy_points=50 * 100_000_000,
    halving_interval_blocks=210_000,
    max_amount_points=21_000_000 * 100_000_000,
)

# A Discord server's chain: a block a minute, retargeting every ten blocks.
PLAYGROUND = ChainParams(
    name="playground",
    pow_limit=REGTEST_POW_LIMIT,
    target_spacing_s=60,
    retarget_window_blocks=10,
    max_future_block_time_s=10 * 60,
    initial_subsidy_points=50,
    halving_interval_blocks=2_100,
    retarget_full_window=True,
    rescale_on_spacing_change=True,
    early_retarget=True,
)

# Instant blocks for tests and examples: fixed, trivial difficulty.
REGTEST = PLAYGROUND.evolve(name="regtest", no_retargeting=True)
