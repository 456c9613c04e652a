"""The volume workflow's activities: claims, snapshots and Longhorn recurring jobs on the cluster, and the
volume's row in the store. Idempotent: applying, patching to a size, or snapshotting under a fixed name
gives the same result when Temporal retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.activities.kube_call import kube_call
from workflows.activities.stores import VolumeStore
from workflows.adapters.kube import Kube, KubeError, ref
from workflows.domain.quantities import gib, holds_gib
from workflows.domain.volume_contract import VolumeOp, VolumeOutcome, VolumeResult
from workflows.render.volume import (
    LONGHORN_NAMESPACE,
    recurring_job,
    recurring_job_labels,
    recurring_job_name,
    volume_pvc,
    volume_snapshot,
)


class VolumeActivities:
    def __init__(self, kube: Kube, store: VolumeStore) -> None:
        self.kube = kube
        self.store = store

    async def _wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await kube_call(check)
            if found:
                return found
            activity.heartbeat(what)
            await asyncio.sleep(0.3)
        raise ApplicationError(f"{what} after {timeout:.0f} s", type="VolumeTimeout", non_retryable=True)

    async def _bound(self, op: VolumeOp) -> VolumeResult:
        ns, claim = op.spec.namespace, op.spec.claim

        async def bound() -> bool:
            pvc = await self.kube.get("v1", "PersistentVolumeClaim", ns, claim)
            return bool(pvc and (pvc.get("status") or {}).get("phase") == "Bound")

        await self._wait(f"claim {ns}/{claim} not bound (no storage provisioned it)", bound, op.timeout_seconds)
        return VolumeResult(status="bound", refs=[f"PersistentVolumeClaim/{ns}/{claim}"])

    @activity.defn
    async def volume_create(self, op: VolumeOp) -> VolumeResult:
        await kube_call(lambda: self.kube.apply(volume_pvc(op.spec)))
        return await self._bound(op)

    @activity.defn
    async def volume_restore(self, op: VolumeOp) -> VolumeResult:
        await kube_call(lambda: self.kube.apply(volume_pvc(op.spec, data_source=op.snapshot)))
        return await self._bound(op)

    @activity.defn
    async def volume_resize(self, op: VolumeOp) -> VolumeResult:
        ns, claim = op.spec.namespace, op.spec.claim
        pvc = await kube_call(lambda: self.kube.get("v1", "PersistentVolumeClaim", ns, claim))
        if pvc is None:
            raise ApplicationError(f"claim {ns}/{claim} does not exist", type="VolumeMissing", non_retryable=True)
        current = gib(pvc["spec"]["resources"]["requests"]["storage"])
        if op.spec.size_gib < current:
            raise ApplicationError(f"volumes only grow: {current} GiB now, {op.spec.size_gib} GiB asked",
                                   type="VolumeShrink", non_retryable=True)
        # a merge patch of the size alone: `dataSource` of a restored claim is immutable, so no full re-apply
        await kube_call(lambda: self.kube.patch(pvc, {"spec": {"resources": {"requests": {
            "storage": f"{op.spec.size_gib}Gi"}}}}))

        async def grown() -> bool:
            now = await self.kube.get("v1", "PersistentVolumeClaim", ns, claim)
            return holds_gib(((now or {}).get("status") or {}).get("capacity", {}).get("storage"), op.spec.size_gib)

        await self._wait(f"claim {ns}/{claim} not expanded to {op.spec.size_gib} GiB", grown, op.timeout_seconds)
        return VolumeResult(status="bound", refs=[f"PersistentVolumeClaim/{ns}/{claim}"])

    async def _snapshot(self, op: VolumeOp, kind: str) -> VolumeResult:
        assert op.snapshot
        vs = volume_snapshot(op.spec, op.snapshot, kind)
        await kube_call(lambda: self.kube.apply(vs))

        async def ready() -> bool:
            now = await self.kube.get("snapshot.storage.k8s.io/v1", "VolumeSnapshot", op.spec.namespace,
                                      op.snapshot or "")
            status = (now or {}).get("status") or {}
            if (status.get("error") or {}).get("message"):
                raise ApplicationError(f"{kind} failed: {status['error']['message']}", type="SnapshotFailed",
                                       non_retryable=True)
            return bool(status.get("readyToUse"))

        await self._wait(f"{kind} {op.snapshot} not ready", ready, op.timeout_seconds)
        return VolumeResult(status="ready", refs=[ref(vs)], handle=await self._handle(op.spec.namespace, op.snapshot))

    async def _handle(self, namespace: str, snapshot: str) -> str | None:
        """The storage's name of the snapshot (`status.snapshotHandle` of its bound VolumeSnapshotContent),
        which outlives the cluster for a Longhorn backup."""
        vs = await kube_call(lambda: self.kube.get("snapshot.storage.k8s.io/v1", "VolumeSnapshot", namespace,
                                                   snapshot))
        content_name = ((vs or {}).get("status") or {}).get("boundVolumeSnapshotContentName")
        if not content_name:
            return None
        content = await kube_call(lambda: self.kube.get("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent",
                                                        None, content_name))
        handle = ((content or {}).get("status") or {}).get("snapshotHandle")
        return str(handle) if handle else None

    @activity.defn
    async def volume_snapshot(self, op: VolumeOp) -> VolumeResult:
        return await self._snapshot(op, "snapshot")

    @activity.defn
    async def volume_backup(self, op: VolumeOp) -> VolumeResult:
        return await self._snapshot(op, "backup")

    @activity.defn
    async def volume_policy(self, op: VolumeOp) -> VolumeResult:
        ns, claim = op.spec.namespace, op.spec.claim
        job = recurring_job(op.spec, op.cron or "0 3 * * *", op.retain or 7)
        await kube_call(lambda: self.kube.apply(job))
        pvc = await kube_call(lambda: self.kube.get("v1", "PersistentVolumeClaim", ns, claim))
        if pvc is None:
            raise ApplicationError(f"claim {ns}/{claim} does not exist", type="VolumeMissing", non_retryable=True)
        await kube_call(lambda: self.kube.patch(pvc, {"metadata": {"labels": recurring_job_labels(op.spec)}}))
        return VolumeResult(status="bound", refs=[ref(job), f"PersistentVolumeClaim/{ns}/{claim}"])

    @activity.defn
    async def volume_delete(self, op: VolumeOp) -> VolumeResult:
        ns, claim = op.spec.namespace, op.spec.claim
        await kube_call(lambda: self.kube.delete("v1", "PersistentVolumeClaim", ns, claim))
        try:
            await self.kube.delete("longhorn.io/v1beta2", "RecurringJob", LONGHORN_NAMESPACE,
                                   recurring_job_name(op.spec))
        except KubeError as e:  # no Longhorn CRDs (a bare cluster): nothing to delete
            if e.failure.status not in (404,):
                raise
        return VolumeResult(status="deleted", refs=[f"PersistentVolumeClaim/{ns}/{claim}"])

    @activity.defn
    async def volume_record(self, out: VolumeOutcome) -> None:
        op, result = out.op, out.result
        failed = result.status == "failed"
        if op.op in ("snapshot", "backup") and op.snapshot:
            await self.store.finish_snapshot(op.volume_id, op.snapshot, "failed" if failed else "ready",
                                             handle=result.handle)
        elif op.op == "delete" and not failed:
            await self.store.delete_volume_row(op.volume_id)
        elif op.op == "resize" and not failed:
            await self.store.update_volume(op.volume_id, size_gib=op.spec.size_gib, status="bound")
        elif op.op == "policy" and not failed:
            await self.store.update_volume(op.volume_id, backup_schedule=op.cron, backup_retain=op.retain)
        elif op.op in ("create", "restore"):
            await self.store.update_volume(op.volume_id, status="failed" if failed else "bound")

    def all(self) -> list[Callable[..., Any]]:
        return [self.volume_create, self.volume_restore, self.volume_resize, self.volume_snapshot,
                self.volume_backup, self.volume_policy, self.volume_delete, self.volume_record]
