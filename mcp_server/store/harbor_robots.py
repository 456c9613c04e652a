"""The tenants' Harbor robot accounts (the worker's `RobotStore`): one row per tenant and Harbor, read and
written only under a session advisory lock, so two workers never refresh one robot's secret at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from mcp_server.store.pool import Connection, PgPool

ROBOT_LOCK = 0x68617262  # "harb": one robot ensure per tenant and Harbor at a time across workers


class PgRobotSlot:
    """One tenant's `harbor_robots` row, read and written on the connection that holds its lock."""

    def __init__(self, conn: Connection, tenant: str, harbor_url: str) -> None:
        self._conn, self._tenant, self._harbor_url = conn, tenant, harbor_url

    async def get(self) -> tuple[str, bytes] | None:
        cur = await self._conn.execute(
            "SELECT r.robot_name, r.ciphertext FROM harbor_robots r JOIN tenants t ON t.id = r.tenant_id "
            "WHERE t.name = %s AND r.harbor_url = %s", (self._tenant, self._harbor_url),
        )
        row = await cur.fetchone()
        return (row["robot_name"], bytes(row["ciphertext"])) if row else None

    async def put(self, project: str, robot: str, ciphertext: bytes) -> None:
        await self._conn.execute(
            "WITH t AS (INSERT INTO tenants (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
            "RETURNING id) "
            "INSERT INTO harbor_robots (tenant_id, harbor_url, project, robot_name, ciphertext) "
            "SELECT t.id, %s, %s, %s, %s FROM t ON CONFLICT (tenant_id, harbor_url) DO UPDATE SET "
            "project = EXCLUDED.project, robot_name = EXCLUDED.robot_name, ciphertext = EXCLUDED.ciphertext, "
            "updated_at = now()",
            (self._tenant, self._harbor_url, project, robot, ciphertext),
        )


class PgHarborRobots(PgPool):
    @asynccontextmanager
    async def robot_slot(self, tenant: str, harbor_url: str, poll: float = 0.2) -> AsyncIterator[PgRobotSlot]:
        """The tenant's robot row under a session advisory lock. A waiter polls with `pg_try_advisory_lock`
        and gives its connection back between tries, so waiting deploys never drain the pool the lock holder
        needs."""
        key = f"{tenant}\n{harbor_url}"
        while True:
            async with self._connection() as conn:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS locked", (ROBOT_LOCK, key))
                row = await cur.fetchone()
                if row is not None and row["locked"]:
                    try:
                        async with self._holding(conn):  # a store query inside the slot runs on its connection
                            yield PgRobotSlot(conn, tenant, harbor_url)
                    finally:
                        try:
                            await conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (ROBOT_LOCK, key))
                        except psycopg.Error:
                            await conn.close()  # the pool drops it, and the session's lock goes with it
                    return
            await asyncio.sleep(poll)
