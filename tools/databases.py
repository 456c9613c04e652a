"""Databases: a Postgres private to one app, backed up, rotatable. One read tool (`databases`) and one
mutating tool (`database(action=...)`). The password is generated here, stored sealed, handed to the app as
secrets of its release (DATABASE_URL and PG*), and never appears in any result, audit row or log."""

from __future__ import annotations

import secrets as random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field, ValidationError

from tools.args import PlanFlag, ProjectName, check_name
from tools.context import CallContext, call, tool
from tools.errors import Conflict, InvalidInput, NotFound, PlatformError
from tools.lookups import require_app
from tools.plan import PlanReady
from tools.planned import database_plan
from tools.records import AppRecord, DatabaseBackupRecord, DatabaseRecord, NewRelease
from tools.releases import ReleaseResult, claim_and_start, seal_secrets, wait_bound, wait_with_progress
from workflows.domain.database_contract import DatabaseOp, DatabaseResult
from workflows.domain.database_observation import Connections, DatabaseObservation, DiskUse, ObserveInput
from workflows.domain.database_spec import (
    CONNECTION_VARIABLES,
    DatabaseResources,
    DatabaseSpec,
    connection_env,
    dump_name,
)
from workflows.domain.names import app_hostname
from workflows.domain.specs import AppConfig
from workflows.domain.workflow_ids import database_workflow_id, deploy_workflow_id

Action = Literal["create", "attach", "detach", "backup", "restore", "rotate", "delete"]


class DatabaseRequest(BaseModel):
    """A database to create (create, or create_app's `database`); every field has a default."""

    version: int | None = Field(None, description="Postgres major (`databases` lists them).")
    size_gib: int | None = Field(None, ge=1)
    volume_class: str | None = None
    resources: dict[str, int] | None = Field(None, description="cpu_millicores, cpu_limit_millicores, memory_mib.")


class BackupView(BaseModel):
    name: str
    kind: str
    status: str
    size_bytes: int | None = None
    started_at: datetime
    error: str | None = None


class DatabaseView(BaseModel):
    project: str
    name: str
    engine: str
    version: int
    size_gib: int
    volume_class: str
    status: str
    status_reason: str | None = None
    app: str | None = None
    host: str
    last_backup: BackupView | None = None
    backups: list[BackupView] | None = None
    observed: DatabaseObservation | None = Field(None, description=(
        "With `name`: disk used of the claim and connections of max_connections, read from the cluster now "
        "(each with `observed_at`, or `unknown` and why). Not in lists: each look runs a query job."))


class DatabaseList(BaseModel):
    databases: list[DatabaseView]
    supported_versions: list[int]


class DatabaseActionResult(BaseModel):
    database: DatabaseView | None
    done: bool
    message: str | None = None
    release: dict[str, Any] | None = Field(None, description="The app's new release: deployment_id, release, phase.")
    next_step: str


def _spec(c: CallContext, d: DatabaseRecord) -> DatabaseSpec:
    return DatabaseSpec(tenant=d.tenant, project=d.project, namespace=d.namespace, name=d.name, version=d.version,
                        image=c.config.database_images.get(d.version, ""), size_gib=d.size_gib,
                        storage_class=c.config.storage_classes.get(d.class_, d.class_),
                        resources=DatabaseResources.model_validate(d.resources or {}), app=d.app, engine=d.engine,
                        image_pull_secret=c.config.image_pull_secret)


def _backup(b: dict[str, Any] | DatabaseBackupRecord | None) -> BackupView | None:
    if b is None:
        return None
    return BackupView.model_validate(b.model_dump() if isinstance(b, DatabaseBackupRecord) else b)


def view(c: CallContext, d: DatabaseRecord, backups: list[DatabaseBackupRecord] | None = None) -> DatabaseView:
    last = _backup(d.last_backup)
    status, reason = d.status, d.status_reason
    if last is not None and last.status == "failed" and status == "ready":
        status, reason = "backup-failed", f"the last backup ({last.name}) failed: {last.error or 'see its job'}"
    return DatabaseView(project=d.project, name=d.name, engine=d.engine, version=d.version, size_gib=d.size_gib,
                        volume_class=d.class_, status=status, status_reason=reason, app=d.app,
                        host=_spec(c, d).host, last_backup=last,
                        backups=[v for b in backups if (v := _backup(b))] if backups is not None else None)


