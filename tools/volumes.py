"""Volumes: durable disks (Longhorn PVCs the platform owns) that survive deploys, rollbacks and reschedules.

`single_node` volumes (ReadWriteOnce) have one writer at a time: an app with one deploys with "recreate" (the
old release stops before the new one starts) and cannot have more than one replica. `shared` volumes
(ReadWriteMany, Longhorn's share manager) keep blue/green and any replica count.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from mcp.server.mcpserver import Context
from pydantic import BaseModel, ConfigDict, Field

from tools.args import AppName, IdempotencyKey, PlanFlag, ProjectName, Wait, check_name
from tools.context import CallContext, call, tool
from tools.errors import Conflict, InvalidInput, NotFound, Unavailable
from tools.idempotency import check_same_request, request_fingerprint
from tools.lookups import require_app
from tools.plan import Plan, PlanReady
from tools.planned import volume_plan, volume_spec_for
from tools.records import AppRecord, NewRelease, VolumeRecord
from tools.releases import ReleaseResult, check_release_key, claim_and_start, wait_bound, wait_with_progress
from workflows.domain.names import app_hostname
from workflows.domain.scaling import Autoscale, scale_refusal
from workflows.domain.specs import AppConfig, Mount, VolumeSpec
from workflows.domain.volume_contract import VolumeOp, VolumeResult
from workflows.domain.workflow_ids import deploy_workflow_id, volume_workflow_id

VolumeName = Annotated[str, Field(description="Volume name: lowercase DNS label, at most 20 characters.",
                                  max_length=200)]
VolumeClass = Literal["fast", "standard"]
Access = Literal["single_node", "shared"]
FORBIDDEN_MOUNTS = ("/proc", "/sys", "/dev", "/etc", "/tmp", "/var/run/secrets", "/run/secrets")  # noqa: S108
_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")
# Five fields of the standard cron syntax Longhorn's RecurringJob parses (numbers, names, * / , - ?): nothing
# else reaches the CRD or the workflow id built from it.
_CRON_FIELD = r"[0-9A-Za-z*/,?-]+"
_CRON = re.compile(rf"^({_CRON_FIELD}\s+){{4}}{_CRON_FIELD}$", re.ASCII)


class VolumeRequest(BaseModel):
    """A volume created together with an app by `create_app`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    size_gib: int = Field(ge=1, le=16384)
    mount_path: str = Field(max_length=200)
    volume_class: VolumeClass = "standard"
    access: Access = "single_node"


class VolumeView(BaseModel):
    project: str
    name: str
    size_gib: int
    volume_class: str
    access: str
    status: str = Field(description="pending, bound, failed.")
    claim: str = Field(description="The PersistentVolumeClaim in the project's namespace.")
    attachments: list[dict[str, Any]] = Field(description="{app, mount_path, read_only} of live apps.")
    backup_schedule: str | None
    backup_retain: int | None
    last_snapshot_at: datetime | None
    last_backup_at: datetime | None


class VolumeResultView(BaseModel):
    volume: VolumeView
    done: bool = Field(description="False when the operation still runs after the wait.")
    message: str | None = None
    next_step: str


class VolumeList(BaseModel):
    volumes: list[VolumeView]


class SnapshotView(BaseModel):
    id: UUID
    volume: str
    kind: str
    name: str
    status: str = Field(description="pending, ready or failed.")
    created_at: datetime
    ready_at: datetime | None


def mount_path_problem(path: str) -> str | None:
    if not path.startswith("/") or not _PATH.match(path):
        return "must be an absolute path of letters, digits, '.', '_', '-' and '/'"
    norm = posixpath.normpath(path)
    if norm != path.rstrip("/") or ".." in path.split("/"):
        return f"must be normalized (e.g. {norm})"
    if norm == "/":
        return "cannot be / (the image's own root)"
    for bad in FORBIDDEN_MOUNTS:
        if norm == bad or norm.startswith(bad + "/"):
            return f"cannot be under {bad}, which the platform or the kernel needs"
    return None


