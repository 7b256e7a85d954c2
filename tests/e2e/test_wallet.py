"""/wallet and /leaderboard end to end, and two servers whose chains stay apart."""

import pytest

from sandbox import SandboxError
from tests.e2e.text import reply_text


async def mine_one(p, member, guild=None):
    h = await p.run(member, "mine start", guild=guild)
    await h.wait_for(lambda h: "found!" in reply_text(h), timeout=20)
    return h


async def no_cooldown(p, guild):
    await p.bot.services.server_settings_store.replace(guild.id, {"cooldown_s": 0})


async def test_pay_confirms_in_the_next_block_and_shows_in_history(playground):
    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    await mine_one(p, w.alice)

    paid = await p.run(w.alice, "wallet pay", {"member": w.bob, "amount": 20, "fee": 2})
    text = reply_text(paid)
    assert not paid.ephemeral and "Payment sent" in text and "20 pts" in text and "Pending" in text

    balance = await p.run(w.alice, "wallet balance")
    assert balance.ephemeral
    assert "50 pts" in reply_text(balance) and "22 pts in 1 transfer" in reply_text(balance)

    await mine_one(p, w.carol)
    node = p.bot.services.node
    assert node.account(w.genesis.id, await node.address(w.genesis.id, str(w.bob.id))).balance == 20

    history = await p.run(w.bob, "wallet history")
    assert history.ephemeral and f"+20 pts from <@{w.alice.id}>" in reply_text(history)
    mine = await p.run(w.alice, "wallet history")
    assert f"−20 pts to <@{w.bob.id}> (fee 2)" in reply_text(mine) and "mining reward" in reply_text(mine)


async def test_invalid_payments_are_ephemeral_and_change_nothing(playground):
    p, w = playground, playground.world
    await mine_one(p, w.alice)
    node = p.bot.services.node
    before = dict(node.chain(w.genesis.id).state.ledger.items()), len(node.chain(w.genesis.id).mempool)

    poor = await p.run(w.bob, "wallet pay", {"member": w.alice, "amount": 5})
    assert poor.ephemeral and "never held any points" in reply_text(poor)

    too_much = await p.run(w.alice, "wallet pay", {"member": w.bob, "amount": 51})
    assert too_much.ephemeral and "does not cover amount 51" in reply_text(too_much)

    me = await p.run(w.alice, "wallet pay", {"member": w.alice, "amount": 1})
    assert me.ephemeral and "can't pay yourself" in reply_text(me)

    robot = await p.run(w.alice, "wallet pay", {"member": p.sb.bot_member(w.genesis), "amount": 1})
    assert robot.ephemeral and "Bots can't hold points" in reply_text(robot)

    after = dict(node.chain(w.genesis.id).state.ledger.items()), len(node.chain(w.genesis.id).mempool)
    assert after == before


async def test_amount_limits_are_carried_by_the_command_definition(playground):
    p, w = playground, playground.world
    with pytest.raises(SandboxError):
        await p.sb.invoke(w.genesis, w.general, w.alice, "wallet pay", {"member": w.bob, "amount": 0})
    wallet = next(c for c in p.sb.commands.global_commands if c["name"] == "wallet")
    pay = next(o for o in wallet["options"] if o["name"] == "pay")
    amount = next(o for o in pay["options"] if o["name"] == "amount")
    assert amount["min_value"] == 1 and amount["description"]


async def test_leaderboard_by_balance_and_by_blocks(playground):
    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    await mine_one(p, w.alice)
    await mine_one(p, w.alice)
    await mine_one(p, w.bob)
    board = await p.run(w.carol, "leaderboard")
    text = reply_text(board)
    assert text.index(f"<@{w.alice.id}> — 100 pts") < text.index(f"<@{w.bob.id}> — 50 pts")
    blocks = await p.run(w.carol, "leaderboard", {"by": "blocks"})
    assert f"<@{w.alice.id}> — 2 blocks" in reply_text(blocks)


async def test_two_servers_have_isolated_chains(playground):
    p, w = playground, playground.world
    await mine_one(p, w.alice)
    await mine_one(p, w.bob_in_fork, guild=w.fork)
    node = p.bot.services.node
    genesis, fork = node.chain(w.genesis.id).state, node.chain(w.fork.id).state
    assert genesis.height == 1 and fork.height == 1
    assert genesis.hashes[0] != fork.hashes[0]
    bob_here = await node.address(w.genesis.id, str(w.bob.id))
    bob_there = await node.address(w.fork.id, str(w.bob.id))
    assert bob_here != bob_there
    assert node.account(w.genesis.id, bob_here).balance == 0
    assert node.account(w.fork.id, bob_there).balance == 50
    balance = await p.run(w.bob, "wallet balance")
    assert "Balance\n0 pts" in reply_text(balance)


async def test_200_payments_at_once_every_acknowledged_one_confirms(playground):
    """Issue 8's acceptance: one member fires 200 payments at the same moment. Before the fix,
    35 were acknowledged and 27 of those vanished (replaced by a payment reusing their nonce)."""
    import asyncio
    import re

    p, w = playground, playground.world
    await no_cooldown(p, w.genesis)
    await mine_one(p, w.alice)
    node = p.bot.services.node
    chain = w.genesis.id
    alice = await node.address(chain, str(w.alice.id))
    members = [w.bob, w.carol]
    handles = [
        await p.sb.invoke(w.genesis, w.general, w.alice, "wallet pay",
                          {"member": members[i % 2], "amount": 1, "fee": i % 3})
        for i in range(200)
    ]
    await asyncio.gather(*(h.wait_ack(10) for h in handles))
    sent = [h for h in handles if not h.ephemeral]
    refused = [h for h in handles if h.ephemeral]
    assert sent and len(sent) + len(refused) == 200
    for h in refused:
        assert "❌" in reply_text(h) and "Something went wrong" not in reply_text(h), reply_text(h)
    txids = {re.search(r"`([0-9a-f]{64})`", reply_text(h)).group(1) for h in sent}
    assert len(txids) == len(sent)  # no two acknowledgements for one transfer

    await mine_one(p, w.carol)  # carol's reward comes with the block: count bob's points below
    for txid in txids:
        stored = await node.store.blocks.get_transaction(chain, bytes.fromhex(txid)[::-1])
        assert stored is not None and stored.height == 2, txid  # every acknowledged payment confirmed
    state = node.chain(chain).state
    fees = sum(int(re.search(r"fee (\d+) pts", reply_text(h)).group(1)) for h in sent)
    assert node.account(chain, alice).balance == 50 - len(sent) - fees
    bob = node.account(chain, await node.address(chain, str(w.bob.id))).balance
    assert bob == len([h for h in sent if f"<@{w.bob.id}>:" in reply_text(h)])
    assert state.total_supply_units() == state.issued_supply_units()


async def test_no_command_is_offered_in_direct_messages(playground):
    """Discord ignores ``guild_only`` on subcommands: it must be on each top-level command (the group)."""
    definitions = playground.sb.commands.global_commands
    assert {c["name"] for c in definitions} >= {
        "mine", "wallet", "chain", "stake", "report", "validators", "leaderboard", "playground"
    }
    offered_in_dms = [
        c["name"] for c in definitions
        # contexts: 0 a server, 1 the bot's DM, 2 a private channel; None means all of them.
        if c.get("dm_permission") is not False and (c.get("contexts") is None or set(c["contexts"]) - {0})
    ]
    assert offered_in_dms == []
