"""`deploy-mcp db-dump`: one logical dump of an app's database (pg_dump, custom format), sealed with the backup
key and kept at the backup target like a Plane A archive, below the database's own prefix
(`databases/<tenant>/<project>/<name>/`), then retention by count and age; the run recorded in
`database_backups`, so a failed dump shows in `databases` and `get_app`. `deploy-mcp db-restore`: a dump,
verified whole, back into a database in one transaction.

Runs in the backup job (workflows/render/database.py `backup_pod`) in the platform namespace: the config, the
store URL and the backup Secret come from the platform's own Secrets, the database's role and password from
PGUSER/PGPASSWORD. The archive carries no secrets keys (records `K` absent): a database dump holds only that
database. Decision 0014.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from uuid import UUID

from mcp_server.backup import operations, postgres
from mcp_server.backup.archive import read_archive
from mcp_server.backup.seal import BackupError
from mcp_server.backup.targets import StoredArchive
from mcp_server.settings import Settings
from mcp_server.startup import require_database_url
from mcp_server.store import PgStore
from workflows.domain.database_spec import PORT, database_backup_prefix, dump_name


@dataclass(frozen=True)
class Dumped:
    name: str
    size: int
    target: str
    deleted: list[str]


def expired(stored: list[StoredArchive], keep: int, max_age: timedelta, now: datetime, newest: str) -> list[str]:
    """The dumps retention deletes: beyond the newest `keep`, and older than `max_age`; never `newest` (the one
    just written), so a database always keeps its latest good dump."""
    ordered = sorted(stored, key=lambda a: a.name)  # names sort by time
    doomed = {a.name for a in ordered[: max(len(ordered) - keep, 0)]}
    doomed |= {a.name for a in ordered if a.modified is not None and now - a.modified > max_age}
    return sorted(doomed - {newest})


def _make_prefix(base: str, prefix: str) -> None:
    """A directory target gets the database's subdirectory; the base must exist already (a missing mount must
    fail, not fill the container's own disk)."""
    root = Path(unquote(urlsplit(base).path))
    if not root.is_dir():
        raise BackupError(f"backup target {base} is not a directory (create it, or mount the volume)")
    (root / prefix).mkdir(parents=True, exist_ok=True)


def database_url(host: str, dbname: str, user: str, password: str) -> str:
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{PORT}/{quote(dbname, safe='')}"


async def dump(settings: Settings, database_id: UUID, url: str, kind: str, keep: int, max_age_days: int,
               name: str | None = None) -> Dumped:
    """Dump the database at `url` for the recorded database `database_id`; raises BackupError (recorded)."""
    store = await PgStore.open(require_database_url(settings), min_size=1, max_size=2)
    try:
        row = await store.get_database_by_id(database_id)
        if row is None:
            raise BackupError(f"no database {database_id} is recorded")
        started = datetime.now(UTC)
        name = name or dump_name(started)
        await store.start_database_backup(database_id, kind, name)
        try:
            if not settings.backup.target:
                raise BackupError("no backup target: set backup.target (DEPLOY_MCP_BACKUP__TARGET)")
            prefix = database_backup_prefix(row.tenant, row.project, row.name)
            target_url = f"{settings.backup.target.rstrip('/')}/{prefix}"
            if target_url.startswith("file://"):
                _make_prefix(settings.backup.target, prefix)
            keys = operations.backup_keys(settings)
            target = operations.configured_target(settings, target_url)
            staged = target.staging(name)
            meta: dict[str, str | int] = {"created_at": started.isoformat(),
                                          "platform_version": operations.platform_version(), "schema_version": 0,
                                          "database": row.name, "server_version": ""}
            try:
                size, _ = await asyncio.to_thread(operations._dump_and_seal, url, settings.backup.pg_bin_dir,
                                                  keys[0], [], staged, meta)
                await asyncio.to_thread(target.commit, name, staged)
            except BaseException:
                target.discard(staged)
                raise
        except Exception as e:
            error = str(e) if isinstance(e, BackupError) else f"{type(e).__name__}: {e}"
            await store.finish_database_backup(database_id, name, "failed", None, error[:500])
            raise BackupError(error) from e
        await store.finish_database_backup(database_id, name, "ok", size, None)
        doomed = expired(await asyncio.to_thread(target.list), keep, timedelta(days=max_age_days),
                         datetime.now(UTC), name)
        for old in doomed:
            await asyncio.to_thread(target.delete, old)
        return Dumped(name, size, target.display, doomed)
    finally:
        await store.close()


@dataclass(frozen=True)
class Restored:
    name: str
    source: str


def _restore_into(keys: list[Any], path: Path, url: str, pg_bin: Path | None) -> None:
    """Verify the whole archive first (pass 1, touching nothing), then pipe its dump into pg_restore in one
    transaction, replacing the objects it holds (`--clean --if-exists`): a failure leaves the database as it
    was."""
    with path.open("rb") as f:
        read_archive(keys, f)
    conninfo, env = postgres.connection(url)
    argv = [postgres.tool("pg_restore", pg_bin), "--single-transaction", "--exit-on-error", "--clean",
            "--if-exists", "--no-owner", "--no-privileges", "--no-password", f"--dbname={conninfo}"]
    with tempfile.TemporaryFile() as stderr, path.open("rb") as f, subprocess.Popen(
            argv, stdin=subprocess.PIPE, stderr=stderr, env=env) as proc:
        assert proc.stdin is not None
        try:
            read_archive(keys, f, proc.stdin)
            proc.stdin.close()
        except BaseException:
            proc.kill()
            raise
        code = proc.wait()
        if code != 0:
            raise BackupError(f"pg_restore failed (exit {code}): {postgres.tail(stderr)}")


async def restore(settings: Settings, database_id: UUID, url: str, name: str,
                  source_database_id: UUID | None = None) -> Restored:
    """Restore the dump `name` of database `source_database_id` (default: the same one) into the database at
    `url`. The caller takes the safety dump first (the database workflow does)."""
    store = await PgStore.open(require_database_url(settings), min_size=1, max_size=2)
    try:
        source = await store.get_database_by_id(source_database_id or database_id)
        if source is None:
            raise BackupError(f"no database {source_database_id or database_id} is recorded")
        if not settings.backup.target:
            raise BackupError("no backup target: set backup.target (DEPLOY_MCP_BACKUP__TARGET)")
        prefix = database_backup_prefix(source.tenant, source.project, source.name)
        target = operations.configured_target(settings, f"{settings.backup.target.rstrip('/')}/{prefix}")
        keys = operations.backup_keys(settings)
        with target.local_copy(name) as path:
            await asyncio.to_thread(_restore_into, keys, path, url, settings.backup.pg_bin_dir)
        return Restored(name, target.display)
    finally:
        await store.close()
