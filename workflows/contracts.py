"""Inputs and results of the deploy workflow and its activities. Explicit types for every call, so fields
can be added (with defaults) without breaking workflows already running."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from workflows.diagnosis import Failure
from workflows.specs import AppConfig, ReleaseSpec, VolumeSpec

TERMINAL_PHASES = frozenset({"succeeded", "failed", "cancelled", "superseded"})


class Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeployInput(Msg):
    deployment_id: UUID
    app_id: UUID
    tenant: str
    project: str
    app: str
    namespace: str
    seq: int  # the release (Kubernetes Deployment) this run activates: its own, or a rollback's target
    kind: Literal["deploy", "rollback"] = "deploy"
    wait_for: list[str] = []  # superseded workflows that must close before this one switches the Service
    hostname: str
    image: str  # pinned: <repository>@sha256:...
    image_digest: str
    commit_sha: str | None = None
    config: AppConfig
    secrets_version: int = 0
    runtime_class: str | None = None
    ingress_class: str | None = None
    ready_timeout_seconds: int = 300
    rollback_window_seconds: int = 900
    retain_releases: int = 10
    retain_days: int = 30
    build: BuildInput | None = None  # a git source: build first, then release the built digest
    # Harbor configured: the dockerconfigjson Secret (a name only; the worker writes its credentials) the pods
    # pull with. None: no imagePullSecrets.
    image_pull_secret: str | None = None


class DeployResult(Msg):
    deployment_id: UUID
    phase: str
    release: str
    failure: Failure | None = None


class PhaseUpdate(Msg):
    deployment_id: UUID
    phase: str


class EnsureNamespace(Msg):
    tenant: str
    project: str
    namespace: str


class EnsurePullSecret(Msg):
    """The tenant's registry robot and the project namespace's pull Secret `secret` (names only: the robot's
    secret never leaves the activity)."""

    tenant: str
    project: str
    namespace: str
    secret: str


class ApplyRelease(Msg):
    spec: ReleaseSpec
    app_id: UUID
    secrets_version: int
    replicas: int | None = None


class WaitReady(Msg):
    namespace: str
    release: str
    replicas: int
    app_id: UUID | None = None  # with secrets_version: mask secret values in the log lines recorded
    secrets_version: int = 0
    timeout_seconds: int


class SwitchService(Msg):
    namespace: str
    tenant: str
    project: str
    app: str
    release: str
    hostname: str
    ingress_class: str | None = None


class Switched(Msg):
    previous_release: str | None
    refs: list[str]


class ScaleRelease(Msg):
    namespace: str
    release: str
    replicas: int
    unless_serving_app: str | None = None  # skip when the app's Service selects this release


class RetireReleases(Msg):
    namespace: str
    app: str
    keep: list[str]
    wait_gone_seconds: int = 0  # recreate: wait until their pods are gone (one writer at a time)


class RetiredRelease(Msg):
    name: str
    replicas: int


class RecordOutcome(Msg):
    deployment_id: UUID
    app_id: UUID
    phase: str
    serving: bool
    failure: Failure | None = None


class WaitClosed(Msg):
    workflow_ids: list[str]
    timeout_seconds: int = 600


class ReleaseState(Msg):
    namespace: str
    release: str
    replicas: int


class PruneReleases(Msg):
    namespace: str
    app: str
    keep: list[str]  # never pruned: serving and rollback-window releases
    retain_count: int
    retain_days: int


class DiagnoseInput(Msg):
    namespace: str
    release: str


class Diagnosis(Msg):
    healthy: bool
    failure: Failure | None = None
    desired_replicas: int = 0
    ready_replicas: int = 0
    containers: list[str] = []  # "pod/container: state (exit code, restarts)"
    events: list[str] = []  # "Reason: message", newest last
    logs: list[str] = []  # last lines of the first failing pod


class VolumeOp(Msg):
    """One change to a volume, carried out by the volume workflow."""

    op: Literal["create", "resize", "delete", "snapshot", "backup", "restore", "policy"]
    volume_id: UUID
    spec: VolumeSpec
    snapshot: str | None = None  # snapshot/backup: the VolumeSnapshot to take; restore: the one to restore
    cron: str | None = None
    retain: int | None = None
    timeout_seconds: int = 120


class VolumeResult(Msg):
    status: str
    refs: list[str] = []
    message: str | None = None


class VolumeOutcome(Msg):
    op: VolumeOp
    result: VolumeResult


class BuildInput(Msg):
    """Build one commit of an app's repository into `<image_repo>:<sha>`."""

    tenant: str
    project: str
    app: str
    app_id: UUID
    deployment_id: UUID | None = None
    git_url: str
    commit_sha: str
    subdir: str = ""
    builder: Literal["auto", "dockerfile", "railpack"] = "auto"
    image_repo: str  # <registry>/<tenant>/<app>
    timeout_seconds: int = 1800
    secrets_version: int = 0  # the app's secrets the build may read (RUN --mount=type=secret / Railpack)


class BuildOutput(Msg):
    build_id: UUID | None = None
    image: str | None = None  # <repo>@<digest>
    digest: str | None = None
    reused: bool = False
    failure: Failure | None = None


class BuildStarted(Msg):
    build_id: UUID
    reused_digest: str | None = None
    request: BuildInput


class BuildDone(Msg):
    build_id: UUID
    status: Literal["succeeded", "failed"]
    digest: str | None = None
    image: str | None = None
    failed_step: str | None = None
    error: str | None = None
    last_lines: list[str] = []


class ImageUpdate(Msg):
    deployment_id: UUID
    image: str  # repository
    digest: str


class DeleteAppInput(Msg):
    app_id: UUID
    namespace: str
    app: str
