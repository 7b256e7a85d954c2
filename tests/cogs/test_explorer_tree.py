"""/chain block and /chain forks over the block tree: orphans found by hash, said to be orphaned, and
the side branches listed (issue 11, item 3)."""

from __future__ import annotations

import pytest

from chain.adapters.storage import StoredOrphan, StoredSideBranch
from chain.hashing import hash_to_display
from cogs.errors import UserFacingError
from cogs.explorer import FORKS_SHOWN, block_choices, forks_embed, orphan_embed, resolve_block, resolve_block_height
from tests.chainkit import mine, new_chain

MAIN = [bytes.fromhex("abcdef01" + "00" * 28)[::-1], bytes.fromhex("123456" + "00" * 29)[::-1]]
ORPHANS = [(1, bytes.fromhex("abcdef02" + "00" * 28)[::-1]), (1, bytes.fromhex("fedcba" + "11" * 29)[::-1])]


class TreeIndex:
    """The lookups /chain block makes, over fixed main-chain and orphan hashes."""

    async def find_blocks_by_hash_prefix(self, chain_id, prefix, limit):
        found = [(h, b) for h, b in enumerate(MAIN) if hash_to_display(b).startswith(prefix)]
        return len(found), sorted(found, reverse=True)[:limit]

    async def block_hashes(self, chain_id, heights):
        return {h: MAIN[h] for h in heights if h < len(MAIN)}

    async def find_orphans_by_hash_prefix(self, chain_id, prefix, limit):
        found = [(h, b) for h, b in ORPHANS if hash_to_display(b).startswith(prefix)]
        return len(found), found[:limit]


async def test_a_hash_prefix_finds_an_orphan_and_a_height_never_does():
    index = TreeIndex()
    assert await resolve_block(index, 1, 1, "fedcba", index) == ORPHANS[1][1]
    assert await resolve_block(index, 1, 1, hash_to_display(ORPHANS[1][1]), index) == ORPHANS[1][1]
    assert await resolve_block(index, 1, 1, "123456", index) == 1
    assert await resolve_block(index, 1, 1, "1", index) == 1  # a height is the main chain's block
    # Without the orphan index (the old lookup), the orphan is not found.
    with pytest.raises(UserFacingError, match="No block's hash starts with `fedcba`"):
        await resolve_block_height(index, 1, 1, "fedcba")


async def test_a_prefix_shared_by_a_main_block_and_an_orphan_lists_both():
    index = TreeIndex()
    with pytest.raises(UserFacingError) as refused:
        await resolve_block(index, 1, 1, "abcdef", index)
    message = str(refused.value)
    assert "starts the hashes of 2 blocks (#0, an orphan at #1 (`abcdef020000…`)): type more" in message
    assert await resolve_block(index, 1, 1, "abcdef02", index) == ORPHANS[0][1]


async def test_autocomplete_offers_orphans_by_hash_with_their_whole_hash():
    index = TreeIndex()
    choices = await block_choices(index, 1, 1, "fed", index)
    assert [(c.name, c.value) for c in choices] == [
        (f"orphan at #1 {hash_to_display(ORPHANS[1][1])[:16]}…", hash_to_display(ORPHANS[1][1]))
    ]
    both = await block_choices(index, 1, 1, "abcdef", index)
    assert [c.value for c in both] == ["0", hash_to_display(ORPHANS[0][1])]
    # Nothing typed: the newest main-chain blocks only.
    assert [c.value for c in await block_choices(index, 1, 1, "", index)] == ["1", "0"]


def field(embed, name: str) -> str:
    return next(f.value for f in embed.fields if f.name == name)


def test_an_orphan_embed_says_it_is_off_the_main_chain_and_what_holds_its_height():
    state = new_chain()
    block = mine(state, b"\x01" * 32, apply=False)
    main_hash = b"\x22" * 32
    embed = orphan_embed(StoredOrphan(block, 1, 12, 3, main_hash, 10), {}, 4, None, None)
    assert embed.title == "Orphaned block at height 1"
    assert "Orphaned: not on the main chain" in embed.description
    assert f"Block 1 of the main chain is `{hash_to_display(main_hash)[:16]}…` instead" in embed.description
    assert field(embed, "Main chain at this height") == f"`{hash_to_display(main_hash)}`"
    assert field(embed, "Chain work at this height") == "this branch 12 · main chain 10 (2 more than the main chain's)"
    assert field(embed, "Hash") == f"`{block.header.hash_hex()}`"

    above = orphan_embed(StoredOrphan(block, 6, 12, 3, None, None), {}, 4, None, None)
    assert "no block at this height yet (its tip is block 4)" in above.description
    assert field(above, "Main chain at this height") == "none yet"
    assert field(above, "Chain work at this height") == "this branch 12 · main chain no block yet"


def test_the_forks_embed_lists_branches_newest_first_and_says_when_there_are_none():
    empty = forks_embed(0, [], 5)
    assert "No side branches" in empty.description
    branches = [
        StoredSideBranch(b"\x01" * 32, 6, b"\x02" * 32, 3, 700, 600, 9),
        StoredSideBranch(b"\x03" * 32, 2, b"\x04" * 32, 1, 200, 200, 4),
    ]
    embed = forks_embed(12, branches, 5)
    assert embed.description.startswith("12 side branches off the main chain (the 2 newest)")
    first, second = embed.description.split("\n\n")[1].split("\n")
    assert first.startswith("**3 blocks** forking at block 3")
    assert "at height 6; work 700 vs main chain at 5 600: 100 more than the main chain's" in first
    assert "**1 block** forking at block 1" in second and "equal: the main chain was seen first" in second
    assert FORKS_SHOWN == 10
