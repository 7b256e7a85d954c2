"""Energy of proof of work against proof of stake, from measured work, in integers.

Proof of work's energy is the CPU time the hashing workers spent (they
measure it themselves, see ``chain.adapters.hashcore``) times the power one busy core
draws.  Proof of stake's is the signatures made and checked, times the CPU
time one such operation takes on this machine (measured once, passed in),
times the same power.  Both are estimates of CPU energy only, and both use
the same power figure, so their ratio does not depend on it.  ``EnergyMeter``
puts them together for one chain: its counters as the store keeps them, and the
signature costs measured once, the first time a report is asked for.

No floats: time in nanoseconds, power in watts or milliwatts, energy in
joules or millijoules, every division rounded down and said so.  Savings are
in basis points (1 bp = 0.01 %), rounded down so they are never overstated.

For comparison, the seed article's figure for Ethereum's Merge (September
2022, proof of work to proof of stake): energy use fell by 99.992 %
(``ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS`` = 99_992 thousandths of a
percent; 9_999 in whole basis points, rounded down).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chain.adapters.signer import measure_signature_costs_ns
from chain.adapters.storage import Store
from chain.errors import EnergyError

NS_PER_SECOND = 1_000_000_000
MILLI = 1_000
BASIS_POINTS_PER_WHOLE = 10_000
# A server core under load, roughly (a 2-core VM's share of a ~30 W desktop CPU): the default of
# the WATTS_PER_CORE setting.  Only the ratio matters for the percentage saved.
DEFAULT_MILLIWATTS_PER_CORE = 15_000
# Ethereum's Merge, from the seed article: 99.992 % less energy.
ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS = 99_992
ETHEREUM_MERGE_SAVED_BP = ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS * BASIS_POINTS_PER_WHOLE // (100 * 1_000)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnergyError(f"{name} must be a whole number of at least 0, got {value!r}")


def compute_energy_millijoules(cpu_ns: int, milliwatts_per_core: int) -> int:
    """Energy of ``cpu_ns`` of one core's CPU time at ``milliwatts_per_core``, in mJ, rounded down.

    ns x mW = 1e-12 J = 1e-9 mJ.
    """
    _check_count("CPU time (ns)", cpu_ns)
    _check_count("power per core (mW)", milliwatts_per_core)
    return cpu_ns * milliwatts_per_core // NS_PER_SECOND


def compute_energy_joules(cpu_ns: int, watts_per_core: int) -> int:
    """Energy of ``cpu_ns`` of one core's CPU time at ``watts_per_core``, in whole joules, rounded down."""
    _check_count("CPU time (ns)", cpu_ns)
    _check_count("power per core (W)", watts_per_core)
    return cpu_ns * watts_per_core // NS_PER_SECOND


def compute_pos_cpu_ns(sign_ops: int, verify_ops: int, *, sign_cost_ns: int, verify_cost_ns: int) -> int:
    """CPU time proof of stake took: signatures made and checked, times what one costs."""
    _check_count("signatures made", sign_ops)
    _check_count("signatures checked", verify_ops)
    _check_count("CPU time of one signature (ns)", sign_cost_ns)
    _check_count("CPU time of one check (ns)", verify_cost_ns)
    return sign_ops * sign_cost_ns + verify_ops * verify_cost_ns


def compute_pos_energy_millijoules(
    sign_ops: int, verify_ops: int, *, sign_cost_ns: int, verify_cost_ns: int, milliwatts_per_core: int
) -> int:
    """Proof of stake's energy in mJ, rounded down once (not per operation, which would lose it all)."""
    cpu_ns = compute_pos_cpu_ns(sign_ops, verify_ops, sign_cost_ns=sign_cost_ns, verify_cost_ns=verify_cost_ns)
    return compute_energy_millijoules(cpu_ns, milliwatts_per_core)


def compute_percent_saved(pow_energy: int, pos_energy: int) -> int:
    """How much less energy proof of stake used than proof of work, in basis points, rounded down.

    Any unit will do as long as both are in the same one; CPU nanoseconds are
    best, since they have not been rounded yet.  10_000 means all of it;
    negative means proof of stake used more.
    """
    _check_count("proof-of-work energy", pow_energy)
    _check_count("proof-of-stake energy", pos_energy)
    if pow_energy == 0:
        raise EnergyError("proof of work has used no energy yet: there is nothing to compare with")
    return (pow_energy - pos_energy) * BASIS_POINTS_PER_WHOLE // pow_energy


@dataclass(frozen=True, slots=True)
class EnergyReport:
    pow_millijoules: int
    pos_millijoules: int
    saved_bp: int | None
    """None until proof of work has used some energy."""


def compute_energy_report(
    pow_cpu_ns: int,
    sign_ops: int,
    verify_ops: int,
    *,
    sign_cost_ns: int,
    verify_cost_ns: int,
    milliwatts_per_core: int,
) -> EnergyReport:
    """Both energies in mJ and the saving, from a chain's counters and the measured costs."""
    pos_cpu_ns = compute_pos_cpu_ns(sign_ops, verify_ops, sign_cost_ns=sign_cost_ns, verify_cost_ns=verify_cost_ns)
    # The saving is computed from CPU time, before rounding to millijoules: a few
    # signatures round to 0 mJ, which would read as "saved all of it".
    saved = compute_percent_saved(pow_cpu_ns, pos_cpu_ns) if pow_cpu_ns > 0 else None
    return EnergyReport(
        compute_energy_millijoules(pow_cpu_ns, milliwatts_per_core),
        compute_energy_millijoules(pos_cpu_ns, milliwatts_per_core),
        saved,
    )


class EnergyMeter:
    """A chain's energy report (``/chain energy``): its stored counters times this machine's costs."""

    def __init__(self, store: Store, milliwatts_per_core: int = DEFAULT_MILLIWATTS_PER_CORE) -> None:
        self.store = store
        # Power of one busy core: what /chain energy multiplies CPU time by (the WATTS_PER_CORE setting).
        self.milliwatts_per_core = milliwatts_per_core
        # Measured once (chain/adapters/signer.py); what PoS signing and checking cost in CPU time.
        self._signature_costs_ns: tuple[int, int] | None = None

    async def report(self, chain_id: int) -> EnergyReport:
        if self._signature_costs_ns is None:
            self._signature_costs_ns = await asyncio.to_thread(measure_signature_costs_ns)
        sign_ns, verify_ns = self._signature_costs_ns
        counters = await self.store.energy.counters(chain_id)
        return compute_energy_report(
            counters.pow_cpu_ns, counters.pos_sign_ops, counters.pos_verify_ops,
            sign_cost_ns=sign_ns, verify_cost_ns=verify_ns, milliwatts_per_core=self.milliwatts_per_core,
        )
