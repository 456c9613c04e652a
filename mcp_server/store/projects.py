"""Tenants and projects: created on first use, and the base the other aggregates' writes build on (a volume,
a token, a git credential or an app belongs to a tenant, most of them through a project)."""

from __future__ import annotations

from mcp_server.store.pool import PgPool
from tools.records import ProjectRecord, TenantRecord
from workflows.domain.names import namespace_name


class PgProjects(PgPool):
    async def ensure_tenant(self, name: str) -> TenantRecord:
        # DO NOTHING, then read: an upsert would row-lock the tenant until the caller's transaction ends,
        # serialising every release of the tenant behind it
        row = await self._one("INSERT INTO tenants (name) VALUES (%s) ON CONFLICT (name) DO NOTHING "
                              "RETURNING id, name", name) \
            or await self._one("SELECT id, name FROM tenants WHERE name = %s", name)
        assert row is not None
        return TenantRecord(**row)

    async def ensure_project(self, tenant: str, project: str) -> ProjectRecord:
        # read first: the project exists on every call but its first, and reading it is one round trip where
        # ensuring tenant and project is four
        found = await self.get_project(tenant, project)
        if found is not None:
            return found
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