def app_database_view(c: CallContext, d: DatabaseRecord | None) -> dict[str, Any] | None:
    """The compact `database` field of get_app."""
    if d is None:
        return None
    v = view(c, d)
    return {"name": v.name, "status": v.status, "status_reason": v.status_reason,
            "last_backup": v.last_backup.status if v.last_backup else None}


async def observe(c: CallContext, d: DatabaseRecord) -> DatabaseObservation:
    """The database as the cluster shows it now. A database still being made or deleted is not asked (its pod
    comes and goes); a look that cannot run is `unknown` with why, never a figure from before."""
    if d.status in ("creating", "deleting"):
        why = f"the database is {d.status}"
        return DatabaseObservation(disk=DiskUse(unknown=why), connections=Connections(unknown=why))
    try:
        return await c.require_workflows().observe_database(ObserveInput(spec=_spec(c, d)))
    except PlatformError as e:  # the workflow service unreachable, say: the rest of the answer still stands
        why = f"could not be observed: {e}"[:200]
        return DatabaseObservation(disk=DiskUse(unknown=why), connections=Connections(unknown=why))


async def _database(c: CallContext, project: str, name: str) -> DatabaseRecord:
    check_name("project", project)
    check_name("name", name)
    d = await c.store.get_database(c.principal.tenant, project, name)
    if d is None:
        raise NotFound("database", f"{project}/{name}", hint="Call `databases`; create one with "
                                                            "`database(action=create)`.")
    return d


def _password() -> str:
    return random.token_urlsafe(24)  # URL-safe: DATABASE_URL needs no escaping of it, and 192 bits


async def _run(c: CallContext, d: DatabaseRecord, op: str, key: str, wait: float, **kw: Any) -> DatabaseResult | None:
    wf = database_workflow_id(d.tenant, d.project, d.name, op, key)
    c.audit.workflow_id = wf
    spec = _spec(c, d)
    c.audit.k8s_refs = [f"StatefulSet/{d.namespace}/{spec.object_name}", f"Secret/{d.namespace}/{spec.secret}"]
    op_ = DatabaseOp(op=op, database_id=d.id, spec=spec, timeout_seconds=c.config.database_ready_timeout_seconds,
                     **kw)
    return await c.require_workflows().run_database(wf, op_, wait)


def check_request(c: CallContext, req: DatabaseRequest) -> tuple[int, int, str, DatabaseResources]:
    """The request's version, size, class and resources, defaults filled; refused with the field named."""
    version = req.version or c.config.database_default_version
    if version not in c.config.database_images:
        raise InvalidInput("database.version", f"Postgres {version} is not offered here",
                           f"choose one of {sorted(c.config.database_images)}")
    size = req.size_gib or c.config.database_default_size_gib
    if size > c.config.database_max_size_gib:
        raise InvalidInput("database.size_gib", f"is {size}; at most {c.config.database_max_size_gib} GiB here",
                           f"ask for {c.config.database_max_size_gib} or less (it can grow later)")
    class_ = req.volume_class or c.config.database_volume_class
    if class_ not in c.config.storage_classes:
        raise InvalidInput("database.volume_class", f"{class_!r} is not a volume class here",
                           f"choose one of {sorted(c.config.storage_classes)}")
    try:
        res = DatabaseResources.model_validate(req.resources or {})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"database.resources.{where}", first["msg"],
                           "cpu_millicores 50-16000, cpu_limit_millicores 50-32000, memory_mib 128-65536") from None
    if res.cpu_limit_millicores < res.cpu_millicores:
        raise InvalidInput("database.resources.cpu_limit_millicores", "is below cpu_millicores",
                           "set the limit at or above the request")
    return version, size, class_, res


async def create_database(c: CallContext, project: str, name: str, req: DatabaseRequest, wait: float,
                          start: bool = True) -> tuple[DatabaseRecord, DatabaseResult | None]:
    """Record the database (or find it) and start its workflow (unless `start` is False: create_app starts it
    once the app exists, so the first policy already admits the app). The same call again finds both."""
    c.require("databases:write")
    check_name("project", project)
    check_name("name", name)
    version, size, class_, res = check_request(c, req)
    c.require_workflows()
    box = c.require_secretbox()
    d, created = await c.store.create_database(
        c.principal.tenant, project, name, engine="statefulset", version=version, size_gib=size, class_=class_,
        resources=res.model_dump(), ciphertext=box.seal({"password": _password()}), created_by=c.principal.subject)
    if not created and (d.version, d.size_gib, d.class_) != (version, size, class_):
        raise Conflict(f"A database {project}/{name} exists with other settings (Postgres {d.version}, "
                       f"{d.size_gib} GiB, {d.class_}).", hint="Use it, or choose another name.")
    return d, (await _run(c, d, "create", str(d.id), wait) if start else None)


