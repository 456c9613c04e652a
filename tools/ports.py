"""What the tools need from the layer above them, as protocols, and the errors the store raises.

The import direction is `mcp_server -> tools -> workflows`: the Postgres store lives in `mcp_server`, so the
tools name what they need here and `mcp_server` hands in the implementation (see
docs/decisions/0002-ports-for-the-store.md). mypy checks that the implementation fits. The store's errors sit
beside its port for the same reason: the store raises them without importing the tools' agent-facing errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from tools.records import (
    AppRecord,
    AuditEvent,
    BackupRun,
    DatabaseBackupRecord,
    DatabaseRecord,
    DeliveryOutcome,
    DeploymentRecord,
    DomainRecord,
    NewRelease,
    ObservationRecord,
    PreflightSummary,
    ProjectRecord,
    PushConnection,
    ReleaseClaim,
    SecretVersion,
    SnapshotRecord,
    TenantRecord,
    VolumeRecord,
)
from workflows.adapters.registry import ResolvedImage
from workflows.domain.database_contract import DatabaseOp, DatabaseResult
from workflows.domain.database_observation import DatabaseObservation, ObserveInput
from workflows.domain.delete_contract import DeleteAppInput
from workflows.domain.deploy_contract import DeployInput
from workflows.domain.diagnose_contract import DiagnoseInput, Diagnosis
from workflows.domain.domain_contract import DomainInput
from workflows.domain.images import ImageRef
from workflows.domain.log_paging import LogPage, LogQuery
from workflows.domain.scaling_contract import AppMetrics, MetricsInput, ScaleInput, ScaleResult
from workflows.domain.specs import ClusterCaps
from workflows.domain.volume_contract import VolumeOp, VolumeResult


class StoreError(Exception):
    """Base of the failures a `Store` reports on purpose. `str()` is for the log; the tools turn each kind into
    what the agent reads (`tools.context.agent_error`). Anything else a store raises is a bug."""


class RecordNotFound(StoreError):
    """The record an operation builds on does not exist (or was deleted meanwhile); nothing was written.
    Retrying the same call fails the same way: the caller must create the record first, or name another."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind, self.key = kind, key  # e.g. ("project", "shop"), ("app", "shop/web")
        super().__init__(f"no {kind} {key!r}")


ConflictKind = Literal["app", "hostname", "domain", "secrets"]


class RecordConflict(StoreError):
    """The write contradicts what is stored, and nothing was written. `kind` says what collided: `app` (an app of
    that name exists), `hostname` (another app has it) and `domain` (another app's live claim of a custom domain)
    stay so, and a retry fails the same way; `secrets`
    (another writer recorded the next secrets version first) is a lost race: read the current version and retry."""

    def __init__(self, kind: ConflictKind, key: str) -> None:
        self.kind, self.key = kind, key
        super().__init__(f"{kind} {key!r} conflicts with a stored record")


class StoreUnavailable(StoreError):
    """The database cannot be reached: no connection within the pool's timeout, or the connection broke. A
    retry later may work. A write whose connection broke mid-way may have committed, so repeat only what is
    safe to repeat (`create_release` is: a retry returns the release recorded first)."""


class WorkflowsUnavailable(Exception):
    """The workflow service (Temporal) cannot be reached now: the start, cancel or wait did not happen. What the
    call recorded before stays recorded, and a retry with the same `idempotency_key` starts its workflow (the
    workflow id is the business key, so nothing runs twice)."""


