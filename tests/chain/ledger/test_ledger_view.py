"""LedgerView: a block's pending account changes read over the ledger, exactly as the
``ChainMap(changes, ledger)`` it replaced read them."""

from collections import ChainMap

from hypothesis import given
from hypothesis import strategies as st

from chain.ledger.accounts import Account, Ledger, LedgerView

addresses = st.binary(min_size=1, max_size=1)
accounts = st.dictionaries(addresses, st.builds(Account, st.integers(0, 9), st.integers(0, 9)), max_size=6)


@given(ledger_accounts=accounts, changes=accounts, probes=st.lists(addresses, max_size=8))
def test_reads_like_the_chainmap_it_replaced(ledger_accounts, changes, probes):
    ledger = Ledger(ledger_accounts)
    view = LedgerView(changes, ledger)
    expected = ChainMap(changes, dict(ledger_accounts))
    assert list(view) == list(expected)
    assert len(view) == len(expected)
    assert dict(view) == dict(expected)
    for key in probes:
        assert (key in view) == (key in expected)
        assert view.get(key) == expected.get(key)
        assert view.get(key, Account(7, 7)) == expected.get(key, Account(7, 7))


def test_sees_changes_made_after_it_was_built():
    ledger = Ledger({b"a": Account(5, 0)})
    changes: dict[bytes, Account] = {}
    view = LedgerView(changes, ledger)
    changes[b"a"] = Account(3, 1)
    changes[b"b"] = Account(2, 0)
    assert view[b"a"] == Account(3, 1) and view[b"b"] == Account(2, 0)
    assert ledger[b"a"] == Account(5, 0)  # the ledger itself is untouched