async def start_database_for_app(c: CallContext, d: DatabaseRecord, app: AppRecord) -> None:
    """create_app's database: attached to the new app, then its workflow started (not waited for: the app's
    release waits for its own readiness, and an app retries its database connection)."""
    await c.store.set_database_app(d.id, app.id)
    d = await _database(c, d.project, d.name)
    await _run(c, d, "create", str(d.id), 0)


def connection_values(c: CallContext, d: DatabaseRecord) -> dict[str, str]:
    password = c.require_secretbox().open(bytes(d.ciphertext))["password"]
    return connection_env(_spec(c, d), password)


def _release(r: ReleaseResult | None) -> dict[str, Any] | None:
    return None if r is None else {"deployment_id": str(r.deployment_id), "release": r.release, "phase": r.phase}


async def release_with_secrets(c: CallContext, app: AppRecord, changes: dict[str, str | None], ctx: Context | None,
                               wait_seconds: int | None) -> ReleaseResult | None:
    """A new secrets version of the app with `changes`, released with its current image (never rebuilt). An
    app with no release yet gets the version only: its first release pins it."""
    sealed = await seal_secrets(c, app.id, changes)
    latest = await c.store.list_deployments(app.id, limit=1)
    if sealed.sealed is None or sealed.names is None:
        return None
    if not latest or not latest[0].image_digest:
        await c.store.add_secret_version(app.id, sealed.base, sealed.names, sealed.sealed, c.principal.subject)
        return None
    base = latest[0]
    claim = await claim_and_start(c, NewRelease(
        tenant=app.tenant, project=app.project, app=app.name,
        hostname=app_hostname(app.name, app.project, app.tenant, c.config.apps_domain), create=False,
        config=AppConfig.model_validate(app.spec).model_dump(mode="json"), source=base.source,
        image=base.image or "", image_digest=base.image_digest or "", commit_sha=base.commit_sha,
        created_by=c.principal.subject, new_secret_names=sealed.names, new_secret_ciphertext=sealed.sealed,
        base_secrets_version=sealed.base, workflow_id_prefix=deploy_workflow_id(app.tenant, app.project,
                                                                                app.name, 0)[:-1]))
    return await wait_with_progress(c, claim, ctx, wait_bound(c, wait_seconds))


def _outcome(c: CallContext, d: DatabaseRecord, r: DatabaseResult | None, done_step: str,
             release: dict[str, Any] | None = None) -> DatabaseActionResult:
    if r is None:
        return DatabaseActionResult(database=view(c, d), done=False, release=release,
                                    next_step="Still running: `databases` shows the status.")
    if r.status == "failed":
        return DatabaseActionResult(database=view(c, d), done=True, message=r.message, release=release,
                                    next_step="Fix the cause named in `message`, then call again.")
    return DatabaseActionResult(database=view(c, d), done=True, release=release, next_step=done_step)


@tool(title="Databases", scope="apps:read", read_only=True, idempotent=True)
async def databases(project: Annotated[str | None, Field(max_length=200)] = None, name: Annotated[
        str | None, Field(description="One database, with its backups.", max_length=200)] = None) -> DatabaseList:
    """List your databases (status, attached app, last backup), or one with its backups."""
    c = call()
    if name is not None:
        if project is None:
            raise InvalidInput("project", "is needed with name", "pass the database's project")
        d = await _database(c, project, name)
        one = view(c, d, await c.store.list_database_backups(d.id))
        one.observed = await observe(c, d)
        views = [one]
    else:
        if project is not None:
            check_name("project", project)
        views = [view(c, d) for d in await c.store.list_databases(c.principal.tenant, project)]
    return DatabaseList(databases=views, supported_versions=sorted(c.config.database_images))