def check_mount_path(field: str, path: str) -> str:
    problem = mount_path_problem(path)
    if problem:
        raise InvalidInput(field, f"{path!r} {problem}", "mount under your app's data directory, e.g. /data")
    return path.rstrip("/")


def view(v: VolumeRecord) -> VolumeView:
    return VolumeView.model_validate({
        "project": v.project, "name": v.name, "size_gib": v.size_gib, "volume_class": v.class_, "access": v.access,
        "status": v.status, "claim": v.pvc_name, "attachments": v.attachments, "backup_schedule": v.backup_schedule,
        "backup_retain": v.backup_retain, "last_snapshot_at": v.last_snapshot_at, "last_backup_at": v.last_backup_at,
    })


def volume_spec(c: CallContext, v: VolumeRecord, size_gib: int | None = None) -> VolumeSpec:
    return VolumeSpec(tenant=v.tenant, project=v.project, namespace=v.namespace, name=v.name, claim=v.pvc_name,
                      size_gib=size_gib or v.size_gib, storage_class=c.config.storage_classes[v.class_],
                      access=v.access)


async def run_op(c: CallContext, v: VolumeRecord, op: str, key: str, wait: float, **kw: Any) -> VolumeResult | None:
    wf = volume_workflow_id(v.tenant, v.project, v.name, op, key)
    c.audit.workflow_id = wf
    c.audit.k8s_refs = [f"PersistentVolumeClaim/{v.namespace}/{v.pvc_name}"]
    spec = volume_spec(c, v, kw.pop("size_gib", None))
    return await c.require_workflows().run_volume(wf, VolumeOp(op=op, volume_id=v.id, spec=spec, **kw), wait)


async def _volume(c: CallContext, project: str, name: str) -> VolumeRecord:
    check_name("project", project)
    check_name("volume", name)
    v = await c.store.get_volume(c.principal.tenant, project, name)
    if v is None:
        raise NotFound("volume", f"{project}/{name}", hint="Call `volumes`; create one with `volume` action=create.")
    return v


async def _reread(c: CallContext, v: VolumeRecord) -> VolumeRecord:
    return await c.store.get_volume(c.principal.tenant, v.project, v.name) or v


def _result(v: VolumeRecord, r: VolumeResult | None, done_step: str) -> VolumeResultView:
    if r is None:
        return VolumeResultView(volume=view(v), done=False, next_step="Still running: `volumes` shows the status.")
    if r.status == "failed":
        return VolumeResultView(volume=view(v), done=True, message=r.message,
                                next_step="Fix the cause named in `message`, then call again.")
    return VolumeResultView(volume=view(v), done=True, message=r.message, next_step=done_step)


async def ensure_volume(c: CallContext, project: str, name: str, size_gib: int, class_: str, access: str,
                        wait: float, restored_from: UUID | None = None, idempotency_key: str | None = None,
                        fingerprint: dict[str, Any] | None = None) -> tuple[VolumeRecord, VolumeResult | None]:
    v, created = await c.store.create_volume(c.principal.tenant, project, name, size_gib, class_, access,
                                             f"vol-{name}", restored_from, idempotency_key, fingerprint)
    if not created and idempotency_key is not None and fingerprint is not None \
            and v.idempotency_key == idempotency_key:
        check_same_request(idempotency_key, v.request_fingerprint, fingerprint)
    if not created and (v.size_gib, v.class_, v.access) != (size_gib, class_, access):
        raise Conflict(f"A volume {project}/{name} exists with {v.size_gib} GiB, {v.class_}, {v.access}.",
                       hint="Use that volume, resize it (`volume` action=resize), or choose another name.")
    if v.status == "bound":
        return v, VolumeResult(status="bound")
    return v, await run_op(c, v, "create", str(v.id), wait)


