"""Inputs and results of the reconcile workflows and their activities, and the observation a pass records.
Explicit types for every call, so fields can be added (with defaults) without breaking running workflows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from workflows.domain.scaling import AppScale, AutoscalerStatus
from workflows.domain.specs import Msg


class ReconcileInput(Msg):
    """One app's reconcile loop: a pass every `reconcile.period_seconds` (the worker's setting, which each
    pass returns), a fresh run (continue-as-new) every `passes_per_run` passes so its history stays small."""

    app_id: UUID
    passes_per_run: int = 100
    # a fresh loop waits a random part of this before its first pass: a sweep starting many loops at once
    # (a worker's first start) spreads their passes instead of filling the worker's activity slots together
    start_jitter_seconds: float = 10.0
    failures: int = 0  # consecutive failed passes, carried across continue-as-new for the back-off


class ReconcilePass(Msg):
    app_id: UUID


PassState = Literal["observed", "busy", "gone"]


class PassResult(Msg):
    """`gone`: the app is deleted (or being deleted), the loop ends. `busy`: a release of the app is in
    progress (its deploy or rollback workflow runs, or its row is locked while one is recorded), so the pass
    touched nothing. `observed`: the app was compared with the cluster, repaired where it drifted, and the
    observation recorded."""

    state: PassState
    reason: str = ""
    period_seconds: float = 30.0  # the worker's settings: the next pass's wait, and the back-off's ceiling
    max_backoff_seconds: float = 300.0
    drift: list[str] = []
    repaired: list[str] = []
    healthy: bool = False


class ReconcileEnd(Msg):
    app_id: UUID
    reason: str


class SweepInput(Msg):
    """The sweeper: every `reconcile.sweep_seconds` (the worker's setting, which each sweep returns), make
    sure each recorded app has its reconcile loop, and look for objects with the platform's labels that no
    recorded app owns."""

    sweeps_per_run: int = 100


class SweepResult(Msg):
    sweep_seconds: float = 60.0
    apps: int
    started: int  # reconcile loops that were not running
    orphans: list[str] = []  # kind/namespace/name of objects no recorded app owns
    removed: list[str] = []


class Observation(Msg):
    """What one reconcile pass found for an app (written to `app_observations`, read by the status tools).
    The numbers and flags describe the cluster as the pass found it, before its repairs; `repaired` says what
    it re-applied, so the next pass shows whether the repair took."""

    app_id: UUID
    observed_at: datetime | None = None  # set by the store (its clock)
    release: str | None = None  # the serving release, None when no release serves
    desired_replicas: int = 0
    ready_replicas: int = 0
    serving_ready: bool = False  # the serving release runs its desired replicas, all Ready
    service_points_at_serving: bool = False  # the Service selects the serving release and its endpoints are its pods
    drift: list[str] = []
    repaired: list[str] = []
    error: str | None = None  # the pass could not finish (an API error)
    autoscaler: AutoscalerStatus | None = None  # the app is autoscaled: its HPA as found

    @property
    def healthy(self) -> bool:
        return (self.release is not None and self.serving_ready and self.service_points_at_serving
                and not self.drift and self.error is None)

    def reason(self) -> str | None:
        """Why the app is not serving as recorded, in a sentence; None when it is."""
        if self.error is not None:
            return f"the last reconcile pass failed: {self.error}"
        if self.release is None:
            return "no release is serving"
        if self.drift:
            fixed = " (re-applied)" if self.repaired else ""
            return f"drift found{fixed}: {'; '.join(self.drift[:3])}"
        if not self.serving_ready:
            return f"{self.release}: {self.ready_replicas}/{self.desired_replicas} replicas Ready"
        if not self.service_points_at_serving:
            return f"the Service does not send traffic to {self.release}'s pods yet"
        return None


class ServingRelease(Msg):
    """The release an app's Service should select, as recorded: what its objects are rendered from."""

    deployment_id: UUID
    release_seq: int
    image: str  # repository
    image_digest: str
    commit_sha: str | None = None
    config: dict[str, object]
    secrets_version: int = 0


class TargetVolume(Msg):
    """A platform volume a serving release mounts, as recorded (its claim is re-created when missing)."""

    name: str
    claim: str
    size_gib: int
    volume_class: str
    access: Literal["single_node", "shared"] = "single_node"
    backup: str | None = None  # the latest ready backup's VolumeSnapshot name, when its handle is recorded
    backup_handle: str | None = None
    backup_at: str | None = None  # when it was taken (ISO 8601), for the repair's audit row


class TargetDatabase(Msg):
    """The database attached to the app, as recorded: its objects are part of the app's desired state. The
    sealed password travels (as the release secrets' ciphertext does) and is opened in the activity only."""

    database_id: UUID
    name: str
    engine: Literal["statefulset", "cloudnative-pg"] = "statefulset"
    version: int
    size_gib: int
    volume_class: str
    resources: dict[str, int] = {}
    ciphertext: bytes


TargetState = Literal["ready", "busy", "gone"]


class ReconcileTarget(Msg):
    """What the store holds about one app for a reconcile pass, read under the app's row lock (the lock
    `create_release` takes to record a release). `busy`: the row is locked by a recording right now;
    `gone`: deleted or being deleted."""

    state: TargetState
    app_id: UUID
    tenant: str = ""
    project: str = ""
    app: str = ""
    namespace: str = ""
    hostname: str = ""
    serving: ServingRelease | None = None
    in_flight: list[str] = []  # workflow ids of the app's releases not finished yet
    volumes: list[TargetVolume] = []
    secrets_ciphertext: bytes | None = None  # of the serving release's secrets version
    scale: AppScale | None = None  # what `scale` recorded; None: the serving release's own count
    database: TargetDatabase | None = None  # the attached database, when it is ready
    domains: list[str] = []  # verified custom domains: their Certificate and Ingress are desired state


class AppKey(Msg):
    """A recorded app as the sweeper lists them."""

    app_id: UUID
    tenant: str
    project: str
    app: str
    namespace: str
    deleting: bool = False


def next_pass_seconds(period: float, max_backoff: float, failures: int) -> float:
    """The wait before the next pass: the period, doubled for each pass in a row that failed (the API server
    or the database refusing), up to `max_backoff`."""
    if failures <= 0:
        return period
    return float(min(max(period, 1.0) * 2 ** min(failures, 16), max(max_backoff, period)))