@tool(title="Database", scope="databases:write", destructive=True, open_world=True)
async def database(
    action: Action,
    project: ProjectName,
    name: Annotated[str, Field(description="Database name (a DNS label, at most 20 characters).", max_length=200)],
    ctx: Context,
    app: Annotated[str | None, Field(description="create/attach: the app to get DATABASE_URL.", max_length=200)] = None,
    version: int | None = None,
    size_gib: Annotated[int | None, Field(ge=1)] = None,
    volume_class: str | None = None,
    resources: Annotated[dict[str, int] | None, Field(description="cpu_millicores, cpu_limit_millicores, "
                                                                  "memory_mib.")] = None,
    backup: Annotated[str | None, Field(description="restore: a backup's name.", max_length=200)] = None,
    into: Annotated[str | None, Field(description="restore: a new database to restore into.", max_length=200)] = None,
    confirm: Annotated[str | None, Field(description="delete: `<project>/<name>`.", max_length=100)] = None,
    final_backup: Annotated[bool, Field(description="delete: dump first.")] = True,
    wait_seconds: Annotated[int | None, Field(ge=0, le=300)] = None,
    plan: PlanFlag = False,
) -> DatabaseActionResult:
    """Create, attach, detach, back up, restore, rotate the password of, or delete a Postgres. The attached app
    gets DATABASE_URL and PG* as secrets (a new release); only its pods connect."""
    c = call()
    wait = wait_bound(c, wait_seconds)
    if action == "create":
        if app is not None:  # the app must exist before anything is made
            check_name("app", app)
            await require_app(c, project, app)
        req = DatabaseRequest(version=version, size_gib=size_gib, volume_class=volume_class, resources=resources)
        if plan:
            c.require("databases:write")
            check_name("project", project)
            check_name("name", name)
            v, size, class_, res = check_request(c, req)
            raise PlanReady(await database_plan(c, project, name, v, size, class_, res, app))
        d, r = await create_database(c, project, name, req, wait)
        release = _release(await _attach(c, d, app, ctx, wait_seconds)) if app else None
        d = await _database(c, project, name)
        return _outcome(c, d, r, "Ready. Attach it with action=attach to give an app DATABASE_URL."
                        if not app else "Ready; the app's new release has DATABASE_URL.", release)
    if plan:
        raise InvalidInput("plan", f"is offered for action=create, not {action} yet",
                           "call without plan; the action's result says what it did")
    d = await _database(c, project, name)
    if action == "attach":
        if app is None:
            raise InvalidInput("app", "is needed to attach", "pass the app that should get DATABASE_URL")
        release = _release(await _attach(c, d, app, ctx, wait_seconds))
        d = await _database(c, project, name)
        return DatabaseActionResult(database=view(c, d), done=True, release=release,
                                    next_step="Attached: the app's release has DATABASE_URL.")
    if action == "detach":
        if d.app_id is None or d.app is None:
            raise Conflict("The database is not attached to an app.", hint="Nothing to detach.")
        row = await require_app(c, project, d.app)
        await _unadmit(c, d, row)
        release = _release(await release_with_secrets(c, row, dict.fromkeys(CONNECTION_VARIABLES), ctx,
                                                      wait_seconds))
        d = await _database(c, project, name)
        return DatabaseActionResult(database=view(c, d), done=True, release=release,
                                    next_step="Detached: the app no longer has DATABASE_URL; the data stays.")
    if action == "backup":
        dump = dump_name(datetime.now(UTC))
        r = await _run(c, d, "backup", dump, wait, backup_name=dump, backup_kind="manual")
        return _outcome(c, await _database(c, project, name), r, f"Backed up as {dump}.")
    if action == "rotate":
        return await _rotate(c, d, ctx, wait, wait_seconds)
    if action == "delete":
        return await _delete(c, d, confirm, final_backup, wait)
    return await _restore(c, d, backup, into, wait)