async def create_volume(
    project: ProjectName,
    name: VolumeName,
    size_gib: Annotated[int, Field(ge=1, le=16384, description="Size in GiB; volumes can grow later, not shrink.")],
    ctx: Context,
    volume_class: Annotated[VolumeClass, Field(description="fast (a replica local to the pod) or standard.")
                            ] = "standard",
    access: Annotated[Access, Field(description="single_node: one writer, the app deploys with recreate; shared: "
                                                "many pods may mount it (keeps blue/green).")] = "single_node",
    idempotency_key: IdempotencyKey = None,
    wait_seconds: Wait = None,
) -> VolumeResultView:
    """Create a durable volume in a project (a Longhorn PVC the platform owns). Mount it with `volume` action=attach.
    Calling again with the same arguments returns the same volume."""
    c = call()
    check_name("project", project)
    check_name("volume", name)
    c.require_workflows()
    fingerprint = request_fingerprint(c, "volume action=create", {
        "project": project, "volume": name, "size_gib": size_gib, "volume_class": volume_class, "access": access})
    v, r = await ensure_volume(c, project, name, size_gib, volume_class, access, wait_bound(c, wait_seconds),
                               idempotency_key=idempotency_key, fingerprint=fingerprint)
    return _result(await _reread(c, v), r, "Attach it with `volume` action=attach.")


async def list_volumes(project: ProjectName | None = None) -> VolumeList:
    """Volumes of your tenant (or one project) with size, class, access, status, attachments, backup policy and
    last snapshot/backup."""
    c = call()
    if project is not None:
        check_name("project", project)
    return VolumeList(volumes=[view(v) for v in await c.store.list_volumes(c.principal.tenant, project)])


async def resize_volume(project: ProjectName, volume: VolumeName,
                        size_gib: Annotated[int, Field(ge=1, le=16384, description="New size in GiB (larger).")],
                        ctx: Context, wait_seconds: Wait = None) -> VolumeResultView:
    """Grow a volume. Volumes never shrink: a smaller size is refused."""
    c = call()
    v = await _volume(c, project, volume)
    if size_gib < v.size_gib:
        raise InvalidInput("size_gib", f"{size_gib} GiB is smaller than the volume's {v.size_gib} GiB; volumes "
                           "only grow", f"pass {v.size_gib} or more, or restore a snapshot into a new volume")
    if size_gib == v.size_gib:
        return _result(v, VolumeResult(status="bound"), "Already that size.")
    r = await run_op(c, v, "resize", str(size_gib), wait_bound(c, wait_seconds), size_gib=size_gib)
    return _result(await _reread(c, v), r, "Resized; the filesystem grows on the pod's next mount.")


async def _snapshot(project: str, volume: str, kind: str, wait_seconds: int | None,
                    idempotency_key: str | None) -> SnapshotView:
    c = call()
    v = await _volume(c, project, volume)
    fingerprint = request_fingerprint(c, f"volume action={kind}", {"project": project, "volume": volume})
    name = f"{v.name}-{'snap' if kind == 'snapshot' else 'bak'}-{uuid.uuid4().hex[:8]}"
    snap, created = await c.store.record_snapshot(v.id, kind, name, c.principal.subject, idempotency_key,
                                                  fingerprint)
    if not created and idempotency_key is not None:  # a retry: the first call's snapshot, if it asked the same
        check_same_request(idempotency_key, snap.request_fingerprint, fingerprint)
        name = snap.k8s_name
    await run_op(c, v, kind, name, wait_bound(c, wait_seconds), snapshot=name)
    for s in await c.store.list_snapshots(v.id):
        if s.id == snap.id:
            snap = s
    return SnapshotView(id=snap.id, volume=f"{project}/{volume}", kind=kind, name=name, status=snap.status,
                        created_at=snap.created_at, ready_at=snap.ready_at)


