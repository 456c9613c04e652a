"""The Postgres store: schema migrations, and the queries behind the tools' `Store` port and the auth layer.

psycopg 3 with an async connection pool; rows come back as dicts and leave as the typed records of
`tools.records`. Every query is parameterised; no value is ever pasted into SQL.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from tools.errors import Conflict, NotFound
from tools.records import (
    AppRecord,
    AuditEvent,
    DeploymentRecord,
    NewRelease,
    ProjectRecord,
    ReleaseClaim,
    SecretVersion,
    SnapshotRecord,
    TenantRecord,
    VolumeRecord,
)
from workflows.domain.build_contract import BuildDone, BuildInput, BuildStarted
from workflows.domain.names import namespace_name
from workflows.domain.phases import TERMINAL_PHASES

MIGRATION_LOCK = 0x646D6370  # "dmcp": one migrator at a time across processes
ROBOT_LOCK = 0x68617262  # "harb": one robot ensure per tenant and Harbor at a time across workers


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every file in mcp_server/migrations, in order."""
    out = []
    for f in resources.files("mcp_server.migrations").iterdir():
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


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_APP_SELECT = """
SELECT a.*, p.name AS project, p.namespace, t.name AS tenant
FROM apps a JOIN projects p ON p.id = a.project_id JOIN tenants t ON t.id = p.tenant_id
"""


class PgRobotSlot:
    """One tenant's `harbor_robots` row, read and written on the connection that holds its lock."""

    def __init__(self, conn: psycopg.AsyncConnection[dict[str, Any]], tenant: str, harbor_url: str) -> None:
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


