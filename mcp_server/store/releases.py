"""Recording a release, and the release's life after that as the deploy workflow reports it.

`create_release` is the one multi-statement write of the tools: app row, secrets version and deployment row
in one transaction under the app's row lock, so a retried call finds the release it recorded first. The
project and tenant it ensures are written in that transaction too, on its connection (`PgPool._transaction`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from mcp_server.store.apps import APP_SELECT
from mcp_server.store.pool import Connection
from mcp_server.store.projects import PgProjects
from tools.ports import RecordConflict, RecordNotFound
from tools.records import AppRecord, DeploymentRecord, NewRelease, ReleaseClaim
from workflows.domain.phases import TERMINAL_PHASES, Phase


class PgReleases(PgProjects):
    async def create_release(self, req: NewRelease) -> ReleaseClaim:
        """Record a release atomically under the app's row lock: the same call retried (same idempotency key,
        or the same digest + config + secrets as the latest live release) returns the release recorded first,
        with the request fingerprint it was recorded with (the tools refuse a key reused for another request).
        A new release comes with the app's releases still rolling out, read under the same lock (the ones it
        supersedes). Raises RecordNotFound (project, app) and RecordConflict (app, hostname, secrets).
        Round trips are few on purpose: a warm rollback's time to switched starts with this transaction."""
        async with self._transaction() as conn:
            inserted: dict[str, Any] | None = None
            if req.create:
                project = await self.ensure_project(req.tenant, req.project)
                # No savepoint of its own: a conflict ends the whole transaction anyway (RecordConflict).
                try:
                    cur = await conn.execute(
                        "INSERT INTO apps (project_id, name, spec, hostname) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (project_id, name) WHERE deleted_at IS NULL DO NOTHING RETURNING id",
                        (project.id, req.app, Jsonb(req.config), req.hostname),
                    )
                    inserted = await cur.fetchone()
                except psycopg.errors.UniqueViolation as e:
                    raise RecordConflict("hostname", req.hostname) from e
            created_app = inserted is not None
            rolling_out: list[DeploymentRecord] = []
            if inserted is not None:
                # The row this transaction inserted: no other sees it before the commit, so it is as good as
                # locked, and it has no releases yet to be the same as, to number after or to supersede.
                app_id, seq = inserted["id"], 1
            else:
                cur = await conn.execute(
                    "SELECT a.id FROM apps a JOIN projects p ON p.id = a.project_id JOIN tenants t ON t.id = "
                    "p.tenant_id WHERE t.name = %s AND p.name = %s AND a.name = %s AND a.deleted_at IS NULL "
                    "FOR UPDATE OF a",
                    (req.tenant, req.project, req.app),
                )
                locked = await cur.fetchone()
                if locked is None:
                    if await self.get_project(req.tenant, req.project) is None:
                        raise RecordNotFound("project", req.project)
                    raise RecordNotFound("app", f"{req.project}/{req.app}")
                app_id = locked["id"]
                existing, seq, rolling_out = await self._releases_so_far(conn, app_id, req)
                if existing is not None:
                    return ReleaseClaim(app=await self._app_in(conn, app_id), deployment=existing, created=False)
                if req.create:
                    raise RecordConflict("app", f"{req.project}/{req.app}")
            secrets_version = req.base_secrets_version
            if req.new_secret_ciphertext is not None:
                cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM secret_versions WHERE app_id = %s",
                                         (app_id,))
                current = (await cur.fetchone() or {"v": 0})["v"]
                if current != req.base_secrets_version:
                    raise RecordConflict("secrets", f"{app_id}@{current + 1}")
                secrets_version = current + 1
                await conn.execute(
                    "INSERT INTO secret_versions (app_id, version, names, ciphertext, created_by) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (app_id, secrets_version, sorted(req.new_secret_names or []), req.new_secret_ciphertext,
                     req.created_by),
                )
            # The app's row takes this config in the same statement (a new app's row holds it already): a data-
            # modifying WITH runs whether or not the query reads it.
            cur = await conn.execute(
                "WITH spec AS (UPDATE apps SET spec = %s, updated_at = now() WHERE id = %s AND %s) "
                "INSERT INTO deployments (app_id, seq, release_seq, kind, source, image, image_digest, commit_sha, "
                "config, secrets_version, rollback_of, workflow_id, idempotency_key, request_fingerprint, created_by) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (Jsonb(req.config), app_id, not created_app,
                 app_id, seq, req.release_seq or seq, req.kind, Jsonb(req.source), req.image, req.image_digest,
                 req.commit_sha,
                 Jsonb(req.config), secrets_version, req.rollback_of, f"{req.workflow_id_prefix}{seq}",
                 req.idempotency_key,
                 Jsonb(req.request_fingerprint) if req.request_fingerprint is not None else None, req.created_by),
            )
            row = await cur.fetchone()
            assert row is not None
            return ReleaseClaim(app=await self._app_in(conn, app_id), deployment=DeploymentRecord.model_validate(row),
                                created=True, rolling_out=rolling_out)

    async def release_by_key(self, app_id: UUID, idempotency_key: str) -> DeploymentRecord | None:
        """The release an idempotency key recorded for the app, if any (a look before a call writes anything
        else; `create_release` decides under the lock)."""
        row = await self._one("SELECT * FROM deployments WHERE app_id = %s AND idempotency_key = %s",
                              app_id, idempotency_key)
        return DeploymentRecord.model_validate(row) if row else None

    @staticmethod
    async def _app_in(conn: Connection, app_id: UUID) -> AppRecord:
        cur = await conn.execute(APP_SELECT + "WHERE a.id = %s", (app_id,))
        row = await cur.fetchone()
        assert row is not None
        return AppRecord.model_validate(row)

    @staticmethod
    async def _releases_so_far(conn: Connection, app_id: UUID, req: NewRelease
                               ) -> tuple[DeploymentRecord | None, int, list[DeploymentRecord]]:
        """In one read under the app's lock: the release this request recorded already (its key's, or the
        latest when it is the same release), the next number, and the releases still rolling out."""
        cur = await conn.execute(
            "SELECT * FROM deployments WHERE app_id = %s AND (seq = (SELECT max(seq) FROM deployments WHERE "
            "app_id = %s) OR phase <> ALL(%s) OR (%s::text IS NOT NULL AND idempotency_key = %s)) ORDER BY seq DESC",
            (app_id, app_id, list(TERMINAL_PHASES), req.idempotency_key, req.idempotency_key),
        )
        rows = [DeploymentRecord.model_validate(r) for r in await cur.fetchall()]
        latest = rows[0] if rows else None
        rolling_out = [d for d in rows if d.phase not in TERMINAL_PHASES]
        seq = (latest.seq if latest else 0) + 1
        if req.idempotency_key:
            return next((d for d in rows if d.idempotency_key == req.idempotency_key), None), seq, rolling_out
        if latest is None or latest.phase in (Phase.FAILED, Phase.CANCELLED) or latest.kind != req.kind:
            return None, seq, rolling_out
        same = (latest.image_digest == req.image_digest and latest.commit_sha == req.commit_sha
                and latest.config == req.config
                and req.new_secret_ciphertext is None and latest.secrets_version == req.base_secrets_version
                and (req.release_seq is None or latest.release_seq == req.release_seq))
        return (latest if same else None), seq, rolling_out

    async def set_deployment_phase(self, deployment_id: UUID, phase: Phase) -> None:
        # never move a finished release back (a retried activity may arrive late)
        await self._one(
            "UPDATE deployments SET phase = %s WHERE id = %s AND phase <> ALL(%s) RETURNING id",
            phase, deployment_id, list(TERMINAL_PHASES),
        )

    async def finish_deployment(
        self, deployment_id: UUID, app_id: UUID, phase: Phase, serving: bool, error: dict[str, Any] | None
    ) -> None:
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE deployments SET phase = %s, error = %s, finished_at = coalesce(finished_at, now()), "
                "healthy_at = CASE WHEN %s THEN coalesce(healthy_at, now()) ELSE healthy_at END "
                "WHERE id = %s",
                (phase, Jsonb(error) if error else None, phase == Phase.SUCCEEDED, deployment_id),
            )
            if serving:
                await conn.execute(
                    # a fixed count (`scale`) follows the release that now serves: a deploy with `replicas`
                    # changes the app's count, and the reconciler then holds the release to its own count
                    "UPDATE apps SET serving_deployment_id = %s, status = 'running', updated_at = now(), "
                    "scale = CASE WHEN scale ? 'replicas' THEN jsonb_build_object('replicas', "
                    "(SELECT (config->>'replicas')::int FROM deployments WHERE id = %s)) ELSE scale END "
                    "WHERE id = %s AND deleted_at IS NULL",
                    (deployment_id, deployment_id, app_id),
                )
            elif phase == Phase.FAILED:
                await conn.execute(
                    "UPDATE apps SET status = 'failed', updated_at = now() "
                    "WHERE id = %s AND serving_deployment_id IS NULL AND deleted_at IS NULL",
                    (app_id,),
                )

    async def set_deployment_image(self, deployment_id: UUID, image: str, digest: str) -> None:
        await self._one("UPDATE deployments SET image = %s, image_digest = %s WHERE id = %s RETURNING id",
                        image, digest, deployment_id)

