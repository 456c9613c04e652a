"""The connection pool every part of the store shares, and the one place a lost database becomes
`StoreUnavailable`.

Each aggregate's queries are a class over `PgPool` (see `mcp_server/store/__init__.py`, which composes them
into `PgStore`), so they share one psycopg async pool and the two query helpers below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


class PgPool:
    """The pool and the query helpers the aggregates' queries run on."""

    def __init__(self, pool: AsyncConnectionPool[Connection]) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str, min_size: int = 1, max_size: int = 10) -> Self:
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},
        )
        await pool.open(wait=True, timeout=30)
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled connection (autocommit; open `conn.transaction()` for more than one statement)."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as e:
            if _unreachable(e):
                raise StoreUnavailable(f"the database cannot be reached: {type(e).__name__}: {e}") from e
            raise

    async def _all(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        async with self._connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def _one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        rows = await self._all(sql, *params)
        return rows[0] if rows else None
