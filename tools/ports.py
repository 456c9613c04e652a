"""What the tools need from the layer above them, as protocols.

The import direction is `mcp_server -> tools -> workflows`: the Postgres store lives in `mcp_server`, so the
tools name what they need here and `mcp_server` hands in the implementation (see
docs/decisions/0002-ports-for-the-store.md). mypy checks that the implementation fits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from tools.records import AppRecord, AuditEvent, DeploymentRecord, ProjectRecord, TenantRecord


class Store(Protocol):
    async def ensure_tenant(self, name: str) -> TenantRecord: ...

    async def list_projects(self, tenant: str) -> list[ProjectRecord]: ...

    async def get_project(self, tenant: str, project: str) -> ProjectRecord | None: ...

    async def list_apps(self, tenant: str, project: str | None) -> list[AppRecord]: ...

    async def get_app(self, tenant: str, project: str, app: str) -> AppRecord | None: ...

    async def list_deployments(self, app_id: UUID, limit: int) -> list[DeploymentRecord]: ...

    async def record_audit(self, event: AuditEvent) -> None: ...

    async def list_audit(
        self, tenant: str, tool: str | None, since: datetime | None, before_id: int | None, limit: int
    ) -> list[AuditEvent]: ...
