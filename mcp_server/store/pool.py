"""The connection pool every part of the store shares, and the one place a lost database becomes
`StoreUnavailable`.

Each aggregate's queries are a class over `PgPool` (see `mcp_server/store/__init__.py`, which composes them
into `PgStore`), so they share one psycopg async pool and the two query helpers below.

No call path holds one pooled connection while waiting for another: once `max_size` callers did that, each
would hold one and wait for a second forever (psycopg_pool's PoolTimeout after `timeout`). So a transaction
(`_transaction`) or a held connection (the Harbor robot slot) is the task's *held* connection, in a context
variable, and every query of the same store made meanwhile runs on it instead of checking out another one:
a method called inside a transaction (`ensure_project` inside `create_release`) joins that transaction
whichever module it lives in. Tasks started meanwhile inherit the variable, and psycopg serialises their
statements on the one connection, so start none inside a transaction.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Self

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from tools.ports import StoreUnavailable

Connection = psycopg.AsyncConnection[dict[str, Any]]

# Postgres says the server is going away or not accepting connections yet: admin shutdown, crash shutdown,
# cannot connect now. Class 08 (connection exceptions) counts as well; see `_unreachable`.
_GONE = frozenset({"57P01", "57P02", "57P03"})


def _unreachable(e: psycopg.OperationalError) -> bool:
    """The database cannot be reached, as opposed to a query failing on it (a deadlock, a lock timeout, a
    cancelled statement carry their own SQLSTATE). psycopg's own connection failures and the pool's timeout
    carry none."""
    return e.sqlstate is None or e.sqlstate.startswith("08") or e.sqlstate in _GONE


async def check_idle_connection(conn: Connection) -> None:
    """The pool's check before handing out a connection, without a round trip for one nothing happened to.
    An idle connection has nothing to read: a server that shut down (57P01), crashed or was restarted sent its
    FATAL message or closed the socket, which makes the socket readable. Only then is the empty round trip of
    `check_connection` made, which raises for a dead connection (the pool discards it and hands out another)
    and consumes a harmless message (a NOTICE). One round trip per checkout was a third of the store's round
    trips under 100 concurrent calls."""
    if conn.closed or conn.pgconn.socket < 0:
        raise psycopg.OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


# (pool, connection) the current task holds; the pool tells two stores apart (tests open several in one task)
_held: ContextVar[tuple[object, Connection] | None] = ContextVar("deploy_mcp_store_held", default=None)


class PgPool:
    """The pool and the query helpers the aggregates' queries run on."""

    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str, min_size: int = 1, max_size: int = 10, timeout: float = 30.0) -> Self:
        """`timeout`: seconds a query waits for a free connection before the store reports itself unavailable."""
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, timeout=timeout,
            kwargs={"row_factory": dict_row, "autocommit": True},
            # Checked before each use: after a database restart the idle connections are dead, and without the
            # check the first calls after the restart would each fail on one of them.
            check=check_idle_connection,
        )
        await pool.open(wait=True, timeout=30)
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    def _held_connection(self) -> Connection | None:
        held = _held.get()
        return held[1] if held is not None and held[0] is self.pool else None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """The connection this task holds (inside `_transaction` or `_holding`), else a pooled one
        (autocommit; use `_transaction` for more than one statement)."""
        held = self._held_connection()
        if held is not None:
            yield held
            return
        try:
            async with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as e:
            if _unreachable(e):
                raise StoreUnavailable(f"the database cannot be reached: {type(e).__name__}: {e}") from e
            raise

    @asynccontextmanager
    async def _holding(self, conn: Connection) -> AsyncIterator[Connection]:
        """Make `conn` this task's held connection: the store's queries meanwhile run on it."""
        token = _held.set((self.pool, conn))
        try:
            yield conn
        finally:
            _held.reset(token)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """One transaction on one connection, which every query of this store made meanwhile joins (nested:
        a savepoint on the held connection)."""
        held = self._held_connection()
        if held is not None:
            async with held.transaction():
                yield held
            return
        async with self._connection() as conn, conn.transaction(), self._holding(conn):
            yield conn

    async def ping(self, timeout: float) -> None:
        """`SELECT 1` on a pooled connection, waiting at most `timeout` seconds for one (readiness probes:
        `mcp_server.health`). Raises `StoreUnavailable` when the database does not answer."""
        try:
            async with self.pool.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")
        except psycopg.OperationalError as e:  # the pool's timeout is one
            raise StoreUnavailable(f"the database does not answer: {type(e).__name__}") from e

    async def _all(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        async with self._connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def _one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        rows = await self._all(sql, *params)
        return rows[0] if rows else None
