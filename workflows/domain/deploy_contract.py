"""Inputs and results of the deploy workflow and its activities. Explicit types for every call, so fields
can be added (with defaults) without breaking workflows already running."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from workflows.domain.build_contract import BuildInput
from workflows.domain.diagnosis import Failure
from workflows.domain.phases import Phase
from workflows.domain.scaling import Autoscale
from workflows.domain.specs import NODE_FAILURE_SECONDS, AppConfig, Msg, ReleaseSpec


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
    node_failure_seconds: int = NODE_FAILURE_SECONDS  # the pods' NoExecute tolerations (cluster.node_failure_seconds)
    ready_timeout_seconds: int = 300
    rollback_window_seconds: int = 900
    retain_releases: int = 10
    retain_days: int = 30
    build: BuildInput | None = None  # a git source: build first, then release the built digest
    # Harbor configured: the dockerconfigjson Secret (a name only; the worker writes its credentials) the pods
    # pull with. None: no imagePullSecrets.
    image_pull_secret: str | None = None
    # the app is autoscaled (`scale`): the release starts at the serving release's count and the autoscaler
    # follows it when the Service switches (docs/decisions/0015-autoscaling.md). None: `config.replicas`.
    autoscale: Autoscale | None = None


class DeployResult(Msg):
    deployment_id: UUID
    phase: Phase
    release: str
    failure: Failure | None = None


class PhaseUpdate(Msg):
    deployment_id: UUID
    phase: Phase


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
    # set: the release's phase becomes `switching` beside the Service patch, not in a step before it
    deployment_id: UUID | None = None


class SwitchIfReady(Msg):
    """A rollback's switch inside its window: only when the target runs `replicas` Ready pods now."""

    switch: SwitchService
    replicas: int


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
    phase: Phase
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


class ImageUpdate(Msg):
    deployment_id: UUID
    image: str  # repository
    digest: str
