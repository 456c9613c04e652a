"""Apps: list and inspect. (`create_app`, `deploy` and `delete_app` join this family with the deploy workflow.)"""

from __future__ import annotations

from pydantic import BaseModel

from tools._args import AppName, ProjectName, check_name
from tools._runtime import call, tool
from tools.errors import NotFound
from tools.views import AppSummary, AppView, app_summary, app_view


class AppList(BaseModel):
    apps: list[AppSummary]


@tool(title="List apps", scope="apps:read", read_only=True, idempotent=True)
async def list_apps(project: ProjectName | None = None) -> AppList:
    """List the apps of your tenant, optionally of one project, with their URL and status."""
    c = call()
    if project is not None:
        check_name("project", project)
    rows = await c.store.list_apps(c.principal.tenant, project)
    return AppList(apps=[app_summary(a) for a in rows])


@tool(title="Get app", scope="apps:read", read_only=True, idempotent=True)
async def get_app(project: ProjectName, app: AppName) -> AppView:
    """Show one app: URL, status, configuration (env values omitted), the serving release and recent releases."""
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await c.store.get_app(c.principal.tenant, project, app)
    if row is None:
        raise NotFound("app", f"{project}/{app}", hint="Call `list_apps` to see the apps you have.")
    return app_view(row, await c.store.list_deployments(row.id, limit=10))
