"""The platform's records as the store hands them to tools and workflows: plain, typed, immutable."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["ok", "error", "denied", "invalid"]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class TenantRecord(Record):
    id: UUID
    name: str


class ProjectRecord(Record):
    id: UUID
    tenant: str
    name: str
    namespace: str
    created_at: datetime
    app_count: int = 0


class AppRecord(Record):
    id: UUID
    tenant: str
    project: str
    name: str
    namespace: str
    hostname: str
    spec: dict[str, Any]
    status: str
    serving_deployment_id: UUID | None
    created_at: datetime
    updated_at: datetime
    scale: dict[str, Any] | None = None  # what `scale` recorded (workflows.domain.scaling.AppScale), if anything


class DeploymentRecord(Record):
    id: UUID
    app_id: UUID
    seq: int
    release_seq: int
    kind: Literal["deploy", "rollback"]
    phase: str
    source: dict[str, Any]
    image: str | None
    image_digest: str | None
    commit_sha: str | None
    config: dict[str, Any]
    secrets_version: int
    rollback_of: UUID | None
    workflow_id: str
    idempotency_key: str | None
    error: dict[str, Any] | None
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    healthy_at: datetime | None
    request_fingerprint: dict[str, Any] | None = None  # of the call that recorded it (`tools.idempotency`)


class AuditEvent(Record):
    id: int | None = None
    at: datetime | None = None
    tenant: str | None
    principal: str
    transport: str
    tool: str
    request_id: str | None
    arguments: dict[str, Any]
    outcome: Outcome
    error: str | None = None
    workflow_id: str | None = None
    k8s_refs: list[str] = Field(default_factory=list)
    duration_ms: int


class NewRelease(Record):
    """What `create_app` and `deploy` ask the store to record, atomically, under the app's row lock."""

    tenant: str
    project: str
    app: str
    hostname: str
    create: bool = Field(description="create_app: create the app (and project) when missing")
    config: dict[str, Any]
    source: dict[str, Any]
    image: str
    image_digest: str | None = Field(description="None for a git source until its build pushed the image")
    commit_sha: str | None = None
    idempotency_key: str | None = None
    request_fingerprint: dict[str, Any] | None = Field(
        None, description="what the call asked (`tools.idempotency`), kept with the row its key recorded")
    created_by: str
    kind: Literal["deploy", "rollback"] = "deploy"
    rollback_of: UUID | None = None
    release_seq: int | None = Field(None, description="rollback: the target's release; None: this row's own seq")
    # secrets: a new sealed version on top of `base_secrets_version`, or None to pin the current one
    new_secret_names: list[str] | None = None
    new_secret_ciphertext: bytes | None = None
    base_secrets_version: int = 0
    workflow_id_prefix: str = Field(description="the workflow id is this prefix + the release number")


class ReleaseClaim(Record):
    app: AppRecord
    deployment: DeploymentRecord
    created: bool = Field(description="False when an earlier identical call already recorded this release")
    # a new release's predecessors still rolling out, read under the app's lock (the ones it supersedes)
    rolling_out: list[DeploymentRecord] = []


class SecretVersion(Record):
    version: int
    names: list[str]
    ciphertext: bytes | None


class VolumeRecord(Record):
    id: UUID
    tenant: str
    project: str
    namespace: str
    name: str
    size_gib: int
    class_: str = Field(alias="class")
    access: Literal["single_node", "shared"]
    pvc_name: str
    status: str
    backup_schedule: str | None = None
    backup_retain: int | None = None
    created_at: datetime
    attachments: list[dict[str, Any]] = Field(default_factory=list)  # {app, mount_path, read_only}
    last_snapshot_at: datetime | None = None
    last_backup_at: datetime | None = None
    idempotency_key: str | None = None  # of the create_volume or restore_volume call that made it
    request_fingerprint: dict[str, Any] | None = None


class SnapshotRecord(Record):
    id: UUID
    volume_id: UUID
    kind: Literal["snapshot", "backup"]
    k8s_name: str
    status: str
    created_by: str
    created_at: datetime
    ready_at: datetime | None
    idempotency_key: str | None = None
    request_fingerprint: dict[str, Any] | None = None
    handle: str | None = None  # the storage's name of a backup (Longhorn `bak://...`), importable anywhere


class PreflightSummary(Record):
    """The latest preflight a worker ran at start (`preflight_results`), as operators see it in `whoami`."""

    host: str
    checked_at: datetime
    ok: bool = Field(description="The platform can work on this cluster (warnings aside).")
    missing_count: int
    warning_count: int
    missing: list[str] = Field(description="Each missing piece with the command that fixes it.")
class BackupRun(Record):
    """One Plane A backup run or restore (`backup_runs`)."""

    id: int
    kind: Literal["create", "restore"]
    started_at: datetime
    finished_at: datetime | None
    target: str
    name: str | None
    status: Literal["running", "ok", "failed"]
    size_bytes: int | None
    error: str | None


class ObservationRecord(Record):
    """The reconciler's latest look at one app (`app_observations`), as the status tools read it."""

    app_id: UUID
    observed_at: datetime
    release: str | None
    desired_replicas: int
    ready_replicas: int
    serving_ready: bool
    service_points_at_serving: bool
    drift: list[str]
    repaired: list[str]
    error: str | None
    last_repair_at: datetime | None
    last_repaired: list[str]
    autoscaler: dict[str, Any] | None = None  # workflows.domain.scaling.AutoscalerStatus, when autoscaled


class DatabaseRecord(Record):
    id: UUID
    tenant: str
    project: str
    namespace: str
    name: str
    engine: Literal["statefulset", "cloudnative-pg"]
    version: int
    size_gib: int
    class_: str = Field(alias="class")
    resources: dict[str, Any] = Field(default_factory=dict)
    status: str
    status_reason: str | None = None
    app: str | None = None
    app_id: UUID | None = None
    ciphertext: bytes = Field(repr=False)
    pending_ciphertext: bytes | None = Field(None, repr=False)
    created_at: datetime
    updated_at: datetime | None = None
    last_backup: dict[str, Any] | None = None  # {name, kind, status, size_bytes, started_at, finished_at, error}


class DatabaseBackupRecord(Record):
    id: UUID
    database_id: UUID
    kind: Literal["scheduled", "manual", "safety", "final"]
    name: str
    status: Literal["running", "ok", "failed"]
    size_bytes: int | None = None
    error: str | None = None
    started_at: datetime
    finished_at: datetime | None = None


class DomainRecord(Record):
    """A custom domain of an app (the `domains` table), with the app it belongs to."""

    id: UUID
    app_id: UUID
    tenant: str
    project: str
    app: str
    namespace: str
    hostname: str
    kind: str
    status: str
    verification_token: str | None
    tls_secret: str | None
    detail: str | None
    fix: str | None
    verify_deadline: datetime | None
    verified_at: datetime | None
    checked_at: datetime | None
    cert_not_after: datetime | None
    workflow_id: str | None
    created_at: datetime
    updated_at: datetime


class PushConnection(Record):
    """An app connected to a branch of its repository (`push_deploys`); `ciphertext` seals the webhook secret."""

    app_id: UUID
    hook_id: str
    branch: str
    previews: bool
    previews_secrets: bool
    ciphertext: bytes
    created_by: str
    created_at: datetime


DeliveryOutcome = Literal["received", "deployed", "previewed", "removed", "ignored", "failed"]
