"""Releases of an app: follow one, list the history."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field

from tools.args import AppName, ProjectName, check_name
from tools.context import call, tool
from tools.diagnose import diagnosis
from tools.errors import InvalidInput, NotFound
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


@tool(title="Deployments", scope="apps:read", read_only=True, idempotent=True, open_world=True)
async def deployments(
    project: ProjectName | None = None,
    app: AppName | None = None,
    deployment_id: Annotated[UUID | None, Field(description="One release: phase, config, error with hint.")] = None,
    diagnose: Annotated[bool, Field(description="With deployment_id: ask the cluster why it fails (pod states, "
                                                "events, last log lines) and the next step.")] = False,
    limit: Annotated[int, Field(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """An app's releases, newest first (`project`, `app`), or one release (`deployment_id`)."""
    if deployment_id is not None:
        if diagnose:
            return (await diagnosis(deployment_id)).model_dump(mode="json")
        return (await deployment_detail(deployment_id)).model_dump(mode="json")
    if diagnose:
        raise InvalidInput("diagnose", "needs `deployment_id`", "pass the id of the release to diagnose")
    if project is None or app is None:
        raise InvalidInput("project" if project is None else "app", "is needed to list releases",
                           "pass `project` and `app`, or `deployment_id`")
    return (await deployment_list(project, app, limit)).model_dump(mode="json")


async def deployment_detail(deployment_id: UUID) -> DeploymentDetail:
    c = call()
    d = await c.store.get_deployment(c.principal.tenant, deployment_id)
    if d is None:
        raise NotFound("deployment", str(deployment_id), hint="Call `deployments` with the app for its releases.")
    app = await c.store.get_app_by_id(d.app_id)
    assert app is not None
    config = {k: v for k, v in d.config.items() if k != "env"} | {"env_names": sorted(d.config.get("env") or {})}
    obs = (await c.store.observations([app.id])).get(app.id)
    status, reason = observed_status(app, obs, c.config, releasing=bool(await c.store.releasing([app.id])))
    serving = app.serving_deployment_id == d.id
    return DeploymentDetail(**deployment_view(d, app).model_dump(), app=app.name, project=app.project,
                            url=app_url(app, c.config.apps_url_port), config=config, app_status=status,
                            status_reason=reason, observed=observed_view(obs) if serving else None)


async def deployment_list(project: str, app: str, limit: int) -> DeploymentList:
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await require_app(c, project, app)
    ds = await c.store.list_deployments(row.id, limit)
    return DeploymentList(app=f"{project}/{app}", serving_deployment_id=row.serving_deployment_id,
                          deployments=[deployment_view(d, row) for d in ds])
