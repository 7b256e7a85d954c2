"""The façade cogs call (chain/playground.py) and the cog base's interaction_check (cogs/errors.py)."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

import pytest
from discord import app_commands

from chain.adapters.beacon_node import BeaconNode
from chain.adapters.node import Node
from chain.adapters.signer import ValidatorSigner
from chain.adapters.storage import Store
from chain.errors import ChaosModeOffError, NoValidatorError
from chain.mode import Mode
from chain.params import REGTEST
from chain.playground import Playground
from chain.pos.beacon import ConsensusConfig
from cogs.errors import PlaygroundCog, describe_error

MASTER = bytes(range(32))
CHAIN = 21
CONFIG = ConsensusConfig(mode="pow", slot_duration_s=2, slots_per_epoch=4, checkpoint_interval_blocks=4)


class Defaults:
    default_params = REGTEST
    default_consensus = CONFIG

    def __init__(self) -> None:
        self.rate_asked = 0

    async def hash_rate(self) -> int:
        self.rate_asked += 1
        await asyncio.sleep(0)  # a measurement takes a while: others arrive meanwhile
        return 1


@pytest.fixture
async def playground(tmp_path):
    store = await Store.open(tmp_path / "facade.sqlite3")
    node = Node(store, clock=lambda: 1_800_000_000.0, randomness=os.urandom, master_key=MASTER)
    await node.load()
    beacon = BeaconNode(node, ValidatorSigner(store, clock=lambda: 1_800_000_000.0, randomness=os.urandom,
                                              master_key=MASTER))
    defaults = Defaults()
    yield Playground(node, beacon, defaults), node, defaults
    await store.close()


async def test_commands_arriving_at_once_on_a_new_server_create_one_chain(playground):
    facade, node, defaults = playground
    states = await asyncio.gather(*(facade.ensure_chain(CHAIN) for _ in range(5)))
    assert len({s.genesis_hash for s in states}) == 1
    assert defaults.rate_asked == 1 and node.chain_ids() == [CHAIN]


async def test_wallet_view_and_pay_go_through_one_call(playground):
    facade, node, _ = playground
    wallet = await facade.wallet(CHAIN, "alice")  # creates the chain on first use
    assert wallet.balance == 0 and wallet.pending == () and wallet.next_nonce == 0
    assert wallet.address == await node.address(CHAIN, "alice")


async def test_a_double_vote_is_refused_for_chaos_mode_before_anything_else(playground):
    """The one chaos check (BeaconNode) comes first: a member without a validator asking for a double
    vote hears about chaos mode, as the cog used to say before it asked the engine."""
    facade, _, _ = playground
    await facade.switch_mode(CHAIN, Mode.POS, "alice")
    with pytest.raises(ChaosModeOffError, match="double_vote only works in chaos mode") as refused:
        await facade.attest(CHAIN, "carol", double_vote=True)
    assert refused.value.action == "double_vote"
    with pytest.raises(NoValidatorError):
        await facade.attest(CHAIN, "carol")
    with pytest.raises(ChaosModeOffError, match="equivocate only works in chaos mode") as refused:
        await facade.equivocate(CHAIN, "alice")
    assert refused.value.action == "equivocate"


class ChainCog(PlaygroundCog):
    def __init__(self, facade: Playground) -> None:
        self.playground = facade


def interaction(guild_id: int | None, **extras) -> SimpleNamespace:
    return SimpleNamespace(guild_id=guild_id, command=SimpleNamespace(name="test", extras=extras))


async def test_interaction_check_refuses_dms_and_creates_the_chain_first(playground):
    facade, node, _ = playground
    cog = ChainCog(facade)
    with pytest.raises(app_commands.NoPrivateMessage):
        await cog.interaction_check(interaction(None))
    assert await cog.interaction_check(interaction(CHAIN, chain=False))
    assert not node.has_chain(CHAIN)  # an opted-out command checks its input first
    assert await cog.interaction_check(interaction(CHAIN))
    assert node.has_chain(CHAIN)


async def test_interaction_check_turns_an_engine_refusal_into_the_commands_reply(playground):
    """Raised from the check, a bare ChainError would skip cog_app_command_error (the tree only
    answers AppCommandError): wrapped, the member gets the engine's message as from a command body."""
    facade, node, _ = playground
    node._offline[CHAIN] = "the file is damaged"  # what load() records for a chain it could not read
    with pytest.raises(app_commands.CommandInvokeError) as raised:
        await ChainCog(facade).interaction_check(interaction(CHAIN))
    assert "could not be loaded (the file is damaged)" in describe_error(raised.value)
    assert not node.has_chain(CHAIN)


async def test_a_chain_replaced_under_the_beacon_node_takes_its_consensus_memory_with_it(playground):
    """One runtime per server: the beacon node's memory of a chain (who voted when, candidates, owners)
    lives in the node's runtime of it. Before, it sat in a dict of its own, and a chain replaced without
    BeaconNode.reset kept the old chain's memory (here: a vote the new chain never saw)."""
    facade, node, _ = playground
    await facade.switch_mode(CHAIN, Mode.POS, "alice")
    beacon = facade._beacon
    assert beacon is not None
    (await beacon.chains.runtime(CHAIN)).voted[0] = 99
    await node.replace_chain(CHAIN, REGTEST, initial_bits=0x207FFFFF, consensus=CONFIG)
    assert (await beacon.chains.runtime(CHAIN)).voted == {}
    assert node.chain(CHAIN).consensus is await beacon.chains.runtime(CHAIN)


async def test_two_admins_turning_chaos_mode_on_at_once_hear_once_that_it_was_off(playground):
    """What chaos mode was is read in the transaction that sets it: before, both toggles read "off"
    first and both admins were told they had turned it on."""
    facade, _, _ = playground
    await facade.ensure_chain(CHAIN)
    was = await asyncio.gather(facade.set_chaos_mode(CHAIN, True), facade.set_chaos_mode(CHAIN, True))
    assert sorted(was) == [False, True]
    assert await facade.chaos_mode(CHAIN)


async def test_a_lesson_is_checked_under_the_lock_its_reward_is_paid_under(playground, monkeypatch):
    """/learn check: the check and the reward are one step under the chain's lock, so a reset (or a
    block) cannot land between a check on the old chain and a payment on the new one. A check run
    before the lock, as the cog first did, sees ``locked() is False`` here."""
    facade, node, _ = playground
    await facade.ensure_chain(CHAIN)
    seen: list[tuple[bool, bool]] = []
    real = Playground._lesson_result

    async def spy(self, guild_id, owner, lesson_id, start_height, runtime, *rest):
        seen.append((runtime is node.chain(CHAIN), runtime.lock.locked()))
        return await real(self, guild_id, owner, lesson_id, start_height, runtime, *rest)

    monkeypatch.setattr(Playground, "_lesson_result", spy)
    recorded: list[int] = []

    async def record(tx, txid, paid):
        recorded.append(paid)

    result, reward = await facade.complete_lesson(CHAIN, "alice", "mine", start_height=0, record=record)
    assert seen == [(True, True)]
    assert not result.done and reward is None and recorded == []

    node.chain(CHAIN).blocks_mined[await node.address(CHAIN, "alice")] += 1
    result, reward = await facade.complete_lesson(CHAIN, "alice", "mine", start_height=0, record=record)
    assert seen[-1] == (True, True)
    assert result.done and reward is not None and len(recorded) == 1
