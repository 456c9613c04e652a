"""What the activities need from the platform's store, as a protocol (the store lives in `mcp_server`; see
docs/decisions/0002-ports-for-the-store.md)."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID


class ReleaseStore(Protocol):
    async def set_deployment_phase(self, deployment_id: UUID, phase: str) -> None: ...

    async def finish_deployment(
        self, deployment_id: UUID, app_id: UUID, phase: str, serving: bool, error: dict[str, Any] | None
    ) -> None: ...

    async def secret_ciphertext(self, app_id: UUID, version: int) -> bytes | None: ...

    async def mark_app_deleted(self, app_id: UUID) -> None: ...


class VolumeStore(Protocol):
    async def update_volume(self, volume_id: UUID, **fields: Any) -> None: ...

    async def delete_volume_row(self, volume_id: UUID) -> None: ...

    async def finish_snapshot(self, volume_id: UUID, k8s_name: str, status: str) -> None: ...
