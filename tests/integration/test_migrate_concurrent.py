"""`deploy-mcp migrate` from several pods at once (the migrate Job, an init step per replica): on a fresh
database two concurrent runs both succeed, the migrations are applied exactly once between them (the runner
holds a Postgres advisory lock), and a third run finds nothing left to apply."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from mcp_server.store import migrate, migration_files


@pytest.fixture
def fresh_database(pg_server_url: str) -> Iterator[str]:
    name = f"m_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_two_concurrent_migrations_apply_each_file_once(fresh_database: str) -> None:
    first, second = await asyncio.gather(migrate(fresh_database), migrate(fresh_database))
    names = [name for _, name, _ in migration_files()]
    assert sorted(first + second) == sorted(names), (first, second)  # each applied once, by one of them
    assert [] in (first, second)  # the second waited on the lock, then found the schema up to date
    assert await migrate(fresh_database) == []
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [v for v, _, _ in migration_files()]