async def _restore(c: CallContext, d: DatabaseRecord, backup: str | None, into: str | None, wait: float
                   ) -> DatabaseActionResult:
    """A named, successful dump back into the database (after a safety dump of it as it is), or into a new
    database of the same version, size and class. The database is `restoring` until the workflow records how it
    went, so a call that returned before the end can be followed in `databases`, and a second call meanwhile is
    refused rather than started as another restore (its key counts the good dumps, which the safety dump
    changes)."""
    if into is None and d.status == "restoring":
        raise Conflict(f"The database {d.name} is being restored.",
                       hint="Wait until `databases` shows it ready (or failed, with the reason), then call again.")
    done = [b for b in await c.store.list_database_backups(d.id, limit=200) if b.status == "ok"]
    if not backup or backup not in {b.name for b in done}:
        names = ", ".join(b.name for b in done[:5]) or "none yet"
        raise InvalidInput("backup", f"{backup!r} is not a successful backup of {d.project}/{d.name}",
                           f"name one from `databases` (recent: {names})")
    if into is None:
        r = await _restoring(c, d, lambda: _run(c, d, "restore", f"{backup}-{len(done)}", wait, restore_from=backup,
                                                backup_name=dump_name(datetime.now(UTC))))
        return _outcome(c, await _database(c, d.project, d.name), r,
                        f"Restored {backup}; the safety backup taken first is listed in `databases`.")
    req = DatabaseRequest(version=d.version, size_gib=d.size_gib, volume_class=d.class_, resources=d.resources)
    _, made = await create_database(c, d.project, into, req, wait)
    if made is None or made.status == "failed":
        return _outcome(c, await _database(c, d.project, into), made, "")
    target = await _database(c, d.project, into)
    r = await _restoring(c, target, lambda: _run(c, target, "restore", f"{backup}-from-{d.id}", wait,
                                                 restore_from=backup, source_database_id=d.id))
    return _outcome(c, await _database(c, d.project, into), r,
                    f"Restored {backup} into {into}; attach it to an app with action=attach.")


async def _restoring(c: CallContext, d: DatabaseRecord, start: Callable[[], Awaitable[DatabaseResult | None]]
                     ) -> DatabaseResult | None:
    """`restoring` while the restore's workflow runs (it records ready or failed at its end); back to what it
    was when the call fails (Temporal unreachable, say), so no database stays marked by a restore that never
    ran. A workflow that did start records its outcome over that at its end."""
    await c.store.set_database_status(d.id, "restoring")
    try:
        return await start()
    except Exception:
        await c.store.set_database_status(d.id, d.status, d.status_reason)
        raise


async def _attach(c: CallContext, d: DatabaseRecord, app: str, ctx: Context | None, wait_seconds: int | None
                  ) -> ReleaseResult | None:
    check_name("app", app)
    row = await require_app(c, d.project, app)
    if d.app_id is not None and d.app_id != row.id:
        raise Conflict(f"The database is attached to {d.app}.", hint="Detach it there first.")
    other = await c.store.database_of_app(row.id)
    if other is not None and other.id != d.id:
        raise Conflict(f"The app already has the database {other.name}.", hint="Detach that one first.")
    await c.store.set_database_app(d.id, row.id)
    d = await _database(c, d.project, d.name)
    # the database's policy must admit the app's pods: re-apply its objects (idempotent) with the app named
    await _run(c, d, "create", f"{d.id}-app-{row.id}", 0)
    return await release_with_secrets(c, row, dict(connection_values(c, d)), ctx, wait_seconds)


async def _rotate(c: CallContext, d: DatabaseRecord, ctx: Context | None, wait: float, wait_seconds: int | None
                  ) -> DatabaseActionResult:
    if d.status not in ("ready", "backup-failed"):
        raise Conflict(f"The database is {d.status}.", hint="Rotate once `databases` shows it ready.")
    box = c.require_secretbox()
    pending = d.pending_ciphertext or box.seal({"password": _password()})  # a retried call finishes the same one
    if d.pending_ciphertext is None:
        await c.store.set_pending_password(d.id, pending)
    r = await _run(c, d, "rotate", box.digest(bytes(pending))[:16], wait)
    d = await _database(c, d.project, d.name)
    release = None
    if r is not None and r.status != "failed" and d.app:
        row = await require_app(c, d.project, d.app)
        release = _release(await release_with_secrets(c, row, dict(connection_values(c, d)), ctx, wait_seconds))
    return _outcome(c, d, r, "Rotated; the app's new release connects with the new password.", release)


