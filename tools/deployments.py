"""Releases of an app: follow one, list the history."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from tools.args import AppName, ProjectName, check_name
from tools.context import call, tool
from tools.errors import NotFound
from tools.lookups import require_app
from tools.status import ObservedStatus, observed_status, observed_view
from tools.views import DeploymentView, app_url, deployment_view


class DeploymentDetail(DeploymentView):
    app: str
    project: str
    url: str
    config: dict[str, object] = Field(description="The configuration this release runs with (env values omitted).")
    app_status: str = Field(description="The app's status as observed (running, degraded, ...; see get_app).")
    status_reason: str | None = Field(None, description="Why the app is degraded.")
    observed: ObservedStatus | None = Field(None, description="The platform's last look at this release in the "
                                                              "cluster, while it is the serving one.")


class DeploymentList(BaseModel):
    app: str
    serving_deployment_id: UUID | None
    deployments: list[DeploymentView]


@tool(title="Get deployment", scope="apps:read", read_only=True, idempotent=True)
async def get_deployment(deployment_id: Annotated[UUID, Field(description="Id returned by create_app/deploy.")]
                         ) -> DeploymentDetail:
    """One release: its phase (pending, namespace, release, waiting, switching, succeeded, failed, cancelled),
    image digest, secrets version, whether it is serving, the first real error with a hint when it failed, and
    for the serving release what the platform last observed of it in the cluster (`observed`, `app_status`)."""
    c = call()
    d = await c.store.get_deployment(c.principal.tenant, deployment_id)
    if d is None:
        raise NotFound("deployment", str(deployment_id), hint="Call `list_deployments` for the app's releases.")
    app = await c.store.get_app_by_id(d.app_id)
    assert app is not None
    config = {k: v for k, v in d.config.items() if k != "env"} | {"env_names": sorted(d.config.get("env") or {})}
    obs = (await c.store.observations([app.id])).get(app.id)
    status, reason = observed_status(app, obs, c.config, releasing=bool(await c.store.releasing([app.id])))
    serving = app.serving_deployment_id == d.id
    return DeploymentDetail(**deployment_view(d, app).model_dump(), app=app.name, project=app.project,
                            url=app_url(app, c.config.apps_url_port), config=config, app_status=status,
                            status_reason=reason, observed=observed_view(obs) if serving else None)


@tool(title="List deployments", scope="apps:read", read_only=True, idempotent=True)
async def list_deployments(
    project: ProjectName,
    app: AppName,
    limit: Annotated[int, Field(ge=1, le=100, description="Newest first.")] = 20,
) -> DeploymentList:
    """The app's release history, newest first: who released what (digest, secrets version), when, with
    which outcome, and which release is serving."""
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await require_app(c, project, app)
    ds = await c.store.list_deployments(row.id, limit)
    return DeploymentList(app=f"{project}/{app}", serving_deployment_id=row.serving_deployment_id,
                          deployments=[deployment_view(d, row) for d in ds])
