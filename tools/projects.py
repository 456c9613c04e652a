"""Projects: the unit of isolation inside a tenant (one Kubernetes namespace each)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tools.context import CallContext


class ProjectView(BaseModel):
    name: str
    namespace: str = Field(description="Kubernetes namespace holding the project's apps.")
    apps: int = Field(description="Number of live apps.")
    created_at: datetime


async def project_views(c: CallContext) -> list[ProjectView]:
    """The tenant's projects (listed by `apps`). Projects are created by `create_app` on first use."""
    return [ProjectView(name=p.name, namespace=p.namespace, apps=p.app_count, created_at=p.created_at)
            for p in await c.store.list_projects(c.principal.tenant)]