async def restore_volume(
    project: ProjectName,
    from_snapshot: Annotated[UUID, Field(description="Id of a snapshot or backup (snapshot_volume/backup_volume).")],
    name: Annotated[str, Field(description="Name of the NEW volume holding the restored data.", max_length=200)],
    ctx: Context,
    idempotency_key: IdempotencyKey = None,
    wait_seconds: Wait = None,
) -> VolumeResultView:
    """Restore a snapshot or backup into a new volume (its claim's data source is the snapshot). The original
    volume is untouched; attach the new one where you need it."""
    c = call()
    check_name("project", project)
    check_name("volume", name)
    found = await c.store.get_snapshot(c.principal.tenant, from_snapshot)
    if found is None or found[1].project != project:
        raise NotFound("snapshot", str(from_snapshot), hint="Take one with `volume` action=snapshot or action=backup.")
    snap, source = found
    if snap.status != "ready":
        raise Conflict(f"The {snap.kind} {snap.k8s_name} is {snap.status}.", hint="Wait until it is ready.")
    fingerprint = request_fingerprint(c, "volume action=restore", {"project": project,
                                                                   "from_snapshot": from_snapshot, "volume": name})
    v, created = await c.store.create_volume(c.principal.tenant, project, name, source.size_gib, source.class_,
                                             source.access, f"vol-{name}", restored_from=snap.id,
                                             idempotency_key=idempotency_key, request_fingerprint=fingerprint)
    if not created and idempotency_key is not None and v.idempotency_key == idempotency_key:
        check_same_request(idempotency_key, v.request_fingerprint, fingerprint)
    if not created and v.status == "bound":
        return _result(v, VolumeResult(status="bound"), "Already restored.")
    r = await run_op(c, v, "restore", str(snap.id), wait_bound(c, wait_seconds), snapshot=snap.k8s_name)
    return _result(await _reread(c, v), r, "Attach it with `volume` action=attach.")


async def set_backup_policy(
    project: ProjectName, volume: VolumeName,
    schedule: Annotated[str, Field(description="Cron, 5 fields, UTC, e.g. '0 3 * * *' (daily 03:00).",
                                   max_length=100)],
    retain: Annotated[int, Field(ge=1, le=100, description="Backups kept.")],
    ctx: Context, wait_seconds: Wait = None,
) -> VolumeResultView:
    """Back a volume up on a schedule, keeping the last `retain` backups (a Longhorn RecurringJob)."""
    c = call()
    v = await _volume(c, project, volume)
    if not _CRON.match(schedule.strip()):
        raise InvalidInput("schedule", f"{schedule!r} is not a 5-field cron expression", "e.g. '0 3 * * *'")
    r = await run_op(c, v, "policy", f"{schedule.strip()}|{retain}".replace(" ", "_").replace("*", "x"),
                     wait_bound(c, wait_seconds), cron=schedule.strip(), retain=retain)
    return _result(await _reread(c, v), r, "Backups will run on that schedule.")


async def delete_volume(
    project: ProjectName, volume: VolumeName,
    confirm: Annotated[str, Field(description="Type `<project>/<volume>` to confirm: its data is deleted.",
                                  max_length=100)],
    ctx: Context, wait_seconds: Wait = None,
) -> VolumeResultView:
    """Delete a volume and its data. Refused while an app has it attached (detach first)."""
    c = call()
    v = await _volume(c, project, volume)
    if confirm != f"{project}/{volume}":
        raise InvalidInput("confirm", f"must be exactly {project}/{volume} to delete that volume",
                           f"pass confirm={project}/{volume}")
    if v.attachments:
        apps = ", ".join(str(a["app"]) for a in v.attachments)
        raise Conflict(f"The volume is attached to {apps}.", hint="Detach it first: `volume` action=detach.")
    r = await run_op(c, v, "delete", str(v.id), wait_bound(c, wait_seconds))
    return _result(v, r, "Deleted. The data goes as soon as no pod mounts it any more (a release still in its "
                         "rollback window may).")


def mounts_config(config: AppConfig, mounts: list[Mount]) -> AppConfig:
    """The app's config with these mounts; single-node writers force recreate (never two writers at once)."""
    single_writer = any(m.access == "single_node" and not m.read_only for m in mounts)
    if single_writer and config.replicas > 1:
        raise InvalidInput("replicas", f"the app runs {config.replicas} replicas but a single_node volume has one "
                           "writer", "use a volume created with access: shared, or replicas=1")
    return config.model_copy(update={"mounts": mounts, "strategy": "recreate" if single_writer else "blue-green"})


