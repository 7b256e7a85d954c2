"""Which servers a process owns: Discord's shard formula on real snowflakes, and the launcher's split."""

from __future__ import annotations

import pytest

from bot.settings import Settings, SettingsError
from bot.shard_scope import (
    ShardScope,
    ShardSpecError,
    format_shard_ids,
    parse_shard_ids,
    shard_of,
    split_shards,
    split_workers,
)

# Real Discord guild ids (Discord API, Discord Developers, discord.py) and the shard Discord routes
# each to, for 2 and 16 shards (worked out from their timestamp bits: id >> 22 is milliseconds since 2015).
SNOWFLAKES = {
    81384788765712384: (0, 2),
    41771983423143937: (0, 6),
    336642139381301249: (1, 9),
}


@pytest.mark.parametrize(("guild_id", "shards"), SNOWFLAKES.items())
def test_the_shard_of_a_real_server_is_discords(guild_id, shards):
    assert (shard_of(guild_id, 2), shard_of(guild_id, 16)) == shards
    # The formula reads the creation time: two ids made in the same millisecond share a shard.
    assert shard_of(guild_id | 0x3FFFFF, 16) == shards[1]


def test_a_process_owns_exactly_its_shards_servers():
    first, second = ShardScope(2, (0,)), ShardScope(2, (1,))
    for guild_id, (on_two, _) in SNOWFLAKES.items():
        assert first.owns(guild_id) == (on_two == 0)
        assert second.owns(guild_id) == (on_two == 1)
        assert first.owns(guild_id) != second.owns(guild_id)  # one owner, never two, never none
    sixteen = [ShardScope(16, run) for run in split_shards(16, 3)]
    for guild_id in (*SNOWFLAKES, 1, 2**63 - 1):
        assert sum(scope.owns(guild_id) for scope in sixteen) == 1


def test_the_unsharded_process_owns_everything():
    scope = ShardScope.everything()
    assert scope.owns_everything and all(scope.owns(g) for g in (*SNOWFLAKES, 0, 1))
    assert Settings(_env_file=None).shard_scope() == scope
    assert Settings(_env_file=None, shard_count=4).shard_scope() == ShardScope(4, (0, 1, 2, 3))


def test_shard_lists_are_read_and_written_alike():
    assert parse_shard_ids("0,2,5-7", 8) == (0, 2, 5, 6, 7)
    assert parse_shard_ids(" 3 , 1 ", 4) == (1, 3)
    for ids in ((0,), (0, 1, 2, 5), (0, 2, 3, 4, 7, 9, 10), (3,)):
        assert parse_shard_ids(format_shard_ids(ids), 16) == ids
    assert format_shard_ids((0, 1, 2, 5)) == "0-2,5"


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty item"), ("0,,1", "empty item"), ("a", "is not one"), ("3-1", "backwards"),
    ("0,0", "twice"), ("0-2,1", "twice"), ("4", "shards are 0..3"),
])
def test_a_bad_shard_list_says_what_is_wrong(text, problem):
    with pytest.raises(ShardSpecError, match=problem):
        parse_shard_ids(text, 4)


def test_settings_refuse_shard_ids_that_do_not_fit_the_count():
    with pytest.raises(SettingsError, match="SHARD_IDS must be empty unless SHARD_COUNT is set"):
        Settings(_env_file=None, shard_ids="0")
    with pytest.raises(SettingsError, match="SHARD_IDS: names shard 2"):
        Settings(_env_file=None, shard_count=2, shard_ids="2")
    with pytest.raises(SettingsError, match="SHARD_COUNT"):
        Settings(_env_file=None, shard_count=0)
    with pytest.raises(ShardSpecError):
        ShardScope(2, (1, 0))


def test_sharding_needs_postgres_and_a_token():
    assert "needs PostgreSQL" in Settings(_env_file=None, shard_count=2).sharding_problem()
    on_postgres = Settings(_env_file=None, shard_count=2, database_url="postgresql://u@127.0.0.1/db")
    assert "needs DISCORD_TOKEN" in on_postgres.sharding_problem()
    assert on_postgres.model_copy(update={"discord_token": "t"}).sharding_problem() is None
    assert Settings(_env_file=None).sharding_problem() is None


def test_shards_and_workers_split_contiguously_at_least_one_each():
    assert split_shards(4, 2) == [(0, 1), (2, 3)]
    assert split_shards(5, 2) == [(0, 1, 2), (3, 4)]
    assert split_shards(3, 3) == [(0,), (1,), (2,)]
    with pytest.raises(ShardSpecError):
        split_shards(2, 3)  # a process without a shard would serve nothing
    assert split_workers(2, 2) == [1, 1]
    assert split_workers(7, 3) == [3, 2, 2]
    assert split_workers(1, 3) == [1, 1, 1]
