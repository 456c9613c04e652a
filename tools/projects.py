"""Projects: the unit of isolation inside a tenant (one Kubernetes namespace each)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tools.context import call, tool


class ProjectView(BaseModel):
    name: str
    namespace: str = Field(description="Kubernetes namespace holding the project's apps.")
    apps: int = Field(description="Number of live apps.")
    created_at: datetime


class ProjectList(BaseModel):
    tenant: str
    projects: list[ProjectView]


@tool(title="List projects", scope="apps:read", read_only=True, idempotent=True)
async def list_projects() -> ProjectList:
    """List the projects of your tenant. Projects are created by `create_app` on first use."""
    c = call()
    rows = await c.store.list_projects(c.principal.tenant)
    return ProjectList(
        tenant=c.principal.tenant,
        projects=[ProjectView(name=p.name, namespace=p.namespace, apps=p.app_count, created_at=p.created_at)
                  for p in rows],
    )
