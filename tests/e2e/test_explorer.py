"""/chain block, tx, difficulty, verify and export, end to end through the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from chain.consensus.block import Block
from chain.consensus.export import import_chain, import_consensus, import_consensus_changes, import_param_changes
from chain.consensus.verify import verify_chain
from chain.errors import VerificationError
from chain.hashing import hash_to_display
from cogs.errors import UserFacingError
from cogs.explorer import resolve_block_height
from sandbox.errors import SandboxError

ROOT = Path(__file__).resolve().parents[2]


def field(embed: dict, name: str) -> str:
    for f in embed.get("fields", []):
        if f["name"] == name:
            return f["value"]
    raise AssertionError(f"no field {name!r} in {embed}")


def error_text(h) -> str:
    """The ephemeral refusal a command answered with."""
    assert h.ephemeral, h.describe()
    (embed,) = h.embeds
    assert embed["description"].startswith("❌"), embed
    return embed["description"]


async def answer(p, member, command: str, options: dict | None = None, timeout: float = 10):
    """Run a command and wait for its final (not 'thinking…') message."""
    h = await p.run(member, command, options)
    await h.wait_response(timeout)
    return h


def guild_id(p) -> int:
    return p.world.genesis.id


def state(p):
    return p.bot.services.node.chain(guild_id(p)).state


async def mine_blocks(p, count: int) -> None:
    """Mine ``count`` blocks through /mine start, one session at a time (so none goes stale)."""
    await p.bot.services.server_settings_store.replace(guild_id(p), {"cooldown_s": 0})
    mining = p.bot.get_cog("Mining")
    for _ in range(count):
        h = await p.run(p.world.alice, "mine start")
        await h.wait_for(lambda h: h.embeds and "found" in h.embeds[0].get("title", ""), timeout=20, what="a block")
        # The session ends just after its last edit; the next /mine start needs it gone.
        await p.sb.wait_until(lambda: (not mining.sessions) or None, timeout=5)


async def pay(p, sender, recipient, amount: int, fee: int = 0) -> str:
    h = await answer(p, sender, "wallet pay", {"member": recipient, "amount": amount, "fee": fee})
    return field(h.embeds[0], "Transaction").strip("`")


# --- /chain block -------------------------------------------------------------


async def test_block_by_height_by_hash_prefix_and_full_hash(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 2)
    txid = await pay(p, w.alice, w.bob, 7, fee=2)
    await mine_blocks(p, 1)
    block_hash = hash_to_display(state(p).hashes[3])

    by_height = await answer(p, w.carol, "chain block", {"query": "3"})
    embed = by_height.embeds[0]
    assert not by_height.ephemeral
    assert embed["title"] == "Block 3"
    assert field(embed, "Hash") == f"`{block_hash}`"
    assert field(embed, "Miner") == w.alice.mention
    assert field(embed, "Reward") == "52 pts"
    assert field(embed, "Transfers") == "1"
    assert field(embed, "Confirmations") == "1"
    assert f"`{txid[:12]}…` {w.alice.mention} → {w.bob.mention}: 7 pts (fee 2)" in embed["description"]

    for query in (block_hash[:6], block_hash[:10].upper(), block_hash, f"`{block_hash}`", "#3"):
        h = await answer(p, w.carol, "chain block", {"query": query})
        assert h.embeds[0]["title"] == "Block 3", query
        assert field(h.embeds[0], "Hash") == f"`{block_hash}`"

    genesis = await answer(p, w.carol, "chain block", {"query": "0"})
    assert genesis.embeds[0]["title"] == "Block 0"
    assert field(genesis.embeds[0], "Confirmations") == "4"
    assert "No transfers" in genesis.embeds[0]["description"]


async def test_block_refusals(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 1)
    height_before = state(p).height
    cases = {
        "99": "There is no block 99 yet: the chain is at height 1.",
        "ffffff": "No block's hash starts with `ffffff`",
        "abc": "at least 6 hex digits",
        "hello!": "neither a block height nor a hex hash",
        "#abc": "neither a block height nor a hex hash",
    }
    for query, expected in cases.items():
        h = await answer(p, w.bob, "chain block", {"query": query})
        assert expected in error_text(h), query
    with pytest.raises(SandboxError):  # longer than any hash: Discord refuses it before the bot sees it
        await p.run(w.bob, "chain block", {"query": "0" * 67})
    assert state(p).height == height_before


class PrefixStore:
    """The one store query resolve_block_height makes, over a fixed list of hashes."""

    def __init__(self, hashes):
        self.hashes = hashes

    async def find_blocks_by_hash_prefix(self, chain_id, prefix, limit):
        found = [(h, b) for h, b in enumerate(self.hashes) if hash_to_display(b).startswith(prefix)]
        return len(found), sorted(found, reverse=True)[:limit]


async def test_hash_prefix_shared_by_several_blocks_is_refused():
    hashes = [bytes.fromhex("aa" * 32)[::-1], bytes.fromhex("abcdef01" + "00" * 28)[::-1],
              bytes.fromhex("abcdef02" + "00" * 28)[::-1]]
    store = PrefixStore(hashes)
    with pytest.raises(UserFacingError, match=r"starts the hashes of 2 blocks \(#1, #2\): type more"):
        await resolve_block_height(store, 1, 2, "abcdef")
    assert await resolve_block_height(store, 1, 2, "abcdef02") == 2
    # Digits with a leading zero are a hash prefix, not a height.
    with pytest.raises(UserFacingError, match="No block's hash starts with `000001`"):
        await resolve_block_height(store, 1, 2, "000001")


async def test_block_autocomplete_lists_recent_blocks_and_filters(playground):
    p, w = playground, playground.world
    g, ch = w.genesis, w.general
    # Before the chain exists there is nothing to offer (and typing creates nothing).
    empty = await p.sb.autocomplete(g, ch, w.bob, "chain block", {"query": ""}, focused="query")
    assert empty.choices == []
    assert not p.bot.services.node.has_chain(guild_id(p))

    await mine_blocks(p, 2)
    node = p.bot.services.node
    for _ in range(25):  # past Discord's 25 choices, quicker through the engine than through /mine
        assert (await node.mine(guild_id(p), "filler")).found
    hashes = [hash_to_display(h) for h in state(p).hashes]
    assert len(hashes) == 28

    newest = await p.sb.autocomplete(g, ch, w.bob, "chain block", {"query": ""}, focused="query")
    assert len(newest.choices) == 25
    assert newest.choices[0] == {"name": f"#27 {hashes[27][:16]}…", "value": "27"}
    assert [c["value"] for c in newest.choices] == [str(h) for h in range(27, 2, -1)]

    by_height = await p.sb.autocomplete(g, ch, w.bob, "chain block", {"query": "2"}, focused="query")
    values = [c["value"] for c in by_height.choices]
    assert {"2", "20", "27"} <= set(values)
    for c in by_height.choices:
        assert c["value"].startswith("2") or hashes[int(c["value"])].startswith("2"), c

    prefix = hashes[1][:8]
    by_hash = await p.sb.autocomplete(g, ch, w.bob, "chain block", {"query": prefix}, focused="query")
    assert [c["value"] for c in by_hash.choices] == ["1"]

    picked = await answer(p, w.bob, "chain block", {"query": by_hash.choices[0]["value"]})
    assert field(picked.embeds[0], "Hash") == f"`{hashes[1]}`"


# --- /chain tx ------------------------------------------------------------------


async def test_tx_pending_then_confirmed(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 1)
    txid = await pay(p, w.alice, w.bob, 12, fee=1)

    pending = await answer(p, w.carol, "chain tx", {"txid": txid})
    embed = pending.embeds[0]
    assert not pending.ephemeral
    assert embed["title"] == "⏳ Pending transaction"
    assert field(embed, "From") == w.alice.mention
    assert field(embed, "To") == w.bob.mention
    assert field(embed, "Amount") == "12 pts"
    assert field(embed, "Fee") == "1 pts"
    assert field(embed, "Transaction") == f"`{txid}`"

    await mine_blocks(p, 1)
    confirmed = await answer(p, w.carol, "chain tx", {"txid": txid})
    embed = confirmed.embeds[0]
    assert embed["title"] == "✅ Confirmed transaction"
    assert embed["description"] == "In block 2 at position 1 (1 confirmation)."
    assert field(embed, "From") == w.alice.mention
    assert field(embed, "To") == w.bob.mention
    assert field(embed, "Amount") == "12 pts"
    assert field(embed, "Fee") == "1 pts"
    assert field(embed, "Block hash") == f"`{hash_to_display(state(p).hashes[2])}`"

    block = await p.bot.services.node.store.blocks.get_block(guild_id(p), height=1)
    reward = await answer(p, w.carol, "chain tx", {"txid": hash_to_display(block.txids()[0])})
    embed = reward.embeds[0]
    assert embed["description"] == "In block 1 at position 0 (2 confirmations)."
    assert "mining reward" in field(embed, "From")
    assert field(embed, "To") == w.alice.mention
    assert field(embed, "Amount") == "50 pts"


async def test_tx_refusals(playground):
    p, w = playground, playground.world
    unknown = await answer(p, w.bob, "chain tx", {"txid": "ab" * 32})
    assert "No transaction `abababababababab…`" in error_text(unknown)
    malformed = await answer(p, w.bob, "chain tx", {"txid": "zz" * 32})
    assert "is up to 64 hex digits" in error_text(malformed)
    too_short = await answer(p, w.bob, "chain tx", {"txid": "abc12"})
    assert "at least 6 hex digits of the transaction id (you gave 5)" in error_text(too_short)
    with pytest.raises(SandboxError):  # longer than an id in backticks: Discord refuses it before the bot sees it
        await p.run(w.bob, "chain tx", {"txid": "a" * 67})


async def test_tx_by_the_prefix_wallet_pay_shows_pending_and_confirmed(playground):
    """Issue 9 item 7: the README shows `/chain tx` with a prefix; it needed all 64 digits."""
    p, w = playground, playground.world
    await mine_blocks(p, 1)
    txid = await pay(p, w.alice, w.bob, 12, fee=1)
    for typed in (txid[:6], txid[:12].upper(), f"`{txid[:12]}…`"):
        pending = await answer(p, w.carol, "chain tx", {"txid": typed})
        assert pending.embeds[0]["title"] == "⏳ Pending transaction", typed
        assert field(pending.embeds[0], "Transaction") == f"`{txid}`"
    await mine_blocks(p, 1)
    confirmed = await answer(p, w.carol, "chain tx", {"txid": txid[:8]})
    assert confirmed.embeds[0]["title"] == "✅ Confirmed transaction"
    assert field(confirmed.embeds[0], "Transaction") == f"`{txid}`"


async def test_tx_prefix_shared_by_several_transactions_lists_them(playground, monkeypatch):
    """A prefix that fits several ids names them instead of picking one. Seventeen ids share a first
    digit by pigeonhole; the minimum length is lowered so one digit is a prefix."""
    p, w = playground, playground.world
    # The module the bot loaded (discord.py loads an extension as a module object of its own).
    explorer = sys.modules[type(p.bot.get_cog("Explorer")).__module__]
    await mine_blocks(p, 1)
    txids = [await pay(p, w.alice, w.bob, 1 + i) for i in range(8)]
    await mine_blocks(p, 1)
    txids += [await pay(p, w.alice, w.carol, 1 + i) for i in range(7)]
    txids += [
        hash_to_display(t)
        for b in (1, 2)
        for t in (await p.bot.services.node.store.blocks.get_block(guild_id(p), height=b)).txids()[:1]
    ]
    firsts = [t[0] for t in txids]
    shared = max(set(firsts), key=firsts.count)
    assert firsts.count(shared) >= 2
    monkeypatch.setattr(explorer, "MIN_HASH_PREFIX", 1)
    h = await answer(p, w.bob, "chain tx", {"txid": shared})
    text = error_text(h)
    assert f"`{shared}` starts the ids of {firsts.count(shared)} transactions" in text, text
    assert "type more of the id" in text


async def test_tx_autocomplete_offers_pending_then_newest_and_filters_by_what_is_typed(playground):
    p, w = playground, playground.world
    g, ch = w.genesis, w.general
    await mine_blocks(p, 1)
    confirmed = await pay(p, w.alice, w.bob, 3)
    await mine_blocks(p, 1)
    pending = await pay(p, w.alice, w.carol, 4)

    everything = await p.sb.autocomplete(g, ch, w.bob, "chain tx", {"txid": ""}, focused="txid")
    values = [c["value"] for c in everything.choices]
    assert values[0] == pending and "pending" in everything.choices[0]["name"]
    assert confirmed in values
    assert len(values) == len(set(values))

    typed = await p.sb.autocomplete(g, ch, w.bob, "chain tx", {"txid": confirmed[:5]}, focused="txid")
    assert [c["value"] for c in typed.choices][0] == confirmed
    assert all(c["value"].startswith(confirmed[:5]) for c in typed.choices)
    assert "block 2" in typed.choices[0]["name"]

    nonsense = await p.sb.autocomplete(g, ch, w.bob, "chain tx", {"txid": "xyz"}, focused="txid")
    assert nonsense.choices == []
    picked = await answer(p, w.bob, "chain tx", {"txid": typed.choices[0]["value"]})
    assert picked.embeds[0]["title"] == "✅ Confirmed transaction"


# --- /chain difficulty and /chain verify ------------------------------------------


async def test_difficulty_before_and_after_a_retarget_and_verify_counts(playground):
    p, w = playground, playground.world
    before = await answer(p, w.bob, "chain difficulty")
    embed = before.embeds[0]
    assert embed["description"].startswith("No retarget yet: the first comes at height 10")
    assert field(embed, "Recent retargets (bits changed)") == "none yet"
    assert field(embed, "Next retarget") == "at height 10, in 10 blocks"

    await mine_blocks(p, 5)
    await pay(p, w.alice, w.bob, 30, fee=3)
    await pay(p, w.alice, w.carol, 5)
    await mine_blocks(p, 6)
    s = state(p)
    assert s.height == 11
    old_bits, new_bits = s.headers[9].bits, s.headers[10].bits
    assert new_bits != old_bits  # blocks in milliseconds: the target must have shrunk

    after = await answer(p, w.bob, "chain difficulty")
    embed = after.embeds[0]
    assert embed["description"].startswith("At height 10, blocks came ")
    assert "faster than the target, so the target shrank by 75% (mining got harder)." in embed["description"]
    assert field(embed, "Current bits") == f"`{new_bits:#010x}`"
    assert field(embed, "Target spacing") == "1 min per block"
    assert field(embed, "Retarget window") == "every 10 blocks (10 min)"
    assert field(embed, "Next retarget") == "at height 20, in 9 blocks"
    assert field(embed, "This window so far").startswith("1 block,")
    assert field(embed, "Recent retargets (bits changed)") == (
        f"height 10: `{old_bits:#010x}` → `{new_bits:#010x}` (target -75%, harder)"
    )
    assert int(field(embed, "Difficulty").replace(",", "")) > 1

    h = await p.run(w.carol, "chain verify")
    assert h.deferred  # a replay can take a while: it acknowledges first
    await h.wait_response(15)
    embed = h.embeds[0]
    assert embed["title"] == "✅ Chain verified"
    counts = {name: field(embed, name) for name in
              ("Blocks", "Proofs of work", "Retargets", "Transfers", "Signatures", "Accounts")}
    assert counts == {"Blocks": "12", "Proofs of work": "11", "Retargets": "1", "Transfers": "2",
                      "Signatures": "2", "Accounts": "4"}  # three members and the faucet
    # 11 blocks' rewards and the faucet's 100,000 pts allocated at genesis.
    assert field(embed, "Supply") == "100,550 pts, exactly what was minted"
    assert field(embed, "Tip") == f"`{hash_to_display(s.tip_hash)}`"
    assert "in " in embed["description"] and "s: every header" in embed["description"]


async def test_verify_reports_the_height_and_reason_of_a_failure(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 3)
    # Someone edits the database behind the engine's back: block 2's reward grows by one point.
    db = p.bot.store.db
    block = await p.bot.services.node.store.blocks.get_block(guild_id(p), height=2)
    forged = replace(block, coinbase=replace(block.coinbase, amount=block.coinbase.amount + 1))
    async with db.transaction(guild_id(p)) as tx:
        await tx.execute(
            "UPDATE blocks SET raw = ? WHERE chain_id = ? AND height = 2", (forged.serialize(), guild_id(p))
        )

    h = await p.run(w.bob, "chain verify")
    await h.wait_response(15)
    text = h.embeds[0]["description"]
    assert text.startswith("❌ block 2: ") and "merkle" in text.lower(), text

    async with db.transaction(guild_id(p)) as tx:
        await tx.execute(
            "UPDATE blocks SET raw = ? WHERE chain_id = ? AND height = 2", (block.serialize(), guild_id(p))
        )
        await tx.execute("UPDATE accounts SET balance = balance + 1 WHERE chain_id = ?", (guild_id(p),))
    h = await p.run(w.bob, "chain verify")
    await h.wait_response(15)
    # The miner's account and the faucet's (funded at genesis) were both edited.
    assert h.embeds[0]["description"] == "❌ block 3: stored balances differ from the replay for 2 accounts"


async def test_verify_refuses_a_second_run_while_one_is_running(playground):
    p, w = playground, playground.world
    await mine_blocks(p, 1)
    # Hold the first verification's acknowledgement so the second arrives while it runs.
    p.sb.faults.delay("POST /interactions/*/callback", 1.0, times=1)
    first = await p.sb.invoke(w.genesis, w.general, w.alice, "chain verify")
    explorer = p.bot.get_cog("Explorer")
    await p.sb.wait_until(lambda: guild_id(p) in explorer._verifying or None, timeout=5)
    second = await answer(p, w.bob, "chain verify")
    assert "already running" in error_text(second)
    await first.wait_response(15)
    assert first.embeds[0]["title"] == "✅ Chain verified"


# --- /chain export --------------------------------------------------------------


async def test_export_verifies_offline_and_a_tampered_copy_does_not(playground, tmp_path):
    p, w = playground, playground.world
    await mine_blocks(p, 2)
    await pay(p, w.alice, w.bob, 20, fee=1)
    await mine_blocks(p, 1)

    h = await p.run(w.bob, "chain export")
    assert h.deferred
    message = await h.wait_response(15)
    (attachment,) = message.attachments
    assert attachment.filename == f"chain-{guild_id(p)}-3.json"
    description = message.embeds[0]["description"]
    assert f"`python -m chain verify {attachment.filename}`" in description
    assert "Blocks 0 to 3" in description

    document = json.loads(attachment.data)
    params, chain_id, blocks = import_chain(document)
    consensus = import_consensus(document)
    assert consensus is not None and consensus.mode == "pow"  # new chains can stake, and merge
    _, report = verify_chain(
        params, chain_id, blocks, p.bot.services.node.now(), None, import_param_changes(document), consensus,
        import_consensus_changes(document),
    )
    assert (report.blocks, report.transfers, report.supply) == (4, 1, 100_150)  # with the faucet's genesis fund
    assert report.tip_hash == hash_to_display(state(p).tip_hash)

    # Block 3 pays bob 20 points; the copy says 2,000.
    tampered = dict(document, blocks=list(document["blocks"]))
    block = Block.deserialize(bytes.fromhex(tampered["blocks"][3]))
    forged = replace(block, transfers=(replace(block.transfers[0], amount=2_000),))
    tampered["blocks"][3] = forged.serialize().hex()
    with pytest.raises(VerificationError) as failure:
        verify_chain(*import_chain(tampered), p.bot.services.node.now(), None, [], consensus)
    assert failure.value.height == 3

    # And the command the reply names agrees, on both files.
    good, bad = tmp_path / attachment.filename, tmp_path / "tampered.json"
    good.write_bytes(attachment.data)
    bad.write_text(json.dumps(tampered))
    ok = subprocess.run([sys.executable, "-m", "chain", "verify", str(good)], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: verified 4 blocks"), ok.stdout + ok.stderr
    ko = subprocess.run([sys.executable, "-m", "chain", "verify", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert ko.returncode == 2 and "block 3" in ko.stdout + ko.stderr, ko.stdout + ko.stderr
