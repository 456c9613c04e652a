"""What the activities need from the platform's store, as a protocol (the store lives in `mcp_server`; see
docs/decisions/0002-ports-for-the-store.md)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol
from uuid import UUID

from workflows.domain.build_contract import BuildDone, BuildInput, BuildStarted
from workflows.domain.domain_contract import DomainClaimState
from workflows.domain.phases import Phase
from workflows.domain.reconcile_contract import AppKey, Observation, ReconcileTarget
from workflows.domain.scaling import AppScale


class ReleaseStore(Protocol):
    async def set_deployment_phase(self, deployment_id: UUID, phase: Phase) -> None: ...

    async def finish_deployment(
        self, deployment_id: UUID, app_id: UUID, phase: Phase, serving: bool, error: dict[str, Any] | None
    ) -> None: ...

    async def secret_ciphertext(self, app_id: UUID, version: int) -> bytes | None: ...

    async def mark_app_deleted(self, app_id: UUID) -> None: ...

    async def set_deployment_image(self, deployment_id: UUID, image: str, digest: str) -> None: ...


class BuildStore(Protocol):
    async def start_build(self, inp: BuildInput, workflow_id: str, builder: str) -> BuildStarted: ...

    async def finish_build(self, done: BuildDone) -> None: ...

    async def append_build_lines(self, build_id: UUID, first_seq: int, lines: list[str]) -> None: ...

    async def git_credentials(self, tenant: str, host: str) -> tuple[str, str, bytes] | None: ...

    async def set_deployment_image(self, deployment_id: UUID, image: str, digest: str) -> None: ...

    async def secret_ciphertext(self, app_id: UUID, version: int) -> bytes | None: ...


class VolumeStore(Protocol):
    async def update_volume(self, volume_id: UUID, **fields: Any) -> None: ...

    async def delete_volume_row(self, volume_id: UUID) -> None: ...

    async def finish_snapshot(self, volume_id: UUID, k8s_name: str, status: str,
                              handle: str | None = None) -> None: ...


class RobotSlot(Protocol):
    """The stored registry robot of one tenant on one Harbor, held exclusively (see `RobotStore`)."""

    async def get(self) -> tuple[str, bytes] | None:
        """(robot name, SecretBox ciphertext of {"secret": ...}), or None when none is stored."""
        ...

    async def put(self, project: str, robot: str, ciphertext: bytes) -> None: ...


class RobotStore(Protocol):
    def robot_slot(self, tenant: str, harbor_url: str) -> AbstractAsyncContextManager[RobotSlot]:
        """The tenant's robot row, locked against other workers until the block ends: two deploys ensuring
        one robot at once would each refresh its secret, and only one of the two would still work."""
        ...


class ReconcileStore(Protocol):
    def reconcile_lock(self, app_id: UUID) -> AbstractAsyncContextManager[ReconcileTarget]:
        """The app's desired state, its row locked against recording a release until the block ends."""
        ...

    async def record_observation(self, obs: Observation) -> None: ...

    async def reconcilable_apps(self) -> list[AppKey]: ...

    async def record_platform_audit(self, tenant: str | None, tool: str, arguments: dict[str, Any],
                                    k8s_refs: list[str], *, workflow_id: str | None = None, outcome: Any = "ok",
                                    error: str | None = None, duration_ms: int = 0) -> None: ...


class ScaleStore(Protocol):
    def scale_lock(self, app_id: UUID) -> AbstractAsyncContextManager[ReconcileTarget]:
        """The app's desired state, its row locked (waiting for the lock) until the block ends; the lock a
        reconcile pass and the recording of a release take."""
        ...

    async def record_scale(self, app_id: UUID, scale: AppScale) -> None: ...
class DatabaseStore(Protocol):
    """The database workflow's records (`mcp_server.store.databases.PgDatabases`)."""

    async def get_database_by_id(self, database_id: UUID) -> Any: ...  # a tools.records.DatabaseRecord

    async def set_database_status(self, database_id: UUID, status: str, reason: str | None = None) -> None: ...

    async def set_database_engine(self, database_id: UUID, engine: str) -> None: ...

    async def promote_pending_password(self, database_id: UUID) -> None: ...

    async def delete_database_row(self, database_id: UUID) -> None: ...

    async def start_database_backup(self, database_id: UUID, kind: str, name: str) -> Any: ...

    async def finish_database_backup(self, database_id: UUID, name: str, status: str, size_bytes: int | None,
                                     error: str | None) -> None: ...
class DomainStore(Protocol):
    async def domain_claim_state(self, domain_id: UUID, token: str) -> DomainClaimState: ...

    async def set_domain_status(self, domain_id: UUID, token: str, **fields: Any) -> bool: ...

    async def remove_domain(self, domain_id: UUID, token: str) -> None: ...