async def _delete(c: CallContext, d: DatabaseRecord, confirm: str | None, final_backup: bool, wait: float
                  ) -> DatabaseActionResult:
    want = f"{d.project}/{d.name}"
    if confirm != want:
        raise InvalidInput("confirm", f"must be exactly {want} to delete that database", f"pass confirm={want}")
    if d.app is not None:
        raise Conflict(f"The app {d.app} uses the database.", hint="Detach it first (action=detach).")
    if final_backup:
        dump = dump_name(datetime.now(UTC))
        r = await _run(c, d, "backup", dump, max(wait, 60.0), backup_name=dump, backup_kind="final")
        if r is None or r.status == "failed":
            return DatabaseActionResult(
                database=view(c, await _database(c, d.project, d.name)), done=False,
                message=r.message if r is not None else "the final backup is still running",
                next_step="Not deleted: the final backup did not succeed. Fix it and call again, or pass "
                          "final_backup=false to delete without one.")
    await c.store.set_database_status(d.id, "deleting")
    r = await _run(c, d, "delete", str(d.id), wait)
    gone = await c.store.get_database(c.principal.tenant, d.project, d.name)
    return DatabaseActionResult(database=view(c, gone) if gone else None, done=r is not None,
                                message=r.message if r else None,
                                next_step="Deleted (its dumps stay at the backup target)." if gone is None
                                else "Deleting: `databases` shows when it is gone.")


async def _unadmit(c: CallContext, d: DatabaseRecord, row: AppRecord) -> None:
    """The database no longer the app's: recorded, then its objects re-applied without the app, so its policy
    stops admitting pods of that app's label (a later app of the same name included). The key names the
    attachment being ended, so a later detach of a re-attached app applies again."""
    await c.store.set_database_app(d.id, None)
    d = await _database(c, d.project, d.name)
    await _run(c, d, "create", f"{d.id}-detach-{row.id}-{int((d.updated_at or d.created_at).timestamp() * 1000)}", 0)


AppDeleteChoice = Literal["detach", "delete"]


async def database_for_app_delete(c: CallContext, row: AppRecord, choice: AppDeleteChoice | None, wait: float
                                  ) -> list[str]:
    """delete_app's step for the app's database, before anything of the app is touched. None attached: nothing.
    Attached and no `choice`: refused, naming the database and both ways on. `detach`: the database keeps its
    data, backups and schedule; its policy stops admitting the app; the app's secrets lose the connection
    variables (a new version, not released: the app is going). `delete`: a final dump first (a failed one
    refuses the delete, with nothing changed), then the database is detached and its deletion started. Returns
    the database's refs for the audit row."""
    d = await c.store.database_of_app(row.id)
    if d is None:
        return []
    ref = f"database/{d.project}/{d.name}"
    if choice is None:
        raise Conflict(f"The app has the database {d.name} (its data would be left behind, still admitting "
                       f"pods named {row.name}).",
                       hint=f"Pass database=detach to keep {d.name} (data and backups) without the app, or "
                            f"database=delete to delete it too after a final backup; or detach it first with "
                            f"database(action=detach, project={d.project}, name={d.name}).")
    if choice == "delete":
        c.require("databases:write")
        if d.status in ("creating", "deleting", "restoring"):
            raise Conflict(f"The database {d.name} is {d.status}.",
                           hint="Call again once `databases` shows it ready, or pass database=detach.")
        dump = dump_name(datetime.now(UTC))
        r = await _run(c, d, "backup", dump, max(wait, 60.0), backup_name=dump, backup_kind="final")
        if r is None or r.status == "failed":
            why = r.message if r is not None and r.message else "the final backup is still running"
            raise Conflict(f"Not deleted: the final backup of the database {d.name} did not succeed ({why}).",
                           hint="Fix it and call again, or pass database=detach and delete the database later "
                                "with database(action=delete, final_backup=false).")
    if choice == "detach":
        await _unadmit(c, d, row)
        sealed = await seal_secrets(c, row.id, dict.fromkeys(CONNECTION_VARIABLES))
        if sealed.sealed is not None and sealed.names is not None:
            await c.store.add_secret_version(row.id, sealed.base, sealed.names, sealed.sealed, c.principal.subject)
        return [ref]
    # no re-apply without the app first: it would race the delete and could put objects back after it
    await c.store.set_database_app(d.id, None)
    await c.store.set_database_status(d.id, "deleting")
    await _run(c, await _database(c, d.project, d.name), "delete", str(d.id), 0)
    return [ref, f"StatefulSet/{d.namespace}/{_spec(c, d).object_name}"]