async def release_with_mounts(c: CallContext, app: AppRecord, mounts: list[Mount], ctx: Context | None,
                              wait_seconds: int | None, idempotency_key: str | None = None,
                              fingerprint: dict[str, Any] | None = None) -> ReleaseResult:
    """A new release of the app's current image with `mounts` (never rebuilds, never resolves a tag)."""
    latest = await c.store.list_deployments(app.id, limit=1)
    if not latest or not latest[0].image_digest:
        raise Conflict("The app has no release to add the volume to yet.", hint="Deploy it first.")
    base = latest[0]
    config = mounts_config(AppConfig.model_validate(app.spec), mounts)
    sv = await c.store.current_secrets(app.id)
    claim = await claim_and_start(c, NewRelease(
        tenant=app.tenant, project=app.project, app=app.name,
        hostname=app_hostname(app.name, app.project, app.tenant, c.config.apps_domain), create=False,
        config=config.model_dump(mode="json"), source=base.source, image=base.image or "",
        image_digest=base.image_digest or "", commit_sha=base.commit_sha, created_by=c.principal.subject,
        base_secrets_version=sv.version, idempotency_key=idempotency_key, request_fingerprint=fingerprint,
        workflow_id_prefix=deploy_workflow_id(app.tenant, app.project, app.name, 0)[:-1],
    ))
    return await wait_with_progress(c, claim, ctx, wait_bound(c, wait_seconds))


async def attach_volume(
    project: ProjectName, app: AppName, volume: VolumeName,
    mount_path: Annotated[str, Field(description="Where the app sees it, e.g. /data.", max_length=200)],
    ctx: Context,
    read_only: bool = False,
    idempotency_key: IdempotencyKey = None,
    wait_seconds: Wait = None,
) -> ReleaseResult:
    """Mount a volume into an app: a new release with the mount (same image). With a single_node volume the
    app deploys with recreate from now on — the old release stops before the new one starts — and must keep
    one replica; use an `access: shared` volume for several replicas or blue/green."""
    c = call()
    check_name("app", app)
    v = await _volume(c, project, volume)
    path = check_mount_path("mount_path", mount_path)
    row = await require_app(c, project, app)
    if v.status != "bound":
        raise Conflict(f"The volume is {v.status}.", hint="Wait until `volumes` shows it bound.")
    others = [a for a in v.attachments if a["app"] != app]
    if others and v.access == "single_node" and not read_only:
        raise Conflict(f"The single_node volume is already attached to {others[0]['app']}.",
                       hint="Detach it there, or use an `access: shared` volume.")
    current = AppConfig.model_validate(row.spec)
    mounts = [m for m in current.mounts if m.volume != v.name and m.mount_path != path]
    mounts.append(Mount(volume=v.name, claim=v.pvc_name, mount_path=path, read_only=read_only, access=v.access))
    with_mount = mounts_config(current, mounts)  # refuse before recording anything
    if row.scale and row.scale.get("autoscale") and scale_refusal(with_mount, None, Autoscale.model_validate(
            row.scale["autoscale"])) is not None:
        raise Conflict("The app is autoscaled, and a single_node volume allows one writer.",
                       hint="Stop autoscaling first (`scale` with replicas=1), or use an `access: shared` volume.")
    fingerprint = request_fingerprint(c, "volume action=attach", {
        "project": project, "app": app, "volume": volume, "mount_path": path, "read_only": read_only})
    await check_release_key(c, row.id, idempotency_key, fingerprint)
    await c.store.set_attachment(v.id, row.id, path, read_only)
    return await release_with_mounts(c, row, mounts, ctx, wait_seconds, idempotency_key, fingerprint)


async def detach_volume(project: ProjectName, app: AppName, volume: VolumeName, ctx: Context,
                        wait_seconds: Wait = None) -> ReleaseResult:
    """Unmount a volume from an app: a new release without it. The volume and its data stay."""
    c = call()
    check_name("app", app)
    v = await _volume(c, project, volume)
    row = await require_app(c, project, app)
    current = AppConfig.model_validate(row.spec)
    if not any(m.volume == v.name for m in current.mounts):
        raise InvalidInput("volume", f"{volume} is not attached to {project}/{app}", "see `apps` or `volumes`")
    await c.store.set_attachment(v.id, row.id, None, False)
    return await release_with_mounts(c, row, [m for m in current.mounts if m.volume != v.name], ctx, wait_seconds)