class Store(Protocol):
    """The platform's records as the tools read and write them (`mcp_server.store.PgStore`). Raises the
    `StoreError`s above, nothing else on purpose."""

    async def ensure_tenant(self, name: str) -> TenantRecord: ...

    async def latest_preflight(self) -> PreflightSummary | None:
        """The most recent cluster preflight of any worker (operators only: `whoami`)."""
    async def last_backup_runs(self) -> tuple[BackupRun | None, BackupRun | None]:
        """(the last successful Plane A backup, the last failed one); for the operator's `whoami`."""
        ...

    async def list_projects(self, tenant: str) -> list[ProjectRecord]: ...

    async def get_project(self, tenant: str, project: str) -> ProjectRecord | None: ...

    async def list_apps(self, tenant: str, project: str | None) -> list[AppRecord]: ...

    async def get_app(self, tenant: str, project: str, app: str) -> AppRecord | None: ...

    async def list_deployments(self, app_id: UUID, limit: int) -> list[DeploymentRecord]: ...

    async def get_deployment(self, tenant: str, deployment_id: UUID) -> DeploymentRecord | None: ...

    async def get_app_by_id(self, app_id: UUID) -> AppRecord | None: ...

    async def observations(self, app_ids: list[UUID]) -> dict[UUID, ObservationRecord]:
        """The reconciler's latest observation of each app that has one."""
        ...

    async def releasing(self, app_ids: list[UUID]) -> set[UUID]:
        """Those of the apps with a release not finished yet."""
        ...

    async def hostname_owner(self, hostname: str) -> UUID | None: ...

    async def current_secrets(self, app_id: UUID) -> SecretVersion: ...

    async def add_secret_version(
        self, app_id: UUID, base_version: int, names: list[str], ciphertext: bytes, created_by: str
    ) -> int: ...

    async def create_release(self, req: NewRelease) -> ReleaseClaim: ...

    async def release_by_key(self, app_id: UUID, idempotency_key: str) -> DeploymentRecord | None: ...

    async def in_flight(self, app_id: UUID) -> list[DeploymentRecord]: ...

    async def mark_app_deleting(self, app_id: UUID) -> None: ...

    async def create_volume(self, tenant: str, project: str, name: str, size_gib: int, class_: str, access: str,
                            pvc_name: str, restored_from: UUID | None = None, idempotency_key: str | None = None,
                            request_fingerprint: dict[str, Any] | None = None) -> tuple[VolumeRecord, bool]: ...

    async def get_volume(self, tenant: str, project: str, name: str) -> VolumeRecord | None: ...

    async def create_database(self, tenant: str, project: str, name: str, *, engine: str, version: int,
                              size_gib: int, class_: str, resources: dict[str, Any], ciphertext: bytes,
                              created_by: str) -> tuple[DatabaseRecord, bool]: ...

    async def get_database(self, tenant: str, project: str, name: str) -> DatabaseRecord | None: ...

    async def database_of_app(self, app_id: UUID) -> DatabaseRecord | None: ...

    async def list_databases(self, tenant: str, project: str | None) -> list[DatabaseRecord]: ...

    async def set_database_app(self, database_id: UUID, app_id: UUID | None) -> None: ...

    async def set_database_status(self, database_id: UUID, status: str, reason: str | None = None) -> None: ...

    async def set_pending_password(self, database_id: UUID, ciphertext: bytes | None) -> None: ...

    async def list_database_backups(self, database_id: UUID, limit: int = 20) -> list[DatabaseBackupRecord]: ...

    async def list_volumes(self, tenant: str, project: str | None) -> list[VolumeRecord]: ...

    async def set_attachment(self, volume_id: UUID, app_id: UUID, mount_path: str | None,
                             read_only: bool) -> None: ...

    async def record_snapshot(self, volume_id: UUID, kind: str, k8s_name: str, created_by: str,
                              idempotency_key: str | None = None, request_fingerprint: dict[str, Any] | None = None,
                              ) -> tuple[SnapshotRecord, bool]: ...

    async def get_snapshot(self, tenant: str, snapshot_id: UUID) -> tuple[SnapshotRecord, VolumeRecord] | None: ...

    async def list_snapshots(self, volume_id: UUID) -> list[SnapshotRecord]: ...

    async def git_credentials(self, tenant: str, host: str) -> tuple[str, str, bytes] | None: ...

    async def set_git_credentials(self, tenant: str, host: str, kind: str, username: str, ciphertext: bytes,
                                  created_by: str) -> None: ...

    async def list_builds(self, app_id: UUID, limit: int) -> list[dict[str, Any]]: ...

    async def get_build(self, tenant: str, build_id: UUID) -> dict[str, Any] | None: ...

    async def build_of_deployment(self, deployment_id: UUID) -> dict[str, Any] | None: ...

    async def build_lines(self, build_id: UUID, after_seq: int, limit: int) -> list[dict[str, Any]]: ...

    async def add_domain(self, app_id: UUID, hostname: str, token: str, deadline: datetime,
                         tls_secret: str) -> tuple[DomainRecord, bool]: ...

    async def get_domain(self, tenant: str, hostname: str) -> DomainRecord | None: ...

    async def list_domains(self, tenant: str, project: str | None, app: str | None) -> list[DomainRecord]: ...

    async def domains_of_apps(self, app_ids: list[UUID]) -> dict[UUID, list[DomainRecord]]: ...

    async def set_domain_status(self, domain_id: UUID, token: str, **fields: Any) -> bool: ...

    async def remove_domain(self, domain_id: UUID, token: str) -> None: ...

    async def connect_push(self, app_id: UUID, hook_id: str, branch: str, previews: bool, previews_secrets: bool,
                           ciphertext: bytes, created_by: str) -> PushConnection: ...

    async def disconnect_push(self, app_id: UUID) -> bool: ...

    async def push_connection(self, app_id: UUID) -> PushConnection | None: ...

    async def push_connection_by_hook(self, hook_id: str) -> PushConnection | None: ...

    async def claim_delivery(self, hook_id: str, delivery_id: str, provider: str, event: str) -> bool:
        """False: the delivery id was seen before (a replay)."""
        ...

    async def finish_delivery(self, hook_id: str, delivery_id: str, outcome: DeliveryOutcome,
                              detail: str | None) -> None: ...

    async def preview_app_id(self, parent_app_id: UUID, pr_number: int) -> UUID | None: ...

    async def preview_apps(self, parent_app_id: UUID) -> list[tuple[int, UUID]]:
        """(pull request number, preview app id) of each recorded preview, by number."""
        ...

    async def set_preview_app(self, parent_app_id: UUID, pr_number: int, app_id: UUID) -> None: ...

    async def remove_preview_app(self, parent_app_id: UUID, pr_number: int) -> None: ...

    async def record_audit(self, event: AuditEvent) -> None: ...

    async def list_audit(
        self, tenant: str, tool: str | None, since: datetime | None, before_id: int | None, limit: int
    ) -> list[AuditEvent]: ...


