"""chain/pow/window.py's RecentWindow, and the closed-form minted supply startup uses instead of a replay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.consensus.state import compute_minted_subsidies
from chain.errors import HistoryUnavailableError
from chain.ledger.accounts import compute_block_subsidy, compute_subsidy_total
from chain.params import REGTEST
from chain.pow.window import RecentWindow


def test_a_window_reads_as_the_whole_chain_and_keeps_only_the_recent_end():
    window = RecentWindow("g", capacity=4)
    for height in range(1, 101):
        window.append(f"b{height}")
        assert len(window) <= 101
    assert len(window) == 101
    assert window[0] == "g" and window[-1] == "b100" and window[100] == "b100"
    assert window[-4:] == ["b97", "b98", "b99", "b100"]
    assert 100 - window.oldest_kept + 1 >= 4  # at least the capacity
    assert 100 - window.oldest_kept + 1 < 2 * 4  # and memory stays bounded
    with pytest.raises(HistoryUnavailableError, match="read it from the store"):
        window[1]
    with pytest.raises(HistoryUnavailableError):
        list(window)  # never a silent, shorter iteration
    with pytest.raises(IndexError):
        window[101]


def test_append_returns_what_left_memory_and_prepend_gives_it_back():
    window = RecentWindow(0, capacity=2)
    dropped = []
    for height in range(1, 11):
        dropped += window.append(height)
    assert dropped == list(range(1, window.oldest_kept))
    oldest = window.oldest_kept
    window.prepend(list(range(oldest - 3, oldest)))
    assert window.oldest_kept == oldest - 3
    assert [window[h] for h in range(oldest - 3, 11)] == list(range(oldest - 3, 11))
    with pytest.raises(ValueError):
        window.prepend(list(range(100)))  # more than there is below


def test_a_short_chain_is_kept_whole_and_compares_as_a_list():
    window = RecentWindow(10, capacity=64, recent=[11, 12], start=1)
    assert window == [10, 11, 12] and list(window) == [10, 11, 12]


def test_resuming_a_window_at_any_height():
    window = RecentWindow("g", capacity=3, recent=["b7", "b8", "b9"], start=7)
    assert len(window) == 10 and window[7] == "b7" and window[-1] == "b9"
    with pytest.raises(HistoryUnavailableError):
        window[6]


@given(
    first=st.integers(1, 500),
    length=st.integers(0, 500),
    subsidy=st.integers(0, 10**9),
    halving=st.integers(1, 60),
)
def test_subsidy_total_is_the_sum_of_every_block(first, length, subsidy, halving):
    params = REGTEST.evolve(initial_subsidy_points=min(subsidy, REGTEST.max_amount_points),
                            halving_interval_blocks=halving)
    last = first + length - 1
    assert compute_subsidy_total(first, last, params) == sum(
        compute_block_subsidy(h, params) for h in range(first, last + 1)
    )


@given(
    changes=st.lists(st.tuples(st.integers(1, 300), st.integers(1, 40), st.integers(0, 100)), max_size=4),
    last=st.integers(0, 400),
)
def test_minted_subsidies_follow_every_rule_change(changes, last):
    unique = {}
    for at, halving, subsidy in changes:
        unique[at] = REGTEST.evolve(halving_interval_blocks=halving, initial_subsidy_points=subsidy)
    param_changes = sorted(unique.items())

    def params_at(height):
        params = REGTEST
        for at, changed in param_changes:
            if at < height:
                params = changed
        return params

    expected = sum(compute_block_subsidy(h, params_at(h)) for h in range(1, last + 1))
    assert compute_minted_subsidies(REGTEST, param_changes, last) == expected
