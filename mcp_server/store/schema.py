"""The schema: the migrations runner, which applies the plain SQL files of `migrations/` beside this module in
order, once each, and records them in `schema_migrations`.

It runs on its own connection rather than the store's pool: `deploy-mcp migrate` and the dev harness call it
before any store is open. (Not named `migrate.py`: the package exports the function `migrate`, which would
hide a submodule of that name.)
"""

from __future__ import annotations

from importlib import resources

import psycopg

MIGRATION_LOCK = 0x646D6370  # "dmcp": one migrator at a time across processes


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every file in mcp_server/store/migrations, in order."""
    out = []
    for f in resources.files("mcp_server.store").joinpath("migrations").iterdir():
        if f.name.endswith(".sql"):
            version = int(f.name.split("_", 1)[0])
            out.append((version, f.name, f.read_text()))
    return sorted(out)


async def migrate(url: str) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction. Returns the names applied."""
    applied: list[str] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {r[0] for r in await cur.fetchall()}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied
