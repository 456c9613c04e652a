"""Apps and their deployments as the tools read them, and the app's own status as deletion moves it.

Recording a release (which writes the app, a deployment and maybe a secrets version at once) is in
`releases.py`; this module is the reads and the single-row updates.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from mcp_server.store.pool import PgPool
from tools.records import AppRecord, DeploymentRecord
from workflows.domain.phases import TERMINAL_PHASES

APP_SELECT = """
SELECT a.*, p.name AS project, p.namespace, t.name AS tenant
FROM apps a JOIN projects p ON p.id = a.project_id JOIN tenants t ON t.id = p.tenant_id
"""


class PgApps(PgPool):
    @staticmethod
    def _app(row: dict[str, Any]) -> AppRecord:
        return AppRecord.model_validate(row)

    async def list_apps(self, tenant: str, project: str | None) -> list[AppRecord]:
        rows = await self._all(
            APP_SELECT + "WHERE t.name = %s AND (%s::text IS NULL OR p.name = %s) AND a.deleted_at IS NULL "
            "ORDER BY p.name, a.name",
            tenant, project, project,
        )
        return [self._app(r) for r in rows]

    async def get_app(self, tenant: str, project: str, app: str) -> AppRecord | None:
        row = await self._one(
            APP_SELECT + "WHERE t.name = %s AND p.name = %s AND a.name = %s AND a.deleted_at IS NULL",
            tenant, project, app,
        )
        return self._app(row) if row else None

    async def get_app_by_id(self, app_id: UUID) -> AppRecord | None:
        row = await self._one(APP_SELECT + "WHERE a.id = %s", app_id)
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

    async def mark_app_deleting(self, app_id: UUID) -> None:
        await self._one("UPDATE apps SET status = 'deleting', updated_at = now() WHERE id = %s RETURNING id", app_id)

    async def mark_app_deleted(self, app_id: UUID) -> None:
        await self._one(
            "UPDATE apps SET status = 'deleted', deleted_at = coalesce(deleted_at, now()), updated_at = now() "
            "WHERE id = %s RETURNING id",
            app_id,
        )