def check_volume_requests(volumes: list[VolumeRequest], replicas: int) -> list[VolumeRequest]:
    paths: set[str] = set()
    for i, req in enumerate(volumes):
        check_name(f"volumes[{i}].name", req.name)
        path = check_mount_path(f"volumes[{i}].mount_path", req.mount_path)
        if path in paths:
            raise InvalidInput(f"volumes[{i}].mount_path", f"{path} is used twice", "give each volume its own path")
        paths.add(path)
        if req.access == "single_node" and replicas > 1:
            raise InvalidInput(f"volumes[{i}].access", f"single_node cannot serve {replicas} replicas (one writer)",
                               "use access: shared, or replicas=1")
    return volumes


async def volumes_for_new_app(c: CallContext, project: str, requests: list[VolumeRequest],
                              wait: float) -> list[Mount]:
    """Create (or find) each requested volume and return the mounts for the app's first release."""
    mounts = []
    for req in requests:
        v, r = await ensure_volume(c, project, req.name, req.size_gib, req.volume_class, req.access, wait)
        if r is None or r.status == "failed":
            raise Unavailable(f"The volume {project}/{req.name} is not ready: "
                              f"{r.message if r else 'still provisioning'}.",
                              hint="Check `volumes`, then call create_app again (it is idempotent).")
        mounts.append(Mount(volume=v.name, claim=v.pvc_name, mount_path=req.mount_path.rstrip("/"),
                            access=v.access))
    return mounts


async def _plan(action: str, project: str, volume: str, size_gib: int | None, class_: str, access: str) -> Plan:
    c = call()
    check_name("project", project)
    check_name("volume", volume)
    if action == "create":
        assert size_gib is not None
        existing = await c.store.get_volume(c.principal.tenant, project, volume)
        if existing is not None and (existing.size_gib, existing.class_, existing.access) != (size_gib, class_, access):
            raise Conflict(f"A volume {project}/{volume} exists with {existing.size_gib} GiB, {existing.class_}, "
                           f"{existing.access}.", hint="Use that volume, resize it, or choose another name.")
        return await volume_plan(c, action, volume_spec_for(c, c.principal.tenant, project, volume, size_gib,
                                                            class_, access), existing)
    if action == "resize":
        assert size_gib is not None
        v = await _volume(c, project, volume)
        if size_gib < v.size_gib:
            raise InvalidInput("size_gib", f"{size_gib} GiB is smaller than the volume's {v.size_gib} GiB; volumes "
                               "only grow", f"pass {v.size_gib} or more")
        return await volume_plan(c, action, volume_spec(c, v, size_gib), v)
    raise InvalidInput("plan", f"is offered for action=create and resize, not {action} yet",
                       "call without plan; the action's result says what it did")


VolumeAction = Literal["create", "resize", "snapshot", "backup", "restore", "policy", "delete", "attach", "detach"]
# the arguments each action needs, and those it takes, besides `project` and `volume` (which all take)
_NEEDS: dict[str, tuple[str, ...]] = {"create": ("size_gib",), "resize": ("size_gib",), "restore": ("from_snapshot",),
                                      "policy": ("schedule", "retain"), "delete": ("confirm",),
                                      "attach": ("app", "mount_path"), "detach": ("app",)}
ACTION_ARGS: dict[str, frozenset[str]] = {
    "create": frozenset({"size_gib", "volume_class", "access", "idempotency_key"}),
    "resize": frozenset({"size_gib"}), "snapshot": frozenset({"idempotency_key"}),
    "backup": frozenset({"idempotency_key"}), "restore": frozenset({"from_snapshot", "idempotency_key"}),
    "policy": frozenset({"schedule", "retain"}), "delete": frozenset({"confirm"}),
    "attach": frozenset({"app", "mount_path", "read_only", "idempotency_key"}), "detach": frozenset({"app"})}


