"""Plane A backup runs (`backup_runs`): written by `deploy-mcp backup create|restore`, read by `backup list`
and the operator's `whoami`."""

from __future__ import annotations

from mcp_server.store.pool import PgPool
from tools.records import BackupRun

_COLUMNS = "id, kind, started_at, finished_at, target, name, status, size_bytes, error"
ERROR_LIMIT = 2000  # characters of a failure kept: the first lines say what broke


class PgBackupRuns(PgPool):
    async def start_backup_run(self, target: str, name: str | None, kind: str = "create") -> int:
        row = await self._one(
            "INSERT INTO backup_runs (kind, target, name) VALUES (%s, %s, %s) RETURNING id", kind, target, name)
        assert row is not None
        return int(row["id"])

    async def finish_backup_run(self, run_id: int, ok: bool, size_bytes: int | None = None,
                                error: str | None = None) -> None:
        await self._one(
            "UPDATE backup_runs SET finished_at = now(), status = %s, size_bytes = %s, error = %s WHERE id = %s "
            "RETURNING id", "ok" if ok else "failed", size_bytes, error[:ERROR_LIMIT] if error else None, run_id)

    async def record_restore(self, source: str, name: str, size_bytes: int) -> None:
        """After a restore: the run that made the archive is `ok` (the dump saw it `running`), and the restore
        itself gets a row."""
        await self._one(
            "UPDATE backup_runs SET status = 'ok', finished_at = coalesce(finished_at, now()), "
            "size_bytes = coalesce(size_bytes, %s) WHERE kind = 'create' AND name = %s AND status = 'running' "
            "RETURNING id", size_bytes, name)
        await self._one(
            "INSERT INTO backup_runs (kind, target, name, status, size_bytes, finished_at) "
            "VALUES ('restore', %s, %s, 'ok', %s, now()) RETURNING id", source, name, size_bytes)

    async def list_backup_runs(self, limit: int = 20) -> list[BackupRun]:
        rows = await self._all(f"SELECT {_COLUMNS} FROM backup_runs ORDER BY started_at DESC, id DESC LIMIT %s",
                               limit)
        return [BackupRun(**r) for r in rows]

    async def last_backup_runs(self) -> tuple[BackupRun | None, BackupRun | None]:
        """(the last successful backup, the last failed one) of kind `create`."""
        found: list[BackupRun | None] = []
        for status in ("ok", "failed"):
            row = await self._one(
                f"SELECT {_COLUMNS} FROM backup_runs WHERE kind = 'create' AND status = %s "
                "ORDER BY started_at DESC, id DESC LIMIT 1", status)
            found.append(BackupRun(**row) if row else None)
        return found[0], found[1]