class PgStore:
    """Implements `tools.ports.Store` (and the auth queries) on a psycopg async pool."""

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]]) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str, min_size: int = 1, max_size: int = 10) -> PgStore:
        pool: AsyncConnectionPool[psycopg.AsyncConnection[dict[str, Any]]] = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},
        )
        await pool.open(wait=True, timeout=30)
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    async def _all(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def _one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        rows = await self._all(sql, *params)
        return rows[0] if rows else None

    # tenants and projects

    async def ensure_tenant(self, name: str) -> TenantRecord:
        row = await self._one(
            "INSERT INTO tenants (name) VALUES (%s) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
            "RETURNING id, name",
            name,
        )
        assert row is not None
        return TenantRecord(**row)

    async def ensure_project(self, tenant: str, project: str) -> ProjectRecord:
        t = await self.ensure_tenant(tenant)
        await self._one(
            "INSERT INTO projects (tenant_id, name, namespace) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING id",  # (tenant, name) or its namespace: the same project either way
            t.id, project, namespace_name(tenant, project),
        )
        found = await self.get_project(tenant, project)
        assert found is not None
        return found

    async def list_projects(self, tenant: str) -> list[ProjectRecord]:
        rows = await self._all(
            "SELECT p.id, t.name AS tenant, p.name, p.namespace, p.created_at, "
            "(SELECT count(*) FROM apps a WHERE a.project_id = p.id AND a.deleted_at IS NULL) AS app_count "
            "FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE t.name = %s ORDER BY p.name",
            tenant,
        )
        return [ProjectRecord(**r) for r in rows]

    async def get_project(self, tenant: str, project: str) -> ProjectRecord | None:
        row = await self._one(
            "SELECT p.id, t.name AS tenant, p.name, p.namespace, p.created_at, "
            "(SELECT count(*) FROM apps a WHERE a.project_id = p.id AND a.deleted_at IS NULL) AS app_count "
            "FROM projects p JOIN tenants t ON t.id = p.tenant_id WHERE t.name = %s AND p.name = %s",
            tenant, project,
        )
        return ProjectRecord(**row) if row else None

    # apps and deployments

    @staticmethod
    def _app(row: dict[str, Any]) -> AppRecord:
        return AppRecord.model_validate(row)

    async def list_apps(self, tenant: str, project: str | None) -> list[AppRecord]:
        rows = await self._all(
            _APP_SELECT + "WHERE t.name = %s AND (%s::text IS NULL OR p.name = %s) AND a.deleted_at IS NULL "
            "ORDER BY p.name, a.name",
            tenant, project, project,
        )
        return [self._app(r) for r in rows]

    async def get_app(self, tenant: str, project: str, app: str) -> AppRecord | None:
        row = await self._one(
            _APP_SELECT + "WHERE t.name = %s AND p.name = %s AND a.name = %s AND a.deleted_at IS NULL",
            tenant, project, app,
        )
        return self._app(row) if row else None

    async def get_app_by_id(self, app_id: UUID) -> AppRecord | None:
        row = await self._one(_APP_SELECT + "WHERE a.id = %s", app_id)
        return self._app(row) if row else None

    async def list_deployments(self, app_id: UUID, limit: int) -> list[DeploymentRecord]:
        rows = await self._all(
            "SELECT * FROM deployments WHERE app_id = %s ORDER BY seq DESC LIMIT %s", app_id, limit
        )
        return [DeploymentRecord.model_validate(r) for r in rows]

    async def get_deployment(self, tenant: str, deployment_id: UUID) -> DeploymentRecord | None:
        row = await self._one(
            "SELECT d.* FROM deployments d JOIN apps a ON a.id = d.app_id JOIN projects p ON p.id = a.project_id "
            "JOIN tenants t ON t.id = p.tenant_id WHERE d.id = %s AND t.name = %s",
            deployment_id, tenant,
        )
        return DeploymentRecord.model_validate(row) if row else None

    async def hostname_owner(self, hostname: str) -> UUID | None:
        row = await self._one("SELECT id FROM apps WHERE hostname = %s", hostname)
        return UUID(str(row["id"])) if row else None

    async def in_flight(self, app_id: UUID) -> list[DeploymentRecord]:
        rows = await self._all(
            "SELECT * FROM deployments WHERE app_id = %s AND phase <> ALL(%s) ORDER BY seq",
            app_id, list(TERMINAL_PHASES),
        )
        return [DeploymentRecord.model_validate(r) for r in rows]

    # secrets (values only ever as ciphertext)

    async def current_secrets(self, app_id: UUID) -> SecretVersion:
        row = await self._one(
            "SELECT version, names, ciphertext FROM secret_versions WHERE app_id = %s ORDER BY version DESC LIMIT 1",
            app_id,
        )
        if row is None:
            return SecretVersion(version=0, names=[], ciphertext=None)
        return SecretVersion(version=row["version"], names=list(row["names"]), ciphertext=bytes(row["ciphertext"]))

    async def secret_ciphertext(self, app_id: UUID, version: int) -> bytes | None:
        row = await self._one(
            "SELECT ciphertext FROM secret_versions WHERE app_id = %s AND version = %s", app_id, version
        )
        return bytes(row["ciphertext"]) if row else None

    async def add_secret_version(
        self, app_id: UUID, base_version: int, names: list[str], ciphertext: bytes, created_by: str
    ) -> int:
        """Version `base_version + 1`; a concurrent writer that got there first makes this raise Conflict."""
        try:
            await self._one(
                "INSERT INTO secret_versions (app_id, version, names, ciphertext, created_by) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING version",
                app_id, base_version + 1, sorted(names), ciphertext, created_by,
            )
        except psycopg.errors.UniqueViolation as e:
            raise Conflict("The app's secrets changed while this call ran.", hint="Call it again.") from e
        return base_version + 1

    # releases

    async def create_release(self, req: NewRelease) -> ReleaseClaim:
        """Record a release atomically under the app's row lock: the same call retried (same idempotency key,
        or the same digest + config + secrets as the latest live release) returns the release recorded first."""
        async with self.pool.connection() as conn, conn.transaction():
            project = await self.ensure_project(req.tenant, req.project) if req.create else \
                await self.get_project(req.tenant, req.project)
            if project is None:
                raise NotFound("project", req.project, hint="Call `list_projects`; `create_app` creates projects.")
            created_app = False
            if req.create:
                try:
                    async with conn.transaction():
                        cur = await conn.execute(
                            "INSERT INTO apps (project_id, name, spec, hostname) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING RETURNING id",
                            (project.id, req.app, Jsonb(req.config), req.hostname),
                        )
                        created_app = await cur.fetchone() is not None
                except psycopg.errors.UniqueViolation as e:
                    raise Conflict(
                        f"The hostname {req.hostname} is already used by another app.",
                        hint="Choose another app or project name.",
                    ) from e
            cur = await conn.execute(
                "SELECT id FROM apps WHERE project_id = %s AND name = %s AND deleted_at IS NULL FOR UPDATE",
                (project.id, req.app),
            )
            locked = await cur.fetchone()
            if locked is None:
                raise NotFound("app", f"{req.project}/{req.app}", hint="Create it with `create_app`.")
            app_id = locked["id"]
            existing = await self._same_release(conn, app_id, req)
            if existing is not None:
                return ReleaseClaim(app=await self._app_in(conn, app_id), deployment=existing, created=False)
            if req.create and not created_app:
                raise Conflict(
                    f"The app {req.project}/{req.app} already exists.",
                    hint="Use `deploy` to release a new version, or pass the same `idempotency_key` to retry.",
                )
            secrets_version = req.base_secrets_version
            if req.new_secret_ciphertext is not None:
                cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM secret_versions WHERE app_id = %s",
                                         (app_id,))
                current = (await cur.fetchone() or {"v": 0})["v"]
                if current != req.base_secrets_version:
                    raise Conflict("The app's secrets changed while this call ran.", hint="Call it again.")
                secrets_version = current + 1
                await conn.execute(
                    "INSERT INTO secret_versions (app_id, version, names, ciphertext, created_by) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (app_id, secrets_version, sorted(req.new_secret_names or []), req.new_secret_ciphertext,
                     req.created_by),
                )
            cur = await conn.execute("SELECT coalesce(max(seq), 0) + 1 AS seq FROM deployments WHERE app_id = %s",
                                     (app_id,))
            seq = (await cur.fetchone() or {"seq": 1})["seq"]
            cur = await conn.execute(
                "INSERT INTO deployments (app_id, seq, release_seq, kind, source, image, image_digest, commit_sha, "
                "config, secrets_version, rollback_of, workflow_id, idempotency_key, created_by) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (app_id, seq, req.release_seq or seq, req.kind, Jsonb(req.source), req.image, req.image_digest,
                 req.commit_sha,
                 Jsonb(req.config), secrets_version, req.rollback_of, f"{req.workflow_id_prefix}{seq}",
                 req.idempotency_key, req.created_by),
            )
            row = await cur.fetchone()
            assert row is not None
            await conn.execute("UPDATE apps SET spec = %s, updated_at = now() WHERE id = %s",
                               (Jsonb(req.config), app_id))
            return ReleaseClaim(app=await self._app_in(conn, app_id), deployment=DeploymentRecord.model_validate(row),
                                created=True)

    @staticmethod
    async def _app_in(conn: psycopg.AsyncConnection[dict[str, Any]], app_id: UUID) -> AppRecord:
        cur = await conn.execute(_APP_SELECT + "WHERE a.id = %s", (app_id,))
        row = await cur.fetchone()
        assert row is not None
        return AppRecord.model_validate(row)

    @staticmethod
    async def _same_release(
        conn: psycopg.AsyncConnection[dict[str, Any]], app_id: UUID, req: NewRelease
    ) -> DeploymentRecord | None:
        if req.idempotency_key:
            cur = await conn.execute("SELECT * FROM deployments WHERE app_id = %s AND idempotency_key = %s",
                                     (app_id, req.idempotency_key))
            row = await cur.fetchone()
            return DeploymentRecord.model_validate(row) if row else None
        cur = await conn.execute("SELECT * FROM deployments WHERE app_id = %s ORDER BY seq DESC LIMIT 1", (app_id,))
        row = await cur.fetchone()
        if row is None or row["phase"] in ("failed", "cancelled") or row["kind"] != req.kind:
            return None
        latest = DeploymentRecord.model_validate(row)
        same = (latest.image_digest == req.image_digest and latest.commit_sha == req.commit_sha
                and latest.config == req.config
                and req.new_secret_ciphertext is None and latest.secrets_version == req.base_secrets_version
                and (req.release_seq is None or latest.release_seq == req.release_seq))
        return latest if same else None

    async def set_deployment_phase(self, deployment_id: UUID, phase: str) -> None:
        # never move a finished release back (a retried activity may arrive late)
        await self._one(
            "UPDATE deployments SET phase = %s WHERE id = %s AND phase <> ALL(%s) RETURNING id",
            phase, deployment_id, list(TERMINAL_PHASES),
        )

    async def finish_deployment(
        self, deployment_id: UUID, app_id: UUID, phase: str, serving: bool, error: dict[str, Any] | None
    ) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE deployments SET phase = %s, error = %s, finished_at = coalesce(finished_at, now()), "
                "healthy_at = CASE WHEN %s = 'succeeded' THEN coalesce(healthy_at, now()) ELSE healthy_at END "
                "WHERE id = %s",
                (phase, Jsonb(error) if error else None, phase, deployment_id),
            )
            if serving:
                await conn.execute(
                    "UPDATE apps SET serving_deployment_id = %s, status = 'running', updated_at = now() "
                    "WHERE id = %s AND deleted_at IS NULL",
                    (deployment_id, app_id),
                )
            elif phase == "failed":
                await conn.execute(
                    "UPDATE apps SET status = 'failed', updated_at = now() "
                    "WHERE id = %s AND serving_deployment_id IS NULL AND deleted_at IS NULL",
                    (app_id,),
                )

    async def mark_app_deleting(self, app_id: UUID) -> None:
        await self._one("UPDATE apps SET status = 'deleting', updated_at = now() WHERE id = %s RETURNING id", app_id)

    async def mark_app_deleted(self, app_id: UUID) -> None:
        await self._one(
            "UPDATE apps SET status = 'deleted', deleted_at = coalesce(deleted_at, now()), updated_at = now() "
            "WHERE id = %s RETURNING id",
            app_id,
        )

    # volumes

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
                            pvc_name: str, restored_from: UUID | None = None) -> tuple[VolumeRecord, bool]:
        """(volume, created). An existing live volume of that name is returned as is (created=False)."""
        p = await self.ensure_project(tenant, project)
        row = await self._one(
            "INSERT INTO volumes (project_id, name, size_gib, class, access, pvc_name, restored_from) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (project_id, name) WHERE deleted_at IS NULL "
            "DO NOTHING RETURNING id",
            p.id, name, size_gib, class_, access, pvc_name, restored_from,
        )
        found = await self.get_volume(tenant, project, name)
        assert found is not None
        return found, row is not None

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

    async def record_snapshot(self, volume_id: UUID, kind: str, k8s_name: str, created_by: str) -> SnapshotRecord:
        row = await self._one(
            "INSERT INTO volume_snapshots (volume_id, kind, k8s_name, created_by) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (volume_id, k8s_name) DO UPDATE SET k8s_name = EXCLUDED.k8s_name RETURNING *",
            volume_id, kind, k8s_name, created_by,
        )
        return SnapshotRecord.model_validate(row)

    async def get_snapshot(self, tenant: str, snapshot_id: UUID) -> tuple[SnapshotRecord, VolumeRecord] | None:
        row = await self._one("SELECT s.* FROM volume_snapshots s JOIN volumes v ON v.id = s.volume_id "
                              "JOIN projects p ON p.id = v.project_id JOIN tenants t ON t.id = p.tenant_id "
                              "WHERE s.id = %s AND t.name = %s", snapshot_id, tenant)
        if row is None:
            return None
        vol = await self._one(self._VOLUME_SELECT + "WHERE v.id = %s", row["volume_id"])
        assert vol is not None
        return SnapshotRecord.model_validate(row), VolumeRecord.model_validate(vol)

    async def finish_snapshot(self, volume_id: UUID, k8s_name: str, status: str) -> None:
        await self._one("UPDATE volume_snapshots SET status = %s, ready_at = CASE WHEN %s = 'ready' THEN now() "
                        "END WHERE volume_id = %s AND k8s_name = %s RETURNING id", status, status, volume_id, k8s_name)

    async def list_snapshots(self, volume_id: UUID) -> list[SnapshotRecord]:
        rows = await self._all("SELECT * FROM volume_snapshots WHERE volume_id = %s ORDER BY created_at DESC",
                               volume_id)
        return [SnapshotRecord.model_validate(r) for r in rows]

    # builds

    async def start_build(self, inp: BuildInput, workflow_id: str, builder: str) -> BuildStarted:
        """The build of this commit: a finished one is reused (a commit builds once); a running row of this
        workflow is returned again when the activity is retried."""
        done = await self._one(
            "SELECT id, image_digest FROM builds WHERE app_id = %s AND commit_sha = %s AND subdir = %s "
            "AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1",
            inp.app_id, inp.commit_sha, inp.subdir,
        )
        if done is not None:
            return BuildStarted(build_id=done["id"], reused_digest=done["image_digest"], request=inp)
        row = await self._one("SELECT id FROM builds WHERE workflow_id = %s AND status = 'running'", workflow_id)
        if row is None:
            row = await self._one(
                "INSERT INTO builds (app_id, deployment_id, commit_sha, builder, status, workflow_id, subdir, "
                "source_url) VALUES (%s, %s, %s, %s, 'running', %s, %s, %s) RETURNING id",
                inp.app_id, inp.deployment_id, inp.commit_sha, builder, workflow_id, inp.subdir, inp.git_url,
            )
        assert row is not None
        return BuildStarted(build_id=row["id"], request=inp)

    async def finish_build(self, done: BuildDone) -> None:
        await self._one(
            "UPDATE builds SET status = %s, image = %s, image_digest = %s, failed_step = %s, error = %s, "
            "finished_at = now() WHERE id = %s RETURNING id",
            done.status, done.image, done.digest, done.failed_step, done.error, done.build_id,
        )

    async def append_build_lines(self, build_id: UUID, first_seq: int, lines: list[str]) -> None:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO build_log_lines (build_id, seq, line) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                [(build_id, first_seq + i, line) for i, line in enumerate(lines)],
            )

    async def build_lines(self, build_id: UUID, after_seq: int, limit: int) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT seq, ts, line FROM build_log_lines WHERE build_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            build_id, after_seq, limit,
        )

    async def list_builds(self, app_id: UUID, limit: int) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT b.*, (SELECT count(*) FROM build_log_lines l WHERE l.build_id = b.id) AS lines FROM builds b "
            "WHERE b.app_id = %s ORDER BY b.created_at DESC LIMIT %s", app_id, limit,
        )

    async def get_build(self, tenant: str, build_id: UUID) -> dict[str, Any] | None:
        return await self._one(
            "SELECT b.* FROM builds b JOIN apps a ON a.id = b.app_id JOIN projects p ON p.id = a.project_id "
            "JOIN tenants t ON t.id = p.tenant_id WHERE b.id = %s AND t.name = %s", build_id, tenant,
        )

    async def build_of_deployment(self, deployment_id: UUID) -> dict[str, Any] | None:
        """The build a deployment ran or reused (matched by app and commit when it reused an earlier one)."""
        return await self._one(
            "SELECT b.* FROM deployments d JOIN builds b ON b.app_id = d.app_id AND b.commit_sha = d.commit_sha "
            "WHERE d.id = %s ORDER BY (b.deployment_id = d.id) DESC, b.created_at DESC LIMIT 1", deployment_id,
        )

    async def git_credentials(self, tenant: str, host: str) -> tuple[str, str, bytes] | None:
        row = await self._one(
            "SELECT g.kind, g.username, g.ciphertext FROM git_credentials g JOIN tenants t ON t.id = g.tenant_id "
            "WHERE t.name = %s AND g.host = %s", tenant, host,
        )
        return (row["kind"], row["username"], bytes(row["ciphertext"])) if row else None

    async def set_git_credentials(self, tenant: str, host: str, kind: str, username: str, ciphertext: bytes,
                                  created_by: str) -> None:
        t = await self.ensure_tenant(tenant)
        await self._one(
            "INSERT INTO git_credentials (tenant_id, host, kind, username, ciphertext, created_by) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, host) DO UPDATE SET kind = EXCLUDED.kind, "
            "username = EXCLUDED.username, ciphertext = EXCLUDED.ciphertext, created_by = EXCLUDED.created_by, "
            "created_at = now() RETURNING host",
            t.id, host, kind, username, ciphertext, created_by,
        )

    async def set_deployment_image(self, deployment_id: UUID, image: str, digest: str) -> None:
        await self._one("UPDATE deployments SET image = %s, image_digest = %s WHERE id = %s RETURNING id",
                        image, digest, deployment_id)

    # registry robots (the worker's RobotStore)

    @asynccontextmanager
    async def robot_slot(self, tenant: str, harbor_url: str, poll: float = 0.2) -> AsyncIterator[PgRobotSlot]:
        """The tenant's robot row under a session advisory lock. A waiter polls with `pg_try_advisory_lock`
        and gives its connection back between tries, so waiting deploys never drain the pool the lock holder
        needs."""
        key = f"{tenant}\n{harbor_url}"
        while True:
            async with self.pool.connection() as conn:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS locked", (ROBOT_LOCK, key))
                row = await cur.fetchone()
                if row is not None and row["locked"]:
                    try:
                        yield PgRobotSlot(conn, tenant, harbor_url)
                    finally:
                        try:
                            await conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (ROBOT_LOCK, key))
                        except psycopg.Error:
                            await conn.close()  # the pool drops it, and the session's lock goes with it
                    return
            await asyncio.sleep(poll)

    # audit

    async def record_audit(self, event: AuditEvent) -> None:
        await self._one(
            "INSERT INTO audit_events (tenant, principal, transport, tool, request_id, arguments, outcome, error, "
            "workflow_id, k8s_refs, duration_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            event.tenant, event.principal, event.transport, event.tool, event.request_id,
            Jsonb(event.arguments), event.outcome, event.error, event.workflow_id, Jsonb(event.k8s_refs),
            event.duration_ms,
        )

    async def list_audit(
        self, tenant: str, tool: str | None, since: datetime | None, before_id: int | None, limit: int
    ) -> list[AuditEvent]:
        rows = await self._all(
            "SELECT * FROM audit_events WHERE tenant = %s AND (%s::text IS NULL OR tool = %s) "
            "AND (%s::timestamptz IS NULL OR at >= %s) AND (%s::bigint IS NULL OR id < %s) "
            "ORDER BY id DESC LIMIT %s",
            tenant, tool, tool, since, since, before_id, before_id, limit,
        )
        return [AuditEvent.model_validate(r) for r in rows]

    # api tokens

    async def create_token(
        self, tenant: str, subject: str, scopes: list[str], token: str, expires_at: datetime | None
    ) -> UUID:
        t = await self.ensure_tenant(tenant)
        row = await self._one(
            "INSERT INTO api_tokens (tenant_id, subject, scopes, token_hash, prefix, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            t.id, subject, scopes, token_hash(token), token[:12], expires_at,
        )
        assert row is not None
        return UUID(str(row["id"]))

    async def find_token(self, token: str) -> dict[str, Any] | None:
        """The live token row (tenant, subject, scopes) for `token`, touching `last_used_at`; None if unknown,
        revoked or expired."""
        return await self._one(
            "UPDATE api_tokens k SET last_used_at = now() FROM tenants t "
            "WHERE k.token_hash = %s AND t.id = k.tenant_id AND k.revoked_at IS NULL "
            "AND (k.expires_at IS NULL OR k.expires_at > now()) "
            "RETURNING k.id, t.name AS tenant, k.subject, k.scopes, k.expires_at",
            token_hash(token),
        )

    async def revoke_token(self, token_id: UUID) -> bool:
        row = await self._one(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id", token_id
        )
        return row is not None

    async def list_tokens(self, tenant: str | None) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT k.id, t.name AS tenant, k.subject, k.scopes, k.prefix, k.created_at, k.expires_at, "
            "k.last_used_at, k.revoked_at FROM api_tokens k JOIN tenants t ON t.id = k.tenant_id "
            "WHERE (%s::text IS NULL OR t.name = %s) ORDER BY k.created_at",
            tenant, tenant,
        )