@tool(title="Volumes", scope="apps:read", read_only=True, idempotent=True)
async def volumes(project: ProjectName | None = None) -> VolumeList:
    """Your volumes (or one project's): size, class, access, status, attachments, backup policy, last
    snapshot/backup."""
    return await list_volumes(project)


@tool(title="Volume", scope="volumes:write", destructive=True, open_world=True)
async def volume(
    action: Annotated[VolumeAction, Field(description=(
        "create (size_gib, volume_class, access) | resize (size_gib, grow only) | snapshot | backup (off the "
        "cluster) | restore (from_snapshot into the new `volume`) | policy (schedule, retain) | delete (confirm) | "
        "attach (app, mount_path, read_only) | detach (app). attach/detach make a new release of the app."))],
    project: ProjectName,
    volume: VolumeName,
    ctx: Context,
    size_gib: Annotated[int | None, Field(ge=1, le=16384)] = None,
    volume_class: Annotated[VolumeClass, Field(description="fast: a replica local to the pod.")] = "standard",
    access: Annotated[Access, Field(description="single_node: one writer, the app deploys with recreate and one "
                                                "replica; shared: many pods (keeps blue/green).")] = "single_node",
    app: AppName | None = None,
    mount_path: Annotated[str | None, Field(description="e.g. /data.", max_length=200)] = None,
    read_only: bool = False,
    from_snapshot: Annotated[UUID | None, Field(description="A snapshot or backup id.")] = None,
    schedule: Annotated[str | None, Field(description="5-field cron, UTC, e.g. '0 3 * * *'.", max_length=100)
                        ] = None,
    retain: Annotated[int | None, Field(ge=1, le=100, description="Backups kept.")] = None,
    confirm: Annotated[str | None, Field(description="delete: `<project>/<volume>`; its data is deleted.",
                                         max_length=100)] = None,
    idempotency_key: IdempotencyKey = None,
    wait_seconds: Wait = None,
    plan: PlanFlag = False,
) -> dict[str, Any]:
    """Change a durable volume (a Longhorn PVC) of a project, by `action`."""
    given = {"size_gib": size_gib, "app": app, "mount_path": mount_path, "from_snapshot": from_snapshot,
             "schedule": schedule, "retain": retain, "confirm": confirm, "idempotency_key": idempotency_key,
             "volume_class": None if volume_class == "standard" else volume_class,
             "access": None if access == "single_node" else access, "read_only": read_only or None}
    for name in _NEEDS.get(action, ()):
        if given[name] is None:
            raise InvalidInput(name, f"is needed for action={action}", f"pass `{name}`")
    extra = sorted(k for k, v in given.items() if v is not None and k not in ACTION_ARGS[action])
    if extra:
        raise InvalidInput(extra[0], f"does not apply to action={action}", f"leave it out; {action} takes "
                           f"{sorted(ACTION_ARGS[action]) or 'only project and volume'}")
    if plan:
        raise PlanReady(await _plan(action, project, volume, size_gib, volume_class, access))
    result: BaseModel
    if action == "create":
        assert size_gib is not None
        result = await create_volume(project, volume, size_gib, ctx, volume_class, access, idempotency_key,
                                     wait_seconds)
    elif action == "resize":
        assert size_gib is not None
        result = await resize_volume(project, volume, size_gib, ctx, wait_seconds)
    elif action in ("snapshot", "backup"):
        result = await _snapshot(project, volume, action, wait_seconds, idempotency_key)
    elif action == "restore":
        assert from_snapshot is not None
        result = await restore_volume(project, from_snapshot, volume, ctx, idempotency_key, wait_seconds)
    elif action == "policy":
        assert schedule is not None and retain is not None
        result = await set_backup_policy(project, volume, schedule, retain, ctx, wait_seconds)
    elif action == "delete":
        assert confirm is not None
        result = await delete_volume(project, volume, confirm, ctx, wait_seconds)
    elif action == "attach":
        assert app is not None and mount_path is not None
        result = await attach_volume(project, app, volume, mount_path, ctx, read_only, idempotency_key, wait_seconds)
    else:
        assert app is not None
        result = await detach_volume(project, app, volume, ctx, wait_seconds)
    return result.model_dump(mode="json")
