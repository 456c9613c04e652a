"""Builds: one row per build of a commit (reused once it succeeded), its log lines as they stream, and the
tenants' git credentials the builds clone with (values only as ciphertext)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from mcp_server.store.projects import PgProjects
from workflows.domain.build_contract import BuildDone, BuildInput, BuildStarted


class PgBuilds(PgProjects):
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
        async with self._connection() as conn, conn.cursor() as cur:
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
