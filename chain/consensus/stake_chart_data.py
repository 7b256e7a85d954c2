"""The data of the proof-of-stake charts, computed from engine values.

Pure, like ``chain/consensus/chart_data.py``: integers and ``Fraction``s, no I/O, and a
``ChartDataError`` subclass that says what was wrong.

* ``compute_epoch_records``: what each epoch's end recorded, from the events of the block whose
  slot ended it (``EpochRewards``, then the checkpoints it justified or finalized); the store keeps
  these with the block (``epoch_participation``), so the history outlives the outbox and a restart.
* ``compute_participation_series``: per epoch, the share of the active stake that voted for the
  epoch's checkpoint (its target), against the 2/3 that justifies it, with the checkpoints
  justified and finalized.
* ``compute_block_proposers`` and ``compute_stake_vs_proposals``: who proposed each stored block,
  and each validator's share of the active stake against its share of the blocks proposed
  (``compute_share_vs_wins``, which serves miners too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from chain.consensus.block import Block
from chain.consensus.chart_data import ShareVsWins, compute_share_vs_wins
from chain.errors import ChartEmptyInputError, ChartValueError
from chain.events import ChainEvent, CheckpointFinalized, CheckpointJustified, EpochRewards

# Casper FFG justifies a checkpoint when at least this share of the active stake voted for it
# (chain/pos/finality.py compares ``attesting * 3 >= active * 2``; this is the same line, drawn).
JUSTIFICATION_THRESHOLD = Fraction(2, 3)


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """What the end of ``epoch`` recorded (amounts in nanopoints)."""

    epoch: int
    active_units: int
    # The active stake whose vote named this epoch's checkpoint as its target.
    attesting_units: int
    # Epochs since the last finalized checkpoint, as the rewards saw it (a leak starts past 4).
    finality_delay: int
    in_leak: bool
    # The checkpoint this epoch's end newly justified or finalized, if any (its epoch: this one or
    # an earlier one, as Casper FFG looks back).
    justified_epoch: int | None = None
    finalized_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class ParticipationPoint:
    epoch: int
    attesting_units: int
    active_units: int
    share: Fraction
    """``attesting_units / active_units``: at least ``JUSTIFICATION_THRESHOLD`` justifies."""


@dataclass(frozen=True, slots=True)
class ParticipationSeries:
    points: tuple[ParticipationPoint, ...]
    # Checkpoint epochs justified, and finalized, by the ends of the epochs in ``points`` (sorted,
    # each once; a finalized checkpoint was justified before, possibly before the first point).
    justified: tuple[int, ...]
    finalized: tuple[int, ...]
    # The last point's epoch end: epochs since finality, and whether the inactivity leak was on.
    finality_delay: int
    in_leak: bool

    @property
    def reached_threshold(self) -> int:
        """How many of the epochs had at least two thirds of the active stake voting."""
        return sum(1 for p in self.points if p.share >= JUSTIFICATION_THRESHOLD)


def compute_epoch_records(events: Iterable[ChainEvent]) -> tuple[EpochRecord, ...]:
    """One record per ``EpochRewards`` among a block's events, in order.

    An epoch transition emits its ``EpochRewards`` first, then the checkpoint it justified and the one
    it finalized (``chain.pos.epoch_transition.compute_epoch_events``), so each checkpoint event
    belongs to the latest ``EpochRewards`` before it.  A checkpoint with none before it is left
    out: an epoch with nobody active has no participation to plot (and justifies nothing)."""
    records: list[EpochRecord] = []
    for event in events:
        match event:
            case EpochRewards():
                records.append(
                    EpochRecord(
                        epoch=event.epoch,
                        active_units=event.active_units,
                        attesting_units=event.attesting_units,
                        finality_delay=event.finality_delay,
                        in_leak=event.in_inactivity_leak,
                    )
                )
            case CheckpointJustified() if records:
                last = records[-1]
                records[-1] = EpochRecord(
                    last.epoch, last.active_units, last.attesting_units, last.finality_delay, last.in_leak,
                    event.epoch, last.finalized_epoch,
                )
            case CheckpointFinalized() if records:
                last = records[-1]
                records[-1] = EpochRecord(
                    last.epoch, last.active_units, last.attesting_units, last.finality_delay, last.in_leak,
                    last.justified_epoch, event.epoch,
                )
    return tuple(records)


def _whole(name: str, value: object, *, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ChartValueError(f"{name} {value!r} must be a whole number of at least {least}")
    return value


def _check_record(record: EpochRecord) -> None:
    epoch = _whole("epoch", record.epoch)
    active = _whole(f"epoch {epoch}'s active stake", record.active_units, least=1)
    attesting = _whole(f"epoch {epoch}'s attesting stake", record.attesting_units)
    if attesting > active:
        raise ChartValueError(f"epoch {epoch}'s attesting stake {attesting} exceeds its active stake {active}")
    _whole(f"epoch {epoch}'s finality delay", record.finality_delay)
    for name, checkpoint in (("justified", record.justified_epoch), ("finalized", record.finalized_epoch)):
        if checkpoint is not None and _whole(f"epoch {epoch}'s {name} checkpoint", checkpoint) > epoch:
            raise ChartValueError(f"epoch {epoch}'s end cannot have {name} the later epoch {checkpoint}")


def compute_participation_series(records: Sequence[EpochRecord]) -> ParticipationSeries:
    """The participation of each recorded epoch (strictly increasing epochs; gaps allowed: an
    epoch with nobody active, or one ended before the records were kept)."""
    if not records:
        raise ChartEmptyInputError("no epoch has ended with active validators yet: there is no participation to plot")
    previous: int | None = None
    for record in records:
        _check_record(record)
        if previous is not None and record.epoch <= previous:
            raise ChartValueError(f"epoch {record.epoch} follows epoch {previous}: epochs must strictly increase")
        previous = record.epoch
    points = tuple(
        ParticipationPoint(r.epoch, r.attesting_units, r.active_units, Fraction(r.attesting_units, r.active_units))
        for r in records
    )
    last = records[-1]
    return ParticipationSeries(
        points=points,
        justified=tuple(sorted({r.justified_epoch for r in records if r.justified_epoch is not None})),
        finalized=tuple(sorted({r.finalized_epoch for r in records if r.finalized_epoch is not None})),
        finality_delay=last.finality_delay,
        in_leak=last.in_leak,
    )


def compute_block_proposers(raw_blocks: Iterable[bytes]) -> list[int]:
    """The proposer index of each proof-of-stake block among ``raw_blocks`` (stored blocks' bytes),
    in order; proof-of-work blocks have none and are skipped."""
    proposers = []
    for raw in raw_blocks:
        seal = Block.deserialize(raw).seal
        if seal is not None:
            proposers.append(seal.proposer_index)
    return proposers


def compute_stake_vs_proposals(
    stakes: Mapping[int, int], proposers: Iterable[int]
) -> tuple[ShareVsWins[int], ...]:
    """Each validator's share of ``stakes`` (validator index -> effective balance of the active
    ones) against its share of ``proposers`` (the proposer index of each block counted).  A
    validator in either is listed; sorted by stake share, then proposals, then index."""
    for index, stake in stakes.items():
        _whole("validator index", index)
        _whole(f"validator {index}'s stake", stake)
    counts = Counter(_whole("proposer index", index) for index in proposers)
    if not any(stakes.values()):
        raise ChartEmptyInputError("no active validator holds stake yet: there is no stake to compare with")
    if not counts:
        raise ChartEmptyInputError("no proof-of-stake block was proposed yet: there are no proposals to compare with")
    return compute_share_vs_wins(dict(stakes), dict(counts))
