"""Volumes, their attachments to apps, and their snapshots and backups, as the platform records them (the
Longhorn objects themselves are the volume workflow's)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from mcp_server.store.projects import PgProjects
from tools.records import SnapshotRecord, VolumeRecord


class PgVolumes(PgProjects):
    _VOLUME_SELECT = """
    SELECT v.*, p.name AS project, p.namespace, t.name AS tenant,
      coalesce((SELECT json_agg(json_build_object('app', a.name, 'mount_path', va.mount_path,
                                                  'read_only', va.read_only) ORDER BY a.name)
                FROM volume_attachments va JOIN apps a ON a.id = va.app_id
                WHERE va.volume_id = v.id AND a.deleted_at IS NULL), '[]') AS attachments,
      (SELECT max(ready_at) FROM volume_snapshots s WHERE s.volume_id = v.id AND s.kind = 'snapshot')
        AS last_snapshot_at,
      (SELECT max(ready_at) FROM volume_snapshots s WHERE s.volume_id = v.id AND s.kind = 'backup')
        AS last_backup_at
    FROM volumes v JOIN projects p ON p.id = v.project_id JOIN tenants t ON t.id = p.tenant_id
    """

    async def create_volume(self, tenant: str, project: str, name: str, size_gib: int, class_: str, access: str,
                            pvc_name: str, restored_from: UUID | None = None, idempotency_key: str | None = None,
                            request_fingerprint: dict[str, Any] | None = None) -> tuple[VolumeRecord, bool]:
        """(volume, created). The live volume an idempotency key made in the project is returned as is, whatever
        its name (the tools compare the request fingerprints); else an existing live volume of that name."""
        p = await self.ensure_project(tenant, project)
        if idempotency_key is not None:
            keyed = await self._volume_by_key(p.id, idempotency_key)
            if keyed is not None:
                return keyed, False
        try:
            row = await self._one(
                "INSERT INTO volumes (project_id, name, size_gib, class, access, pvc_name, restored_from, "
                "idempotency_key, request_fingerprint) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING RETURNING id",
                p.id, name, size_gib, class_, access, pvc_name, restored_from, idempotency_key,
                Jsonb(request_fingerprint) if request_fingerprint is not None else None,
            )
        except psycopg.errors.UniqueViolation:  # the same key, another name, recorded a moment ago
            assert idempotency_key is not None
            keyed = await self._volume_by_key(p.id, idempotency_key)
            assert keyed is not None
            return keyed, False
        found = await self.get_volume(tenant, project, name)
        assert found is not None
        return found, row is not None

    async def _volume_by_key(self, project_id: UUID, idempotency_key: str) -> VolumeRecord | None:
        row = await self._one(self._VOLUME_SELECT + "WHERE v.project_id = %s AND v.idempotency_key = %s "
                              "AND v.deleted_at IS NULL", project_id, idempotency_key)
        return VolumeRecord.model_validate(row) if row else None

    async def get_volume(self, tenant: str, project: str, name: str) -> VolumeRecord | None:
        row = await self._one(self._VOLUME_SELECT + "WHERE t.name = %s AND p.name = %s AND v.name = %s "
                              "AND v.deleted_at IS NULL", tenant, project, name)
        return VolumeRecord.model_validate(row) if row else None

    async def list_volumes(self, tenant: str, project: str | None) -> list[VolumeRecord]:
        rows = await self._all(self._VOLUME_SELECT + "WHERE t.name = %s AND (%s::text IS NULL OR p.name = %s) "
                               "AND v.deleted_at IS NULL ORDER BY p.name, v.name", tenant, project, project)
        return [VolumeRecord.model_validate(r) for r in rows]

    async def update_volume(self, volume_id: UUID, **fields: Any) -> None:
        allowed = {"size_gib", "status", "backup_schedule", "backup_retain"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"update_volume takes {sorted(allowed)}")
        sets = ", ".join(f"{k} = %s" for k in fields)  # keys from the allow-list above, never from callers' data
        await self._one(f"UPDATE volumes SET {sets} WHERE id = %s RETURNING id", *fields.values(), volume_id)

    async def delete_volume_row(self, volume_id: UUID) -> None:
        await self._one("UPDATE volumes SET deleted_at = now(), status = 'deleted' WHERE id = %s RETURNING id",
                        volume_id)

    async def set_attachment(self, volume_id: UUID, app_id: UUID, mount_path: str | None, read_only: bool) -> None:
        """Attach (mount_path given) or detach (None) a volume to an app."""
        if mount_path is None:
            await self._one("DELETE FROM volume_attachments WHERE volume_id = %s AND app_id = %s RETURNING volume_id",
                            volume_id, app_id)
            return
        await self._one(
            "INSERT INTO volume_attachments (volume_id, app_id, mount_path, read_only) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (volume_id, app_id) DO UPDATE SET mount_path = EXCLUDED.mount_path, "
            "read_only = EXCLUDED.read_only RETURNING volume_id",
            volume_id, app_id, mount_path, read_only,
        )

    async def record_snapshot(self, volume_id: UUID, kind: str, k8s_name: str, created_by: str,
                              idempotency_key: str | None = None, request_fingerprint: dict[str, Any] | None = None,
                              ) -> tuple[SnapshotRecord, bool]:
        """(snapshot, created). With an idempotency key already used on the volume: the snapshot it recorded."""
        if idempotency_key is not None:
            keyed = await self._one("SELECT * FROM volume_snapshots WHERE volume_id = %s AND idempotency_key = %s",
                                    volume_id, idempotency_key)
            if keyed is not None:
                return SnapshotRecord.model_validate(keyed), False
        try:
            row = await self._one(
                "INSERT INTO volume_snapshots (volume_id, kind, k8s_name, created_by, idempotency_key, "
                "request_fingerprint) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (volume_id, k8s_name) DO UPDATE SET k8s_name = EXCLUDED.k8s_name RETURNING *",
                volume_id, kind, k8s_name, created_by, idempotency_key,
                Jsonb(request_fingerprint) if request_fingerprint is not None else None,
            )
        except psycopg.errors.UniqueViolation:  # the same key recorded a moment ago by a concurrent call
            row = await self._one("SELECT * FROM volume_snapshots WHERE volume_id = %s AND idempotency_key = %s",
                                  volume_id, idempotency_key)
            assert row is not None
            return SnapshotRecord.model_validate(row), False
        assert row is not None
        return SnapshotRecord.model_validate(row), True

    async def get_snapshot(self, tenant: str, snapshot_id: UUID) -> tuple[SnapshotRecord, VolumeRecord] | None:
        row = await self._one("SELECT s.* FROM volume_snapshots s JOIN volumes v ON v.id = s.volume_id "
                              "JOIN projects p ON p.id = v.project_id JOIN tenants t ON t.id = p.tenant_id "
                              "WHERE s.id = %s AND t.name = %s", snapshot_id, tenant)
        if row is None:
            return None
        vol = await self._one(self._VOLUME_SELECT + "WHERE v.id = %s", row["volume_id"])
        assert vol is not None
        return SnapshotRecord.model_validate(row), VolumeRecord.model_validate(vol)

    async def finish_snapshot(self, volume_id: UUID, k8s_name: str, status: str, handle: str | None = None) -> None:
        await self._one("UPDATE volume_snapshots SET status = %s, ready_at = CASE WHEN %s = 'ready' THEN now() "
                        "END, handle = coalesce(%s, handle) WHERE volume_id = %s AND k8s_name = %s RETURNING id",
                        status, status, handle, volume_id, k8s_name)

    async def list_snapshots(self, volume_id: UUID) -> list[SnapshotRecord]:
        rows = await self._all("SELECT * FROM volume_snapshots WHERE volume_id = %s ORDER BY created_at DESC",
                               volume_id)
        return [SnapshotRecord.model_validate(r) for r in rows]
