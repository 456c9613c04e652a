"""`rollback`: restore exactly what ran before — its image digest, its configuration, its secrets version —
instantly (a Service switch) while that release is still warm, otherwise by scaling it up again first.
Never rebuilds, never resolves a tag again."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

from mcp.server.mcpserver import Context
from pydantic import Field

from tools.args import AppName, IdempotencyKey, PlanFlag, ProjectName, Wait, check_name
from tools.context import call, tool
from tools.errors import Conflict, InvalidInput
from tools.idempotency import check_same_request, request_fingerprint
from tools.lookups import require_app
from tools.plan import PlanReady
from tools.planned import release_plan
from tools.records import AppRecord, DeploymentRecord, NewRelease
from tools.releases import (
    ReleaseResult,
    ResolvedSource,
    check_release_kind,
    claim_and_start,
    wait_bound,
    wait_with_progress,
)
from workflows.domain.names import app_hostname, release_name
from workflows.domain.scaling import AppScale, scale_refusal
from workflows.domain.specs import AppConfig


def rollback_workflow_prefix(tenant: str, project: str, app: str) -> str:
    return f"rollback/{tenant}/{project}/{app}/r"


@tool(title="Roll back", scope="apps:write", idempotent=True, open_world=True)
async def rollback(
    project: ProjectName,
    app: AppName,
    ctx: Context,
    to: Annotated[UUID | None, Field(description="Deployment to restore; default: the last healthy one.")] = None,
    force: Annotated[bool, Field(description="Allow one that never became healthy.")] = False,
    idempotency_key: IdempotencyKey = None,
    wait_seconds: Wait = None,
    plan: PlanFlag = False,
) -> ReleaseResult:
    """Restore an earlier release exactly (image digest, config, secrets version); instant while it is still
    warm. Cancels a deploy still rolling out."""
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await require_app(c, project, app)
    if not plan:
        c.require_workflows()
    # two reads, sent together: the call's time to switched starts with them
    history, rolling_out = await asyncio.gather(c.store.list_deployments(row.id, limit=100),
                                                c.store.in_flight(row.id))
    serving = next((d for d in history if d.id == row.serving_deployment_id), None)
    fingerprint = request_fingerprint(c, "rollback", {"project": project, "app": app, "to": to, "force": force}) \
        if idempotency_key else None
    first = await c.store.release_by_key(row.id, idempotency_key) if idempotency_key else None
    if first is not None and idempotency_key and fingerprint:
        # A retry answers with the first call's rollback (checked like every key), although its target may
        # serve by now: the checks below are for new rollbacks only.
        check_release_kind(idempotency_key, first, "rollback")
        check_same_request(idempotency_key, first.request_fingerprint, fingerprint)
        target = next((d for d in history if d.id == first.rollback_of), None) or first
    else:
        target = await _new_target(app, history, serving, bool(rolling_out), to, force)
    if plan:
        raise PlanReady(await release_plan(
            c, "rollback", project=project, app=app, existing=row,
            config=AppConfig.model_validate(rollback_config(row, target)),
            resolved=ResolvedSource(repository=target.image or "", digest=target.image_digest,
                                    commit_sha=target.commit_sha, stored=target.source),
            secret_names=[], secrets_changed=[], rollback_seq=target.release_seq))
    claim = await claim_and_start(c, NewRelease(
        tenant=c.principal.tenant, project=project, app=app,
        hostname=app_hostname(app, project, c.principal.tenant, c.config.apps_domain), create=False,
        config=rollback_config(row, target), source=target.source, image=target.image or "",
        image_digest=target.image_digest or "",
        commit_sha=target.commit_sha, idempotency_key=idempotency_key, created_by=c.principal.subject,
        kind="rollback", rollback_of=target.id, release_seq=target.release_seq,
        base_secrets_version=target.secrets_version,
        workflow_id_prefix=rollback_workflow_prefix(c.principal.tenant, project, app),
        request_fingerprint=fingerprint,
    ))
    return await wait_with_progress(c, claim, ctx, wait_bound(c, wait_seconds))


async def _new_target(app: str, history: list[DeploymentRecord], serving: DeploymentRecord | None,
                      rolling_out: bool, to: UUID | None, force: bool) -> DeploymentRecord:
    if to is None and rolling_out and serving is not None:
        # Rolling back during a rollout means: stop it, keep what serves. The rollout is cancelled below.
        return serving
    target = await _target(history, serving, to)
    if target.healthy_at is None and not force:
        raise InvalidInput("to", f"release {release_name(app, target.release_seq)} never became healthy "
                           f"({target.phase})", "pick a release that served (see `deployments`), or pass "
                           "force=true")
    if serving is not None and target.release_seq == serving.release_seq and not rolling_out:
        raise Conflict(f"{release_name(app, target.release_seq)} is already serving.",
                       hint="Pass `to` with another deployment id from `deployments`.")
    return target


async def _target(history: list[DeploymentRecord], serving: DeploymentRecord | None,
                  to: UUID | None) -> DeploymentRecord:
    if to is not None:
        found = next((d for d in history if d.id == to), None)
        if found is None:
            raise InvalidInput("to", f"{to} is not one of this app's last 100 deployments",
                               "take an id from `deployments`")
        return found
    for d in history:  # newest first
        if d.healthy_at is not None and (serving is None or d.release_seq != serving.release_seq):
            return d
    raise InvalidInput("to", "this app has no earlier healthy release", "deploy a fixed version instead")


def rollback_config(app: AppRecord, target: DeploymentRecord) -> dict[str, Any]:
    """The target's configuration, at the app's current fixed count when `scale` set one (a rollback keeps the
    count), unless the target mounts a volume with one writer; an autoscaled app's count is the workflow's."""
    recorded = AppScale.model_validate(app.scale) if app.scale else None
    if recorded is None or recorded.replicas is None:
        return target.config
    config = AppConfig.model_validate(target.config)
    if scale_refusal(config, recorded.replicas, None) is not None:
        return target.config
    return {**target.config, "replicas": recorded.replicas}
