"""The test session's own PostgreSQL server: real, local only, one empty database per test."""

from __future__ import annotations

import asyncpg


async def test_server_is_local_and_each_test_gets_an_empty_database(postgres_url: str) -> None:
    assert "@127.0.0.1:" in postgres_url
    connection = await asyncpg.connect(postgres_url)
    try:
        version = await connection.fetchval("SHOW server_version_num")
        tables = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        address = await connection.fetchval("SELECT host(inet_server_addr())")
    finally:
        await connection.close()
    assert int(version) >= 150000
    assert tables == []
    assert address == "127.0.0.1"
