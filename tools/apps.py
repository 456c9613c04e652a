"""Apps: create, deploy, inspect, delete."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from tools.app_delete import app_refs, delete_preview, previews_of, start_app_delete, stop_app
from tools.args import AppName, IdempotencyKey, PlanFlag, ProjectName, ShutdownGrace, Wait, check_name
from tools.context import CallContext, call, tool
from tools.databases import (
    AppDeleteChoice,
    DatabaseRequest,
    app_database_view,
    check_request,
    connection_values,
    create_database,
    database_for_app_delete,
    start_database_for_app,
)
from tools.domains import add_domain, check_hostname
from tools.errors import InvalidInput
from tools.idempotency import request_fingerprint
from tools.lookups import require_app
from tools.plan import Plan, PlannedRow, PlanReady, make_plan
from tools.planned import release_plan, volume_spec_for
from tools.projects import ProjectView, project_views
from tools.records import AppRecord
from tools.releases import (
    ReleaseResult,
    ResolvedSource,
    Source,
    check_env,
    check_environment,
    check_release_key,
    parse_source,
    record_and_start,
    resolve_source,
    wait_bound,
    wait_with_progress,
)
from tools.views import AppSummary, app_summary, app_view
from tools.volumes import VolumeRequest, check_volume_requests, mounts_config, volumes_for_new_app
from workflows.domain.database_spec import CONNECTION_VARIABLES
from workflows.domain.env_limits import MAX_VARIABLES
from workflows.domain.specs import AppConfig, HealthCheck, Mount, Resources
from workflows.render.volume import volume_pvc

ENV_LIMITS = f"Env + secrets: <= {MAX_VARIABLES} variables, 256 KiB."


class AppList(BaseModel):
    tenant: str
    projects: list[ProjectView]
    apps: list[AppSummary]


@tool(title="Apps", scope="apps:read", read_only=True, idempotent=True)
async def apps(project: ProjectName | None = None, app: AppName | None = None) -> dict[str, Any]:
    """Without `app`: your projects and apps with URL and observed status. With `project` and `app`: that app's
    config (env values omitted), observed state and recent releases."""
    c = call()
    if project is not None:
        check_name("project", project)
    if app is not None:
        if project is None:
            raise InvalidInput("project", "is needed with `app`", "pass the app's project")
        check_name("app", app)
        row = await require_app(c, project, app, hint="Call `apps` to see the apps you have.")
        seen = await c.store.observations([row.id])
        domains = (await c.store.domains_of_apps([row.id])).get(row.id)
        view = app_view(row, await c.store.list_deployments(row.id, limit=10), c.config.apps_url_port,
                        seen.get(row.id), c.config, domains)
        return view.model_copy(update={"database": app_database_view(c, await c.store.database_of_app(row.id))}
                               ).model_dump(mode="json")
    rows = await c.store.list_apps(c.principal.tenant, project)
    ids = [a.id for a in rows]
    seen, releasing = await c.store.observations(ids), await c.store.releasing(ids)
    projects = [p for p in await project_views(c) if project is None or p.name == project]
    return AppList(tenant=c.principal.tenant, projects=projects,
                   apps=[app_summary(a, c.config.apps_url_port, seen.get(a.id), c.config, a.id in releasing)
                         for a in rows]).model_dump(mode="json")


@tool(title="Create app", scope="apps:write", idempotent=True, open_world=True, secret_args=frozenset({"secrets"}))
async def create_app(
    project: ProjectName,
    name: AppName,
    source: Source,
    port: Annotated[int, Field(ge=1, le=65535, description="Port the app listens on.")],
    ctx: Context,
    env: Annotated[dict[str, str] | None, Field(description="Plain env vars. " + ENV_LIMITS)] = None,
    secrets: Annotated[dict[str, str] | None, Field(description="Secret env vars: write-only, encrypted.")] = None,
    replicas: Annotated[int, Field(ge=1, le=20)] = 1,
    resources: Annotated[Resources | None, Field(description="Per replica; default 250m CPU, 256 MiB.")] = None,
    health_check: Annotated[HealthCheck | None, Field(description="Default: TCP on `port`.")] = None,
    volumes: Annotated[list[VolumeRequest] | None, Field(description="Volumes to create and mount.",
                                                         max_length=8)] = None,
    shutdown_grace_seconds: ShutdownGrace = None,
    database: Annotated[DatabaseRequest | None, Field(description="A Postgres named like the app, private to it; "
                                                                  "it gets DATABASE_URL and PG* as secrets.")] = None,
    domains: Annotated[list[str] | None, Field(description="Custom hostnames to add (see `domain`).",
                                               max_length=10)] = None,
    idempotency_key: IdempotencyKey = None,
    wait_seconds: Wait = None,
    plan: PlanFlag = False,
) -> ReleaseResult:
    """Create an app from an image or a git repository and release it: project on first use, sandboxed pods, a
    URL served once Ready. Waits with progress; on failure `error` and `app_output` say why."""
    c = call()
    check_name("project", project)
    check_name("name", name)
    if secrets:
        c.require("secrets:write")
    check_env("env", env or {})
    check_env("secrets", secrets or {})
    check_environment("env + secrets", env or {}, secrets or {})  # before any volume is made
    config = build_config(port=port, env=env or {}, replicas=replicas, resources=resources, health_check=health_check,
                          shutdown_grace_seconds=shutdown_grace_seconds)
    requests = check_volume_requests(volumes or [], replicas)
    if requests:
        c.require("volumes:write")
    parse_source(source)
    if not plan:  # a plan starts nothing, so it needs no worker
        c.require_workflows()
    hostnames = [check_hostname(c, f"domains[{i}]", h) for i, h in enumerate(domains or [])]
    if hostnames:
        c.require("domains:write")
    fingerprint = request_fingerprint(c, "create_app", {
        "project": project, "name": name, "source": source, "port": port, "env": env, "secrets": secrets,
        "replicas": replicas, "resources": resources, "health_check": health_check, "volumes": volumes,
        "shutdown_grace_seconds": shutdown_grace_seconds, "database": database, "domains": domains},
        frozenset({"secrets"})) if idempotency_key else None
    existing = await c.store.get_app(c.principal.tenant, project, name) if idempotency_key else None
    if existing is not None:
        await check_release_key(c, existing.id, idempotency_key, fingerprint)
    if database is not None:  # refused before anything is made
        c.require("databases:write")
        check_request(c, database)
    resolved = await resolve_source(c, source, name)
    if plan:
        raise PlanReady(await _create_plan(c, project, name, config, resolved, requests, secrets or {}, database,
                                           hostnames))
    if requests:
        mounts = await volumes_for_new_app(c, project, requests, wait_bound(c, wait_seconds))
        config = mounts_config(config, mounts)
    secret_changes: dict[str, str | None] = dict(secrets or {})
    db = None
    if database is not None:
        db, _ = await create_database(c, project, name, database, 0, start=False)
        secret_changes.update(connection_values(c, db))
    claim = await record_and_start(
        c, project=project, app=name, create=True, resolved=resolved, config=config,
        secret_changes=secret_changes or None, idempotency_key=idempotency_key, existing=None,
        fingerprint=fingerprint,
    )
    if db is not None:
        await start_database_for_app(c, db, claim.app)
    for m in config.mounts:
        vol = await c.store.get_volume(c.principal.tenant, project, m.volume)
        if vol is not None:
            await c.store.set_attachment(vol.id, claim.app.id, m.mount_path, m.read_only)
    for host in hostnames:
        await add_domain(c, claim.app, host)
    result = await wait_with_progress(c, claim, ctx, wait_bound(c, wait_seconds))
    if hostnames:
        result = result.model_copy(update={"next_step": result.next_step + " Custom domains: create the DNS records "
                                                        "`domains` lists for them."})
    return result


@tool(title="Deploy", scope="apps:write", idempotent=True, open_world=True, secret_args=frozenset({"secrets"}))
async def deploy(
    project: ProjectName,
    app: AppName,
    ctx: Context,
    source: Annotated[Source | None, Field(description="Default: the current source, resolved again.")] = None,
    env: Annotated[dict[str, str | None] | None, Field(description="Changes; null removes one.")] = None,
    secrets: Annotated[dict[str, str | None] | None, Field(description="Changes; null removes one.")] = None,
    replicas: Annotated[int | None, Field(ge=1, le=20)] = None,
    resources: Resources | None = None,
    health_check: HealthCheck | None = None,
    shutdown_grace_seconds: ShutdownGrace = None,
    idempotency_key: IdempotencyKey = None,
    wait_seconds: Wait = None,
    plan: PlanFlag = False,
) -> ReleaseResult:
    """Release a new version of an app (image, commit and/or config), blue/green: the URL switches once it is
    Ready, else the serving release stays. Supersedes a release still rolling out."""
    c = call()
    check_name("project", project)
    check_name("app", app)
    if secrets:
        c.require("secrets:write")
    check_env("env", env or {})
    check_env("secrets", secrets or {})
    current = await require_app(c, project, app, hint="Create it with `create_app`.")
    if replicas is not None and current.scale and current.scale.get("autoscale"):
        raise InvalidInput("replicas", "the app is autoscaled, so its count is the autoscaler's",
                           "omit replicas, or call `scale` (replicas=N fixes a count)")
    if not plan:
        c.require_workflows()
    fingerprint = request_fingerprint(c, "deploy", {
        "project": project, "app": app, "source": source, "env": env, "secrets": secrets, "replicas": replicas,
        "resources": resources, "health_check": health_check, "shutdown_grace_seconds": shutdown_grace_seconds},
        frozenset({"secrets"})) if idempotency_key else None
    old = AppConfig.model_validate(current.spec)
    new_env = dict(old.env)
    for k, v in (env or {}).items():
        if v is None:
            new_env.pop(k, None)
        else:
            new_env[k] = v
    config = build_config(
        port=old.port, env=new_env, replicas=replicas or old.replicas, resources=resources or old.resources,
        health_check=health_check or old.health_check, base=old,
        shutdown_grace_seconds=shutdown_grace_seconds or old.shutdown_grace_seconds,
    )
    if config.mounts:
        config = mounts_config(config, config.mounts)  # more replicas than a single_node volume allows?
    if source is None:
        latest = await c.store.list_deployments(current.id, limit=1)
        if not latest:
            raise InvalidInput("source", "the app has no earlier source to deploy again", "pass source")
        stored = dict(latest[0].source)
        if "git" in stored:  # the same branch again: a new commit on it deploys
            stored["git"] = {k: v for k, v in stored["git"].items() if k != "commit"}
        source = Source.model_validate(stored)
    resolved = await resolve_source(c, source, app)
    if plan:
        current_secrets = await c.store.current_secrets(current.id)
        names = sorted((set(current_secrets.names) | {k for k, v in (secrets or {}).items() if v is not None})
                       - {k for k, v in (secrets or {}).items() if v is None})
        raise PlanReady(await release_plan(c, "deploy", project=project, app=app, existing=current, config=config,
                                  resolved=resolved, secret_names=names, secrets_changed=sorted(secrets or {})))
    claim = await record_and_start(
        c, project=project, app=app, create=False, resolved=resolved, config=config,
        secret_changes=dict(secrets) if secrets else None, idempotency_key=idempotency_key, existing=current,
        fingerprint=fingerprint,
    )
    return await wait_with_progress(c, claim, ctx, wait_bound(c, wait_seconds))


class DeleteResult(BaseModel):
    app: str
    workflow_id: str
    done: bool
    status: str
    previews: list[str] = Field(default_factory=list, description="Its pull request previews, deleted with it.")
    next_step: str


@tool(title="Delete app", scope="apps:write", destructive=True, idempotent=True, open_world=True)
async def delete_app(
    project: ProjectName,
    app: AppName,
    confirm: Annotated[str, Field(description="`<project>/<app>`.", max_length=100)],
    ctx: Context,
    wait_seconds: Wait = None,
    database: Annotated[AppDeleteChoice | None, Field(description=(
        "When the app has a database: `detach` keeps it (data, backups) without the app; `delete` deletes it "
        "too, after a final backup. Without it, an app with a database is not deleted."))] = None,
    plan: PlanFlag = False,
) -> DeleteResult:
    """Delete an app, its releases and its pull request previews (volumes and audit kept). Irreversible. An app
    with a database needs `database` (detach or delete): nothing is deleted until that step succeeded."""
    c = call()
    check_name("project", project)
    check_name("app", app)
    if confirm != f"{project}/{app}":
        raise InvalidInput("confirm", f"must be exactly {project}/{app!s} to delete that app",
                           f"pass confirm={project}/{app!r}".replace("'", ""))
    row = await require_app(c, project, app)
    if plan:  # what the delete workflow removes; volumes and the audit trail stay
        if database is None:  # refused as the call itself is when the app has a database (no side effect then)
            await database_for_app_delete(c, row, None, 0)
        raise PlanReady(await _delete_plan(c, row))
    c.require_workflows()
    # the one step that may refuse comes first: until it succeeded, neither the app nor a preview is touched
    refs = await database_for_app_delete(c, row, database, wait_bound(c, wait_seconds))
    c.audit.k8s_refs = refs
    # stopped before its previews are read: a delivery still in flight then either recorded its preview before
    # that read or finds the app deleting and deletes its preview itself (`tools.push_deploys`)
    await stop_app(c, row)
    previews = await previews_of(c, row)
    for p in previews:  # any failure here is retried by calling again: what is done is not done twice
        _, preview_refs = await delete_preview(c, row.id, p)
        refs += preview_refs
        c.audit.k8s_refs = refs
    wf_id = await start_app_delete(c, row)
    c.audit.workflow_id = wf_id
    c.audit.k8s_refs = app_refs(row) + refs
    ids = [row.id] + [p.app.id for p in previews]
    deadline = time.monotonic() + wait_bound(c, wait_seconds)
    while True:  # done once the app and every preview are gone
        now = [await c.store.get_app_by_id(i) for i in ids]
        status = now[0].status if now[0] else "deleted"
        done = all(r is None or r.status == "deleted" for r in now)
        if done or time.monotonic() >= deadline:
            break
        await ctx.report_progress(0, 1, "deleting")
        await asyncio.sleep(0.25)
    return DeleteResult(app=f"{project}/{app}", workflow_id=wf_id, done=done, status=status,
                        previews=[f"{p.app.project}/{p.app.name}" for p in previews],
                        next_step="Deleted." if done else "Still deleting; `apps` shows when it is gone.")


async def _delete_plan(c: CallContext, row: AppRecord) -> Plan:
    """delete_app's plan: the app and each preview marked deleting (a preview's database detached, as a closed
    pull request leaves it), the push-deploy connection removed, and the objects their delete workflows remove."""
    key = f"{row.project}/{row.name}"
    rows = [PlannedRow(table="apps", action="update", key=key, fields={"status": "deleting"})]
    deletes = app_refs(row)
    if await c.store.push_connection(row.id) is not None:
        rows.append(PlannedRow(table="push_connections", action="delete", key=key))
    for p in await previews_of(c, row):
        rows += [PlannedRow(table="apps", action="update", key=f"{p.app.project}/{p.app.name}",
                            fields={"status": "deleting", "preview_of": key, "pull_request": p.number}),
                 PlannedRow(table="preview_apps", action="delete", key=f"{key}#{p.number}")]
        d = await c.store.database_of_app(p.app.id)
        if d is not None:
            rows.append(PlannedRow(table="databases", action="update", key=f"{d.project}/{d.name}",
                                   fields={"app": None}))
        deletes += app_refs(p.app)
    return await make_plan(c, "delete_app", rows, deletes=deletes)


async def _create_plan(c: CallContext, project: str, name: str, config: AppConfig, resolved: ResolvedSource,
                       requests: list[VolumeRequest], secrets: dict[str, str], database: DatabaseRequest | None,
                       hostnames: list[str]) -> Plan:
    """create_app's plan: the app's first release, with the volumes, database and domain claims it would add
    (their objects are their own tools' plans: `volume`, `database`, `domain` with plan=true)."""
    tenant = c.principal.tenant
    extra: list[dict[str, Any]] = []
    rows: list[PlannedRow] = []
    mounts = []
    for req in requests:
        spec = volume_spec_for(c, tenant, project, req.name, req.size_gib, req.volume_class, req.access)
        extra.append(volume_pvc(spec))
        rows.append(PlannedRow(table="volumes", action="insert", key=f"{project}/{req.name}",
                               fields={"size_gib": req.size_gib, "mount_path": req.mount_path}))
        mounts.append(Mount(volume=req.name, claim=spec.claim, mount_path=req.mount_path.rstrip("/"),
                            access=req.access))
    if mounts:
        config = mounts_config(config, mounts)
    names = sorted(secrets)
    if database is not None:
        rows.append(PlannedRow(table="databases", action="insert", key=f"{project}/{name}",
                               fields={"app": f"{project}/{name}"}))
        names = sorted(set(names) | set(CONNECTION_VARIABLES))
    rows += [PlannedRow(table="domains", action="insert", key=h, fields={"status": "verifying"}) for h in hostnames]
    return await release_plan(c, "create_app", project=project, app=name, existing=None, config=config,
                              resolved=resolved, secret_names=names, secrets_changed=names, extra_rows=rows,
                              extra_objects=extra)


def build_config(*, port: int, env: dict[str, str], replicas: int, resources: Resources | None,
                 health_check: HealthCheck | None, base: AppConfig | None = None,
                 shutdown_grace_seconds: int | None = None) -> AppConfig:
    res = resources or Resources()
    if res.cpu_limit_millicores < res.cpu_millicores:
        raise InvalidInput("resources.cpu_limit_millicores", "is below cpu_millicores",
                           "set the limit at or above the request")
    data: dict[str, Any] = (base.model_dump() if base else {}) | {
        "port": port, "env": env, "replicas": replicas, "resources": res.model_dump(),
        "health_check": health_check.model_dump() if health_check else None,
    }
    if shutdown_grace_seconds is not None:
        data["shutdown_grace_seconds"] = shutdown_grace_seconds
    return AppConfig.model_validate(data)