class Workflows(Protocol):
    """Starting and stopping the platform's durable workflows (Temporal in `mcp_server`). Raises
    `WorkflowsUnavailable` when the service cannot be reached."""

    async def start_deploy(self, workflow_id: str, inp: DeployInput) -> None: ...

    async def start_delete(self, workflow_id: str, inp: DeleteAppInput) -> None: ...

    async def cancel(self, workflow_id: str) -> None: ...

    async def diagnose(self, inp: DiagnoseInput) -> Diagnosis: ...

    async def run_volume(self, workflow_id: str, op: VolumeOp, wait_seconds: float) -> VolumeResult | None: ...

    async def run_scale(self, workflow_id: str, inp: ScaleInput, wait_seconds: float) -> ScaleResult | None:
        """Start the scale workflow and wait up to `wait_seconds` for its result; None while it runs."""
        ...

    async def app_metrics(self, inp: MetricsInput) -> AppMetrics: ...

    async def observe_database(self, inp: ObserveInput) -> DatabaseObservation:
        """The database as it is now (disk, connections), each figure observed or `unknown` with why."""
        ...

    async def run_database(self, workflow_id: str, op: DatabaseOp, wait_seconds: float) -> DatabaseResult | None:
        """Start (or find) the database workflow; its result within `wait_seconds`, else None."""
    async def signal_domain(self, workflow_id: str, inp: DomainInput, signal: Literal["check_now", "remove"]
                            ) -> None:
        """Signal the domain's workflow, starting it (with `inp`) when none runs under that id."""
        ...


class Images(Protocol):
    """Tag -> digest through the registry's OCI API (read-only)."""

    async def resolve(self, ref: ImageRef) -> ResolvedImage: ...


class LogStore(Protocol):
    """An app's logs (Loki, or the pod log API in dev): pages in a stable order with exact cursors.

    `selector` always holds the tenant, project and app labels of the app as the store records it; stores
    raise `workflows.domain.log_paging.LogStoreUnavailable` or `LogQueryError`, which the tools turn into agent
    errors."""

    source: str

    async def read(self, q: LogQuery) -> LogPage: ...

    async def labels(self, selector: dict[str, str]) -> dict[str, list[str]]: ...


class DryRunRefused(Exception):
    """The API server's dry run refused an object (validation or admission), as the real call would be refused.
    `what` is the object (`Kind/namespace/name`), `message` the API server's own text (it names the field)."""

    def __init__(self, what: str, message: str) -> None:
        self.what, self.message = what, message
        super().__init__(f"{what}: {message}")


class DryRunUnavailable(Exception):
    """The cluster cannot be asked now (unreachable, not allowed): a plan says so instead of validating."""


class ClusterPlanner(Protocol):
    """The cluster as a plan reads it (`plan=true`, decision 0021): the live objects, and the API server's
    server-side dry run (`dryRun=All`), which persists nothing. Raises `DryRunRefused` or `DryRunUnavailable`."""

    async def caps(self) -> ClusterCaps: ...

    async def live(self, obj: dict[str, Any]) -> dict[str, Any] | None: ...

    async def dry_run_apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def dry_run_scale(self, namespace: str, deployment: str, replicas: int) -> dict[str, Any]: ...
