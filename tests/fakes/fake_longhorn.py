"""FakeLonghorn: plays Longhorn's CSI driver and the CSI external-snapshotter on the local testbed, where no
storage controller runs (see docs/decisions/0006-volumes.md). Real Longhorn does all of this on k3s.

What it does, through the real API server, for claims of the Longhorn classes (`fast`, `standard`):
- provisions: a host directory under `root` per claim, a PersistentVolume (hostPath, Retain) pre-bound to
  the claim with the claim's size and access modes; the kube-controller-manager binds them. A claim whose
  `dataSource` is a VolumeSnapshot starts with that snapshot's files (Longhorn's CSI restore).
- expands: a claim asking for more storage grows its PV and gets `status.capacity` (the external-resizer).
- snapshots: a VolumeSnapshot of a claim copies the claim's files aside, creates its VolumeSnapshotContent
  with Longhorn's handle (`snap://<volume>/<name>` or `bak://<volume>/<name>` by the class's type) and sets
  `readyToUse` (the external-snapshotter + Longhorn).
- reclaims: PVs whose claim is gone are deleted with their directory.
- releases volumes of a dead node, as Longhorn's "Pod Deletion Policy When Node is Down" setting does
  (`node-down-pod-deletion-policy`): a pod the control plane evicted from a node that is not Ready, and that
  mounts one of its claims, is force-deleted, so its StatefulSet (or ReplicaSet) starts the replacement on a
  live node. Kubernetes itself never force-deletes a StatefulSet's pod. Longhorn's default is `do-nothing`;
  docs/operations.md tells operators to set it (for databases); the fake runs as
  `delete-both-statefulset-and-deployment-pod`.
Both testbed nodes share the host, so a volume "moves" with its pod, as a Longhorn volume does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mcp_server.devenv.embedded import manifests_dir
from workflows.adapters.kube import Kube, KubeError
from workflows.domain.quantities import gib

log = logging.getLogger(__name__)

LONGHORN_CLASSES = ("fast", "standard")
DRIVER = "driver.longhorn.io"


NODE_DOWN_POLICIES = {  # Longhorn's setting values -> the owner kinds whose terminating pods it force-deletes
    "do-nothing": (),
    "delete-statefulset-pod": ("StatefulSet",),
    "delete-deployment-pod": ("ReplicaSet",),
    "delete-both-statefulset-and-deployment-pod": ("StatefulSet", "ReplicaSet"),
}


def _node_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


@dataclass
class FakeLonghorn:
    kube: Kube
    root: Path
    interval: float = 0.3
    node_down_pod_deletion_policy: str = "delete-both-statefulset-and-deployment-pod"

    def _dir(self, pv: str) -> Path:
        return self.root / "volumes" / pv

    def _handle_dir(self, handle: str) -> Path:
        """Where a snapshot's files are, by its handle: `snap://` ones beside the volumes, `bak://` ones in the
        "backup target" (a root the caller may keep across clusters, as Longhorn's backups outlive one)."""
        scheme, _, rest = handle.partition("://")
        return self.root / ("backups" if scheme == "bak" else "snapshots") / rest

    async def sync_once(self) -> None:
        pvcs = await self.kube.list_objects("v1", "PersistentVolumeClaim", None)
        pvs = {pv["metadata"]["name"]: pv for pv in await self.kube.list_objects("v1", "PersistentVolume", None)}
        for pvc in pvcs:
            if pvc["spec"].get("storageClassName") not in LONGHORN_CLASSES:
                continue
            name = pvc["spec"].get("volumeName")
            if not name:
                await self._provision(pvc)
            elif name in pvs:
                await self._expand(pvc, pvs[name])
        await self._snapshots(pvcs)
        await self._release_down_nodes(pvs)
        claims = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"]) for p in pvcs}
        for pv in pvs.values():
            ref = pv["spec"].get("claimRef") or {}
            ours = (pv["metadata"].get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") == DRIVER
            if ours and (ref.get("namespace"), ref.get("name"), ref.get("uid")) not in claims:
                await self.kube.delete("v1", "PersistentVolume", None, pv["metadata"]["name"])
                shutil.rmtree(self._dir(pv["metadata"]["name"]), ignore_errors=True)

    async def _release_down_nodes(self, pvs: dict[str, dict[str, Any]]) -> None:
        kinds = NODE_DOWN_POLICIES[self.node_down_pod_deletion_policy]
        if not kinds:
            return
        down = {n["metadata"]["name"] for n in await self.kube.list_objects("v1", "Node", None) if not _node_ready(n)}
        if not down:
            return
        ours = {((pv["spec"].get("claimRef") or {}).get("namespace"), (pv["spec"].get("claimRef") or {}).get("name"))
                for pv in pvs.values()
                if (pv["metadata"].get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") == DRIVER}
        for pod in await self.kube.list_objects("v1", "Pod", None):
            md, spec = pod["metadata"], pod.get("spec") or {}
            if spec.get("nodeName") not in down or not md.get("deletionTimestamp"):
                continue  # only what the control plane already evicted: the fake decides nothing itself
            if not any(o.get("kind") in kinds for o in md.get("ownerReferences") or []):
                continue
            claims = {(v.get("persistentVolumeClaim") or {}).get("claimName") for v in spec.get("volumes") or []}
            if any((md["namespace"], c) in ours for c in claims if c):
                await self.kube.delete("v1", "Pod", md["namespace"], md["name"], grace_seconds=0)
                log.info("fake longhorn: force-deleted %s/%s from down node %s", md["namespace"], md["name"],
                         spec["nodeName"])

    async def _provision(self, pvc: dict[str, Any]) -> None:
        md, spec = pvc["metadata"], pvc["spec"]
        pv_name = f"pvc-{md['uid']}"
        path = self._dir(pv_name)
        path.mkdir(parents=True, exist_ok=True)
        source = spec.get("dataSource") or {}
        if source.get("kind") == "VolumeSnapshot":
            vs = await self.kube.get("snapshot.storage.k8s.io/v1", "VolumeSnapshot", md["namespace"], source["name"])
            if vs is None or not (vs.get("status") or {}).get("readyToUse"):
                return  # Longhorn waits for the snapshot to be ready
            content = await self.kube.get("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent", None,
                                          vs["status"]["boundVolumeSnapshotContentName"])
            handle = ((content or {}).get("status") or {}).get("snapshotHandle")
            if not handle:
                return
            shutil.copytree(self._handle_dir(handle), path, dirs_exist_ok=True)
        os.chmod(path, 0o777)  # noqa: S103 - any pod user may write: hostPath has no fsGroup support
        storage = spec["resources"]["requests"]["storage"]
        await self.kube.create({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER},
                         "labels": {"deploy-mcp/fake": "longhorn"}},
            "spec": {
                "capacity": {"storage": storage}, "accessModes": spec["accessModes"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": spec["storageClassName"],
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": md["namespace"],
                             "name": md["name"], "uid": md["uid"]},
            },
        })
        log.info("fake longhorn: provisioned %s for %s/%s", pv_name, md["namespace"], md["name"])

    async def _expand(self, pvc: dict[str, Any], pv: dict[str, Any]) -> None:
        want = pvc["spec"]["resources"]["requests"]["storage"]
        have = pv["spec"]["capacity"]["storage"]
        if gib(want) > gib(have):
            await self.kube.patch(pv, {"spec": {"capacity": {"storage": want}}})
        status_cap = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
        if pvc.get("status", {}).get("phase") == "Bound" and status_cap and gib(status_cap) < gib(want):
            await self.kube.patch(pvc, {"status": {"capacity": {"storage": want}}}, subresource="status")

    async def _snapshots(self, pvcs: list[dict[str, Any]]) -> None:
        by_claim = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in pvcs}
        classes = {c["metadata"]["name"]: c for c in await self.kube.list_objects(
            "snapshot.storage.k8s.io/v1", "VolumeSnapshotClass", None)}
        for vs in await self.kube.list_objects("snapshot.storage.k8s.io/v1", "VolumeSnapshot", None):
            if (vs.get("status") or {}).get("readyToUse"):
                continue
            md = vs["metadata"]
            if vs["spec"]["source"].get("volumeSnapshotContentName"):
                await self._import(vs)
                continue
            claim = by_claim.get((md["namespace"], vs["spec"]["source"].get("persistentVolumeClaimName", "")))
            vclass = classes.get(vs["spec"].get("volumeSnapshotClassName", ""))
            if claim is None or vclass is None or not claim["spec"].get("volumeName"):
                continue
            volume = claim["spec"]["volumeName"]
            scheme = "bak" if (vclass.get("parameters") or {}).get("type") == "bak" else "snap"
            handle = f"{scheme}://{volume}/{md['name']}"
            target = self._handle_dir(handle)
            shutil.copytree(self._dir(volume), target, dirs_exist_ok=True)
            content_name = f"snapcontent-{md['uid']}"
            size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
            now = datetime.now(UTC)
            content = {
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name},
                "spec": {"driver": DRIVER, "deletionPolicy": vclass.get("deletionPolicy", "Delete"),
                         "volumeSnapshotClassName": vclass["metadata"]["name"],
                         "source": {"volumeHandle": volume},
                         "volumeSnapshotRef": {"name": md["name"], "namespace": md["namespace"], "uid": md["uid"]}},
            }
            if await self.kube.get("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent", None, content_name) is None:
                await self.kube.create(content)
            await self.kube.patch(content, {"status": {"snapshotHandle": handle, "readyToUse": True,
                                                       "creationTime": int(now.timestamp() * 1e9),
                                                       "restoreSize": size}}, subresource="status")
            await self.kube.patch(vs, {"status": {"boundVolumeSnapshotContentName": content_name,
                                                  "readyToUse": True, "restoreSize": size,
                                                  "creationTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}},
                                  subresource="status")

    async def _import(self, vs: dict[str, Any]) -> None:
        """A pre-provisioned content naming a backup by handle (Longhorn's restore of a backup that has no
        VolumeSnapshot): ready once the backup is found in the backup target, an error on the snapshot if not."""
        content = await self.kube.get("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent", None,
                                      vs["spec"]["source"]["volumeSnapshotContentName"])
        if content is None:
            return  # the snapshot controller waits for its content
        handle = content["spec"]["source"].get("snapshotHandle", "")
        if not self._handle_dir(handle).is_dir():
            await self.kube.patch(vs, {"status": {"readyToUse": False, "error": {
                "message": f"backup {handle} not found in the backup target"}}}, subresource="status")
            return
        size = sum(f.stat().st_size for f in self._handle_dir(handle).rglob("*") if f.is_file())
        now = datetime.now(UTC)
        await self.kube.patch(content, {"status": {"snapshotHandle": handle, "readyToUse": True,
                                                   "creationTime": int(now.timestamp() * 1e9), "restoreSize": size}},
                              subresource="status")
        await self.kube.patch(vs, {"status": {"boundVolumeSnapshotContentName": content["metadata"]["name"],
                                              "readyToUse": True, "restoreSize": size,
                                              "creationTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}},
                              subresource="status")

    async def run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except KubeError as e:
                log.warning("fake longhorn: %s", e)
            except Exception:  # a fake that dies silently would turn every later test into a timeout
                log.exception("fake longhorn: sync failed")
            await asyncio.sleep(self.interval)


async def install_storage(kube: Kube, timeout: float = 30.0) -> list[str]:
    """Apply manifests/storage (CRDs first, then classes) the way an operator would with kubectl, and wait
    for the CRDs to be served."""
    root = manifests_dir() / "storage"
    applied = []
    for path in [*sorted((root / "crds").glob("*.yaml")), root / "storageclasses.yaml"]:
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            await kube.apply(doc)
            applied.append(f"{doc['kind']}/{doc['metadata']['name']}")
            if doc["kind"] == "CustomResourceDefinition":
                deadline = asyncio.get_running_loop().time() + timeout
                while asyncio.get_running_loop().time() < deadline:
                    crd = await kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None,
                                         doc["metadata"]["name"])
                    conds = {c["type"]: c["status"] for c in ((crd or {}).get("status") or {}).get("conditions") or []}
                    if conds.get("Established") == "True":
                        break
                    await asyncio.sleep(0.2)
    return applied


@asynccontextmanager
async def fake_longhorn(kube: Kube, root: Path | None = None) -> AsyncIterator[FakeLonghorn]:
    """manifests/storage installed and FakeLonghorn serving its claims until exit: what a platform on the
    testbed runs beside it (`mcp_server.devenv.platform.running_platform(..., beside=[fake_longhorn])`).
    `root`: its disks and backup target, to keep backups across two clusters (the restore drill)."""
    await install_storage(kube)
    fake = FakeLonghorn(kube, root or Path(tempfile.mkdtemp(prefix="fake-longhorn-")))
    task = asyncio.create_task(fake.run())
    try:
        yield fake
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
