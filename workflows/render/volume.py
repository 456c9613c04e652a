"""A platform volume as Kubernetes objects: its PersistentVolumeClaim, CSI VolumeSnapshots (a Longhorn snapshot
or backup by class) and the Longhorn RecurringJob of its backup schedule.

Pure, like every renderer: the volume activities apply what these functions return, and a reader can print a
volume's objects without a cluster."""

from __future__ import annotations

from typing import Any

from workflows.domain.labels import (
    LABEL_SNAPSHOT_KIND,
    LABEL_VOLUME,
)
from workflows.domain.specs import VolumeSpec
from workflows.render.namespace import project_labels
from workflows.render.objects import meta

# --- Volumes -------------------------------------------------------------------------------------------------

LONGHORN_NAMESPACE = "longhorn-system"
SNAPSHOT_CLASSES = {"snapshot": "longhorn-snapshot", "backup": "longhorn-backup"}


def volume_labels(spec: VolumeSpec) -> dict[str, str]:
    return project_labels(spec.tenant, spec.project) | {LABEL_VOLUME: spec.name}


def volume_pvc(spec: VolumeSpec, data_source: str | None = None) -> dict[str, Any]:
    """The volume's claim: ReadWriteOnce for single_node, ReadWriteMany (Longhorn's share manager) for shared.
    `data_source` names a VolumeSnapshot to restore from (Longhorn's documented CSI restore path)."""
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteMany" if spec.access == "shared" else "ReadWriteOnce"],
        "storageClassName": spec.storage_class,
        "resources": {"requests": {"storage": f"{spec.size_gib}Gi"}},
    }
    if data_source:
        body["dataSource"] = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": data_source}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": meta(spec.claim, spec.namespace, volume_labels(spec)), "spec": body}


def volume_snapshot(spec: VolumeSpec, name: str, kind: str) -> dict[str, Any]:
    """A CSI VolumeSnapshot of the volume's claim; its class decides a Longhorn snapshot (in-cluster) or a
    Longhorn backup (to the backup target)."""
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": meta(name, spec.namespace, volume_labels(spec) | {LABEL_SNAPSHOT_KIND: kind}),
        "spec": {"volumeSnapshotClassName": SNAPSHOT_CLASSES[kind],
                 "source": {"persistentVolumeClaimName": spec.claim}},
    }


LONGHORN_DRIVER = "driver.longhorn.io"


def imported_backup(spec: VolumeSpec, name: str, handle: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A recorded Longhorn backup made usable in a cluster that never saw it: a pre-provisioned
    VolumeSnapshotContent naming the backup by its handle and the VolumeSnapshot bound to it, which a claim's
    `dataSource` can then name (Longhorn's "restore a backup that has no associated VolumeSnapshot"). The
    content is Retain: deleting these objects never deletes the backup itself."""
    content_name = f"import-{spec.namespace}-{name}"[:253]
    content = {
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
        "metadata": meta(content_name, None, volume_labels(spec)),
        "spec": {"driver": LONGHORN_DRIVER, "deletionPolicy": "Retain",
                 "volumeSnapshotClassName": SNAPSHOT_CLASSES["backup"],
                 "source": {"snapshotHandle": handle},
                 "volumeSnapshotRef": {"name": name, "namespace": spec.namespace}},
    }
    snapshot = {
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": meta(name, spec.namespace, volume_labels(spec) | {LABEL_SNAPSHOT_KIND: "backup"}),
        "spec": {"volumeSnapshotClassName": SNAPSHOT_CLASSES["backup"],
                 "source": {"volumeSnapshotContentName": content_name}},
    }
    return content, snapshot


def recurring_job_name(spec: VolumeSpec) -> str:
    return f"{spec.namespace}-{spec.name}"[:63].rstrip("-")


def recurring_job(spec: VolumeSpec, cron: str, retain: int, task: str = "backup") -> dict[str, Any]:
    """A Longhorn RecurringJob (longhorn.io/v1beta2) for this volume alone; the claim opts in by label
    (`recurring_job_labels`), as Longhorn documents for PVC-sourced recurring jobs."""
    return {
        "apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJob",
        "metadata": meta(recurring_job_name(spec), LONGHORN_NAMESPACE, volume_labels(spec)),
        "spec": {"name": recurring_job_name(spec), "task": task, "cron": cron, "retain": retain,
                 "concurrency": 1, "groups": [], "labels": volume_labels(spec)},
    }


def recurring_job_labels(spec: VolumeSpec) -> dict[str, str]:
    return {"recurring-job.longhorn.io/source": "enabled",
            f"recurring-job.longhorn.io/{recurring_job_name(spec)}": "enabled"}
