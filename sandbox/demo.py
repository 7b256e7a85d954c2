"""A small ready-made world for interactive use and smoke tests."""

from __future__ import annotations

from dataclasses import dataclass

from .models import Channel, Guild, Member
from .server import Sandbox

# (shard_id, num_shards) of Genesis Guild and Fork Town: different shards for a two-shard bot.
DEMO_SHARDS = ((0, 2), (1, 2))


@dataclass
class DemoWorld:
    genesis: Guild
    fork: Guild
    general: Channel
    blocks: Channel
    fork_general: Channel
    alice: Member
    bob: Member
    carol: Member
    bob_in_fork: Member
    dave_in_fork: Member


def populate_demo(sb: Sandbox) -> DemoWorld:
    """Two guilds; alice administers Genesis (MANAGE_GUILD), bob and carol are plain members.

    bob is in both guilds (same user id), which is what ``bob@guild2:`` in the terminal uses.
    Their ids fall on different shards when the bot runs two (Genesis on shard 0, Fork Town on
    shard 1), so a sharded bot's routing is exercised by the demo itself.
    """
    genesis = sb.add_guild("Genesis Guild", shard=DEMO_SHARDS[0])
    general = sb.add_channel(genesis, "general", topic="Talk about the chain")
    blocks = sb.add_channel(genesis, "blocks", topic="New blocks are announced here")
    alice = sb.add_member(genesis, "alice", permissions={"manage_guild": True, "manage_webhooks": True})
    bob = sb.add_member(genesis, "bob")
    carol = sb.add_member(genesis, "carol")

    fork = sb.add_guild("Fork Town", shard=DEMO_SHARDS[1])
    fork_general = sb.add_channel(fork, "general")
    sb.add_channel(fork, "mempool")
    bob_in_fork = sb.add_member(fork, "bob", permissions={"manage_guild": True})
    dave_in_fork = sb.add_member(fork, "dave")
    return DemoWorld(genesis, fork, general, blocks, fork_general, alice, bob, carol, bob_in_fork, dave_in_fork)
