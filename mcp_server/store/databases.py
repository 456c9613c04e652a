"""Databases and their backups as the platform records them (the Kubernetes objects are the database
workflow's). Passwords are stored sealed only; these queries never open them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from mcp_server.store.projects import PgProjects
from tools.ports import RecordConflict
from tools.records import DatabaseBackupRecord, DatabaseRecord


class PgDatabases(PgProjects):
    _DATABASE_SELECT = """
    SELECT d.*, p.name AS project, p.namespace, t.name AS tenant, a.name AS app,
      (SELECT row_to_json(b) FROM (SELECT name, kind, status, size_bytes, started_at, finished_at, error
                                   FROM database_backups WHERE database_id = d.id
                                   ORDER BY started_at DESC LIMIT 1) b) AS last_backup
    FROM databases d JOIN projects p ON p.id = d.project_id JOIN tenants t ON t.id = p.tenant_id
    LEFT JOIN apps a ON a.id = d.app_id AND a.deleted_at IS NULL
    """

    async def create_database(self, tenant: str, project: str, name: str, *, engine: str, version: int,
                              size_gib: int, class_: str, resources: dict[str, Any], ciphertext: bytes,
                              created_by: str) -> tuple[DatabaseRecord, bool]:
        """(database, created): an existing live database of that name is returned as is."""
        p = await self.ensure_project(tenant, project)
        row = await self._one(
            "INSERT INTO databases (project_id, name, engine, version, size_gib, class, resources, "
            "ciphertext, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING RETURNING id",
            p.id, name, engine, version, size_gib, class_, Jsonb(resources), ciphertext, created_by)
        found = await self.get_database(tenant, project, name)
        assert found is not None
        return found, row is not None

    async def get_database(self, tenant: str, project: str, name: str) -> DatabaseRecord | None:
        row = await self._one(self._DATABASE_SELECT + "WHERE t.name = %s AND p.name = %s AND d.name = %s "
                              "AND d.deleted_at IS NULL", tenant, project, name)
        return DatabaseRecord.model_validate(row) if row else None

    async def get_database_by_id(self, database_id: UUID) -> DatabaseRecord | None:
        row = await self._one(self._DATABASE_SELECT + "WHERE d.id = %s", database_id)
        return DatabaseRecord.model_validate(row) if row else None

    async def database_of_app(self, app_id: UUID) -> DatabaseRecord | None:
        row = await self._one(self._DATABASE_SELECT + "WHERE d.app_id = %s AND d.deleted_at IS NULL", app_id)
        return DatabaseRecord.model_validate(row) if row else None

    async def list_databases(self, tenant: str, project: str | None) -> list[DatabaseRecord]:
        rows = await self._all(self._DATABASE_SELECT + "WHERE t.name = %s AND (%s::text IS NULL OR p.name = %s) "
                               "AND d.deleted_at IS NULL ORDER BY p.name, d.name", tenant, project, project)
        return [DatabaseRecord.model_validate(r) for r in rows]

    async def live_databases(self) -> list[DatabaseRecord]:
        """Every database not deleted, of every tenant (the reconciler's desired set)."""
        rows = await self._all(self._DATABASE_SELECT + "WHERE d.deleted_at IS NULL AND d.status <> 'deleting' "
                               "ORDER BY d.created_at")
        return [DatabaseRecord.model_validate(r) for r in rows]

    async def set_database_app(self, database_id: UUID, app_id: UUID | None) -> None:
        """Attach (an app id) or detach (None). One database per app: a second is a conflict."""
        try:
            await self._one("UPDATE databases SET app_id = %s, updated_at = now() WHERE id = %s RETURNING id",
                            app_id, database_id)
        except psycopg.errors.UniqueViolation:
            raise RecordConflict("app", str(app_id)) from None

    async def set_database_status(self, database_id: UUID, status: str, reason: str | None = None) -> None:
        await self._one("UPDATE databases SET status = %s, status_reason = %s, updated_at = now() WHERE id = %s "
                        "RETURNING id", status, reason, database_id)

    async def set_database_engine(self, database_id: UUID, engine: str) -> None:
        await self._one("UPDATE databases SET engine = %s, updated_at = now() WHERE id = %s RETURNING id",
                        engine, database_id)

    async def set_pending_password(self, database_id: UUID, ciphertext: bytes | None) -> None:
        await self._one("UPDATE databases SET pending_ciphertext = %s, updated_at = now() WHERE id = %s "
                        "RETURNING id", ciphertext, database_id)

    async def promote_pending_password(self, database_id: UUID) -> None:
        """The rotation took: the pending password becomes the database's (a no-op when none is pending)."""
        await self._one("UPDATE databases SET ciphertext = coalesce(pending_ciphertext, "
                        "ciphertext), pending_ciphertext = NULL, updated_at = now() WHERE id = %s "
                        "RETURNING id", database_id)

    async def delete_database_row(self, database_id: UUID) -> None:
        await self._one("UPDATE databases SET deleted_at = now(), status = 'deleted', app_id = NULL, "
                        "pending_ciphertext = NULL WHERE id = %s RETURNING id", database_id)

    async def start_database_backup(self, database_id: UUID, kind: str, name: str) -> DatabaseBackupRecord:
        row = await self._one(
            "INSERT INTO database_backups (database_id, kind, name) VALUES (%s, %s, %s) "
            "ON CONFLICT (database_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING *",
            database_id, kind, name)
        assert row is not None
        return DatabaseBackupRecord.model_validate(row)

    async def finish_database_backup(self, database_id: UUID, name: str, status: str, size_bytes: int | None,
                                     error: str | None) -> None:
        await self._one("UPDATE database_backups SET status = %s, size_bytes = %s, error = %s, finished_at = now() "
                        "WHERE database_id = %s AND name = %s RETURNING id",
                        status, size_bytes, error, database_id, name)

    async def list_database_backups(self, database_id: UUID, limit: int = 20) -> list[DatabaseBackupRecord]:
        rows = await self._all("SELECT * FROM database_backups WHERE database_id = %s ORDER BY started_at DESC "
                               "LIMIT %s", database_id, limit)
        return [DatabaseBackupRecord.model_validate(r) for r in rows]
