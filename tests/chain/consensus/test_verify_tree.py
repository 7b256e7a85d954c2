"""The verifier checks the whole block tree: every orphaned block on its own branch (issue 11, item 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace

import pytest

from chain.consensus.block import Block
from chain.consensus.export import export_chain, import_chain, import_orphans
from chain.consensus.templates import build_template
from chain.consensus.verify import OrphanListing, Orphans, verify_chain
from chain.errors import (
    CheckProofOfWorkError,
    InsufficientBalanceError,
    OrphanHeightError,
    OrphanOnMainChainError,
    OrphanParentUnknownError,
    OrphanVerificationError,
    UnknownAccountError,
)
from chain.hashing import hash_to_display
from chain.ledger.transaction import make_transfer
from chain.params import REGTEST
from chain.pow.difficulty import is_valid_proof_of_work
from tests.chainkit import genesis_block, key, new_chain, solve
from tests.reorg_writer import ALICE, BOB, CHAIN_ID, grow, replay

CAROL = key("tree-carol")
NOW = 2_000_000_000


@dataclass
class Tree:
    main: list[Block]  # genesis first
    orphans: list[tuple[int, Block]]


def build_tree() -> Tree:
    """Main chain: genesis + 5 blocks (block 4 pays bob 100). Off it: a branch of 3 forking at
    block 3 (longer than the main chain), a second fork on that branch's first block, and a
    one-block branch on block 1."""
    prefix = grow(new_chain(REGTEST, chain_id=CHAIN_ID), 3, ALICE.public_key)
    payment = make_transfer(ALICE, BOB.public_key, 100, 0, 0, CHAIN_ID)
    tail = grow(replay(prefix.blocks), 2, ALICE.public_key, {0: [payment]})
    side = grow(replay(prefix.blocks), 3, BOB.public_key)
    sub = grow(replay(prefix.blocks + side.blocks[:1]), 1, ALICE.public_key, time_step=1)
    early = grow(replay(prefix.blocks[:1]), 1, BOB.public_key)
    main = [genesis_block(REGTEST, CHAIN_ID), *prefix.blocks, *tail.blocks]
    orphans = [(4 + i, b) for i, b in enumerate(side.blocks)] + [(5, sub.blocks[0]), (2, early.blocks[0])]
    return Tree(main, orphans)


@pytest.fixture(scope="module")
def tree() -> Tree:
    return build_tree()


def verify(main, orphans=None):
    return verify_chain(REGTEST, CHAIN_ID, main, NOW, orphans=orphans if orphans is not None else Orphans.of([]))


def refused(tree: Tree, orphans: Orphans) -> OrphanVerificationError:
    with pytest.raises(OrphanVerificationError) as info:
        verify(tree.main, orphans)
    return info.value


def test_every_orphan_is_checked_and_the_main_chain_replays_as_without_them(tree):
    alone_state, alone = verify(tree.main)
    state, report = verify(tree.main, Orphans.of(tree.orphans))
    assert report.orphans == 5
    assert replace(report, orphans=0) == alone
    # The branches grew on copies: the main replay's ledger is untouched by them.
    assert dict(state.ledger.items()) == dict(alone_state.ledger.items())
    assert state.tip_hash == alone_state.tip_hash
    assert "5 orphaned blocks checked on their own branches" in report.summary()
    assert "orphaned" not in alone.summary()


def test_an_orphan_is_judged_by_its_own_branch_not_the_main_chain(tree):
    """Bob holds 100 on the main chain from block 4 on, only the 50 he mined on the branch forking at
    block 3: his payment of 60 is valid on top of main block 4 and refused on top of the orphan at height 4."""
    branch = replay(tree.main[1:4])
    side_four = tree.orphans[0][1]
    branch.apply(side_four, _effects(branch, side_four))
    spend = make_transfer(BOB, CAROL.public_key, 60, 0, 0, CHAIN_ID)
    bad = _mine_unchecked(branch, [spend])
    error = refused(tree, Orphans.of([(4, side_four), (5, bad)]))
    assert isinstance(error.cause, (InsufficientBalanceError, UnknownAccountError))
    assert error.height == 5 and error.block_hash == hash_to_display(bad.hash())
    assert hash_to_display(bad.hash())[:16] in str(error) and "off the main chain" in str(error)
    # The same payment on top of main block 4 is a valid orphan.
    on_main = replay(tree.main[1:5])
    good = _mine_unchecked(on_main, [spend])
    _, report = verify(tree.main, Orphans.of([(5, good)]))
    assert report.orphans == 1


def test_invalid_orphan_with_a_bad_proof_of_work(tree):
    height, block = tree.orphans[0]
    for nonce in range(1 << 16):
        candidate = replace(block, header=block.header.with_nonce(nonce))
        if not is_valid_proof_of_work(candidate.hash(), candidate.header.bits, REGTEST):
            break
    error = refused(tree, Orphans.of([(height, candidate)]))
    assert isinstance(error.cause, CheckProofOfWorkError)
    assert error.height == 4 and error.block_hash == hash_to_display(candidate.hash())


def test_invalid_orphan_with_a_bad_transfer(tree):
    state = replay(tree.main[1:3])
    forged = replace(make_transfer(ALICE, BOB.public_key, 10, 0, 0, CHAIN_ID), amount=11)  # signature is for 10
    bad = _mine_unchecked(state, [forged])
    error = refused(tree, Orphans.of([(3, bad)]))
    assert error.height == 3 and "signature" in str(error.cause).lower()


def test_invalid_orphan_with_an_unknown_parent(tree):
    _, block = tree.orphans[-1]
    unknown = _resolve(replace(block, header=replace(block.header, prev_hash=b"\x11" * 32)))
    error = refused(tree, Orphans.of([(2, unknown)]))
    assert isinstance(error.cause, OrphanParentUnknownError)
    assert "neither on the main chain nor orphaned" in str(error)


def test_invalid_orphan_at_a_wrong_height(tree):
    _, block = tree.orphans[0]  # builds on main block 3
    listing = OrphanListing(block.hash(), block.header.prev_hash, 5)
    error = refused(tree, Orphans([listing], lambda: [block]))
    assert isinstance(error.cause, OrphanHeightError)
    assert "is block 3, so it belongs at height 4, not 5" in str(error)
    # Below its parent's height too (judged before the replay reaches the parent).
    early = OrphanListing(block.hash(), block.header.prev_hash, 2)
    error = refused(tree, Orphans([early], lambda: [block]))
    assert isinstance(error.cause, OrphanHeightError) and "belongs at height 4, not 2" in str(error)


def test_invalid_orphan_on_an_orphan_at_a_wrong_height(tree):
    side = [b for h, b in tree.orphans[:3]]
    listings = [OrphanListing(side[0].hash(), side[0].header.prev_hash, 4),
                OrphanListing(side[2].hash(), side[2].header.prev_hash, 7)]
    error = refused(tree, Orphans(listings, lambda: [side[0], side[2]]))
    assert isinstance(error.cause, OrphanParentUnknownError)  # side[1] is not listed
    listings = [OrphanListing(b.hash(), b.header.prev_hash, h) for h, b in zip((4, 5, 7), side, strict=True)]
    error = refused(tree, Orphans(listings, lambda: side))
    assert isinstance(error.cause, OrphanHeightError) and "orphaned at height 5" in str(error)


def test_invalid_a_main_chain_block_listed_as_orphaned(tree):
    error = refused(tree, Orphans.of([(2, tree.main[2])]))
    assert isinstance(error.cause, OrphanOnMainChainError) and "main-chain block 2" in str(error)


def test_exports_carry_the_orphans_and_verify_offline(tree, tmp_path):
    document = json.loads(json.dumps(export_chain(REGTEST, CHAIN_ID, tree.main, orphans=tree.orphans)))
    assert [o["height"] for o in document["orphans"]] == [2, 4, 5, 5, 6]
    assert document["orphans"][0]["parent"] == hash_to_display(tree.main[1].hash())
    params, chain_id, blocks = import_chain(document)
    _, report = verify_chain(params, chain_id, blocks, NOW, orphans=import_orphans(document))
    assert report.orphans == 5
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(document))
    run = subprocess.run([sys.executable, "-m", "chain", "verify", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert "5 orphaned blocks checked on their own branches" in run.stdout


def test_an_export_without_orphans_is_as_before_and_still_verifies(tree):
    document = export_chain(REGTEST, CHAIN_ID, tree.main)
    assert "orphans" not in document
    _, report = verify_chain(REGTEST, CHAIN_ID, tree.main, NOW, orphans=import_orphans(document))
    assert report.orphans == 0


def test_invalid_export_whose_orphan_names_another_parent(tree, tmp_path):
    document = json.loads(json.dumps(export_chain(REGTEST, CHAIN_ID, tree.main, orphans=tree.orphans)))
    document["orphans"][1]["parent"] = hash_to_display(tree.main[2].hash())
    with pytest.raises(OrphanVerificationError, match="not its listing's"):
        verify_chain(REGTEST, CHAIN_ID, tree.main, NOW, orphans=import_orphans(document))
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    run = subprocess.run([sys.executable, "-m", "chain", "verify", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "orphaned block" in run.stdout + run.stderr


def _effects(state, block):
    from chain.consensus.transition import process_block

    return process_block(state, block, block.header.time)


def _mine_unchecked(state, transfers) -> Block:
    """A block with these transfers on ``state``'s tip, mined without checking them."""
    now = state.tip.time + state.params.target_spacing_s + 7
    template = build_template(state, ALICE.public_key, [], now)
    fees = sum(t.fee for t in transfers)
    coinbase = replace(template.coinbase, amount=template.coinbase.amount + fees)
    built = type(template).build(1, state.tip_hash, now, template.header.bits, coinbase, tuple(transfers))
    return solve(built, REGTEST)


def _resolve(block: Block) -> Block:
    for nonce in range(1 << 16):
        candidate = replace(block, header=block.header.with_nonce(nonce))
        if is_valid_proof_of_work(candidate.hash(), candidate.header.bits, REGTEST):
            return candidate
    raise AssertionError




def test_a_branch_copy_grows_without_changing_the_state_it_was_copied_from():
    state = replay([])
    grow(state, 3, ALICE.public_key)
    before = (state.height, state.tip_hash, dict(state.ledger.items()), state.ledger.minted, list(state.hashes))
    twin = state.copy_for_branch()
    grow(twin, 2, BOB.public_key)
    assert (state.height, state.tip_hash, dict(state.ledger.items()), state.ledger.minted, list(state.hashes)) == before
    assert twin.height == 5 and twin.ledger[BOB.public_key].balance == 100
    assert BOB.public_key not in state.ledger and state.height_of(twin.tip_hash) is None
