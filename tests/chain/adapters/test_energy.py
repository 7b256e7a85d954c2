"""Energy arithmetic: integers only, rounded down, savings in basis points."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.adapters.energy import (
    ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS,
    ETHEREUM_MERGE_SAVED_BP,
    EnergyReport,
    compute_energy_joules,
    compute_energy_millijoules,
    compute_energy_report,
    compute_percent_saved,
    compute_pos_cpu_ns,
    compute_pos_energy_millijoules,
)
from chain.errors import EnergyError


def test_ethereum_merge_figure():
    assert ETHEREUM_MERGE_PERCENT_SAVED_THOUSANDTHS == 99_992  # 99.992 %
    assert ETHEREUM_MERGE_SAVED_BP == 9_999
    # The Merge's figure through our own function: 8 parts left of 100_000.
    assert compute_percent_saved(100_000, 8) == 9_999


def test_energy_of_cpu_time():
    # One core-second at 15 W is 15 J.
    assert compute_energy_joules(1_000_000_000, 15) == 15
    assert compute_energy_millijoules(1_000_000_000, 15_000) == 15_000
    # 1.5 core-seconds at 12.5 W: 18.75 J, rounded down.
    assert compute_energy_joules(1_500_000_000, 12) == 18
    assert compute_energy_millijoules(1_500_000_000, 12_500) == 18_750
    assert compute_energy_millijoules(66_000, 15_000) == 0  # below 1 mJ rounds down to 0
    assert compute_energy_joules(0, 15) == 0


def test_pos_energy_from_operation_counts():
    # 1_000 signatures at 40 µs and 3_000 checks at 90 µs: 0.31 core-seconds.
    cpu_ns = compute_pos_cpu_ns(1_000, 3_000, sign_cost_ns=40_000, verify_cost_ns=90_000)
    assert cpu_ns == 310_000_000
    assert compute_pos_energy_millijoules(
        1_000, 3_000, sign_cost_ns=40_000, verify_cost_ns=90_000, milliwatts_per_core=15_000
    ) == 4_650
    # Rounded once, on the total: 100 signatures of 0.6 mJ each are 60 mJ, not 100 x 0.
    assert compute_pos_energy_millijoules(
        100, 0, sign_cost_ns=40_000, verify_cost_ns=0, milliwatts_per_core=15_000
    ) == 60


def test_percent_saved_in_basis_points():
    assert compute_percent_saved(1_000, 0) == 10_000
    assert compute_percent_saved(1_000, 1_000) == 0
    assert compute_percent_saved(1_000, 1) == 9_990
    assert compute_percent_saved(3, 1) == 6_666  # 66.66..%, rounded down
    assert compute_percent_saved(1_000, 1_500) == -5_000  # proof of stake used more


@given(st.integers(min_value=1, max_value=10**30), st.integers(min_value=0, max_value=10**30))
def test_percent_saved_is_never_overstated(pow_energy, pos_energy):
    saved = compute_percent_saved(pow_energy, pos_energy)
    assert saved <= 10_000
    # Never more than the exact saving: saved / 10_000 <= (pow - pos) / pow.
    assert saved * pow_energy <= (pow_energy - pos_energy) * 10_000
    assert (saved + 1) * pow_energy > (pow_energy - pos_energy) * 10_000


def test_energy_report_saves_from_unrounded_cpu_time():
    report = compute_energy_report(
        60_000_000_000, 10, 30, sign_cost_ns=40_000, verify_cost_ns=90_000, milliwatts_per_core=15_000
    )
    # PoW: 60 core-seconds = 900 J. PoS: 3.1 ms of CPU = 46.5 mJ.
    assert report == EnergyReport(pow_millijoules=900_000, pos_millijoules=46, saved_bp=9_999)
    nothing_mined = compute_energy_report(0, 1, 1, sign_cost_ns=1, verify_cost_ns=1, milliwatts_per_core=1)
    assert nothing_mined.saved_bp is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: compute_energy_joules(-1, 15),
        lambda: compute_energy_joules(1, -15),
        lambda: compute_energy_millijoules(1.5, 15),
        lambda: compute_energy_millijoules(True, 15),
        lambda: compute_pos_cpu_ns(-1, 0, sign_cost_ns=1, verify_cost_ns=1),
        lambda: compute_pos_cpu_ns(1, 0, sign_cost_ns=0.5, verify_cost_ns=1),
        lambda: compute_percent_saved(0, 0),
        lambda: compute_percent_saved(10, -1),
    ],
)
def test_invalid_inputs_are_refused(call):
    with pytest.raises(EnergyError):
        call()
