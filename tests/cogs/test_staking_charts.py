"""cogs/staking_charts.py: the proof-of-stake chart specs, from the façade's series (a fake façade here)."""

from __future__ import annotations

from fractions import Fraction

from chain.consensus.chart_data import ShareVsWins
from chain.consensus.stake_chart_data import EpochRecord, compute_participation_series
from cogs.chart_book import owner_ids
from cogs.chart_spec import MAX_ALT_TEXT, check_spec
from cogs.staking_charts import (
    MARKED_CHECKPOINTS,
    MAX_VALIDATORS_SHOWN,
    participation_chart,
    stake_share_chart,
)

UNITS = 10**9


class FakeFacade:
    def __init__(self, rows=(), blocks=0, records=()) -> None:
        self.rows, self.blocks, self.records = tuple(rows), blocks, list(records)

    async def stake_shares(self, guild_id, last_blocks):
        return self.rows, self.blocks

    async def validator_owners_by_index(self, guild_id):
        return {0: "123456789012345678"}

    async def epoch_participation(self, guild_id, last_epochs):
        return compute_participation_series(self.records[-last_epochs:])


async def test_a_crowd_of_validators_keeps_the_alt_text_whole_and_within_discords_limit():
    n = 60
    rows = [ShareVsWins(i, Fraction(1, n), Fraction(1, n), 3) for i in range(n)]
    spec = await stake_share_chart(FakeFacade(rows, 3 * n), 1, owner_ids)  # type: ignore[arg-type]
    check_spec(spec)
    assert len(spec.alt_text) <= MAX_ALT_TEXT and spec.alt_text.endswith("the draw's luck dominates.")
    assert f"the {MAX_VALIDATORS_SHOWN} largest shown, {n - MAX_VALIDATORS_SHOWN} more left out" in spec.alt_text
    assert [label for _, label in spec.x_ticks][:2] == ["…345678 #0", "validator #1"]
    assert all(len(s.points) == MAX_VALIDATORS_SHOWN for s in spec.series)


async def test_long_participation_marks_only_the_latest_checkpoints_and_says_so():
    records = [EpochRecord(e, 4 * UNITS, 3 * UNITS, 1, False, e, e - 1 if e else None) for e in range(300)]
    records[150] = EpochRecord(150, 4 * UNITS, UNITS, 2, False)  # a quarter voted: no checkpoint that epoch
    spec = await participation_chart(FakeFacade(records=records), 1, owner_ids)  # type: ignore[arg-type]
    check_spec(spec)
    line, threshold = spec.series
    assert line.points[0] == (100, 75.0) and line.points[-1] == (300, 75.0) and len(line.points) == 201
    assert threshold.dashed and threshold.points == ((100, 200 / 3), (300, 200 / 3))
    # The latest checkpoints, each labelled with how far it got (the last one is only justified so far).
    assert [m.label for m in spec.markers] == [f"finalized {e}" for e in range(288, 299)] + ["justified 299"]
    assert len(spec.markers) == MARKED_CHECKPOINTS
    assert "epochs 100 to 299 (200 epochs recorded)" in spec.alt_text
    assert "199 of the 200 epochs reached two thirds" in spec.alt_text
    assert spec.x_ticks == ()  # too many epochs to label each
