"""Dashboard links (bot/dashboard_links.py): signed under a key derived from the master key, expiring,
strictly parsed."""

from __future__ import annotations

import pytest

from bot.dashboard_links import LinkClaims, LinkRefusedError, derive_link_key, read_link, sign_link

MASTER = bytes(range(32))
KEY = derive_link_key(MASTER)


def test_the_link_key_is_derived_under_its_own_label_never_the_master_key():
    assert len(KEY) == 32 and KEY != MASTER and derive_link_key(MASTER) == KEY
    assert derive_link_key(bytes(32)) != KEY


def test_a_signed_link_reads_back_until_it_expires():
    token = sign_link(KEY, LinkClaims(123456789012345678, 2_000, 3))
    assert token.startswith("123456789012345678.2000.3.")
    assert read_link(KEY, token, 1_999) == LinkClaims(123456789012345678, 2_000, 3)
    with pytest.raises(LinkRefusedError, match="expired"):
        read_link(KEY, token, 2_000)


def test_a_link_signed_under_another_master_key_is_refused():
    token = sign_link(derive_link_key(bytes(32)), LinkClaims(5, 2_000, 0))
    with pytest.raises(LinkRefusedError, match="bad signature"):
        read_link(KEY, token, 1)


@pytest.mark.parametrize("token", [
    "", "5.2000.0", "5.2000.0.x", "05.2000.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "-5.2000.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "5.2000.00.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "5.2000.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "5.2000.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
    " 5.2000.0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
])
def test_anything_but_the_exact_format_is_refused_before_its_mac_is_checked(token):
    with pytest.raises(LinkRefusedError, match="malformed"):
        read_link(KEY, token, 1)


def test_every_single_character_change_is_refused():
    token = sign_link(KEY, LinkClaims(77, 9_000, 2))
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_."
    for index, char in enumerate(token):
        for other in alphabet:
            if other == char:
                continue
            changed = token[:index] + other + token[index + 1:]
            with pytest.raises(LinkRefusedError):
                read_link(KEY, changed, 1)
