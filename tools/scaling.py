"""Scaling: `scale` (the serving release's replicas in place, or an autoscaler) and `app_metrics` (CPU, memory,
restarts and OOM kills per pod). Both run on the worker (`workflows/scale.py`): tools never talk to the cluster.
See docs/tools/scaling.md and docs/decisions/0015-autoscaling.md.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tools.args import AppName, PlanFlag, ProjectName, check_name
from tools.context import call, tool
from tools.errors import Conflict, InvalidInput, Unavailable
from tools.lookups import require_app
from tools.plan import PlanReady
from tools.planned import scale_plan
from workflows.domain.scaling import AppScale, Autoscale, drop_titles, scale_refusal
from workflows.domain.scaling_contract import AppMetrics, MetricsInput, ScaleInput
from workflows.domain.specs import AppConfig
from workflows.domain.workflow_ids import scale_workflow_id

SCALE_WAIT_SECONDS = 30.0


class ScaleView(BaseModel):
    model_config = ConfigDict(json_schema_extra=drop_titles)

    release: str = ""
    replicas: int = Field(0, description="The count now (0: still scaling).")


@tool(title="Scale app", scope="apps:write", idempotent=True, open_world=True)
async def scale(
    project: ProjectName,
    app: AppName,
    replicas: Annotated[int | None, Field(ge=1, le=20)] = None,
    autoscale: Autoscale | None = None,
    plan: PlanFlag = False,
) -> ScaleView:
    """Set the serving release's replicas in place, kept by later deploys and rollbacks; or `autoscale`;
    neither: stop autoscaling."""
    c = call()
    check_name("project", project)
    check_name("app", app)
    if replicas is not None and autoscale is not None:
        raise InvalidInput("autoscale", "cannot be given with replicas", "pass replicas=N or autoscale={...}")
    row = await require_app(c, project, app)
    recorded = AppScale.model_validate(row.scale) if row.scale else None
    if replicas is None and autoscale is None and (recorded is None or recorded.autoscale is None):
        raise InvalidInput("replicas", "the app is not autoscaled, so there is nothing to stop",
                           "pass replicas=N or autoscale={min, max, cpu_percent}")
    refusal = scale_refusal(AppConfig.model_validate(row.spec), replicas, autoscale)
    if refusal is not None:
        raise InvalidInput("autoscale" if autoscale is not None else "replicas", refusal[0], refusal[1])
    if plan:
        raise PlanReady(await scale_plan(c, row, replicas, autoscale))
    # a release in progress is refused by the workflow, under the app's lock (its workflow must still run)
    workflows = c.require_workflows()
    wf_id = scale_workflow_id(row.id, uuid.uuid4().hex[:12])
    c.audit.workflow_id = wf_id
    c.audit.k8s_refs = [f"Deployment/{row.namespace}/{app}-r*", f"HorizontalPodAutoscaler/{row.namespace}/{app}"]
    result = await workflows.run_scale(wf_id, ScaleInput(app_id=row.id, replicas=replicas, autoscale=autoscale),
                                       SCALE_WAIT_SECONDS)
    if result is None:
        return ScaleView()
    if result.outcome == "refused":
        raise Conflict(f"Not scaled: {result.reason}.", hint=f"Fix: {result.fix}." if result.fix else None)
    if result.outcome == "failed":
        raise Unavailable(f"Not scaled: {result.reason}.", hint=f"{result.fix}." if result.fix else None)
    c.audit.k8s_refs = result.refs
    return ScaleView(release=result.release or "", replicas=result.replicas or 0)


@tool(title="App metrics", scope="apps:read", read_only=True, idempotent=True, open_world=True)
async def app_metrics(
    project: ProjectName,
    app: AppName,
    window_seconds: Annotated[int, Field(ge=0, le=60)] = 20,
) -> AppMetrics:
    """CPU and memory per pod, now and over `window_seconds`, with restarts and OOM kills."""
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await require_app(c, project, app)
    inp = MetricsInput(namespace=row.namespace, app=row.name, window_seconds=window_seconds,
                       samples=3 if window_seconds else 1)
    return await c.require_workflows().app_metrics(inp)
