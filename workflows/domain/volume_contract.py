"""The volume workflow's input and results (`VolumeOp`, `VolumeResult`, `VolumeOutcome`): explicit message types,
so fields can be added without breaking running workflows. Pure, shared by the workflow, its activities and
the volume tools."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from workflows.domain.specs import Msg, VolumeSpec


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
    handle: str | None = None  # a ready snapshot's or backup's snapshotHandle (its VolumeSnapshotContent's)


class VolumeOutcome(Msg):
    op: VolumeOp
    result: VolumeResult
