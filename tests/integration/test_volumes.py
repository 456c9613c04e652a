"""Volumes through an MCP client on the testbed. No Longhorn controllers run here: `FakeLonghorn` (named so)
plays Longhorn's CSI driver and the external-snapshotter against the real API server, with host directories
as the disks; the CRDs and classes come from manifests/storage. Checks: a file written through the app
survives a new release (recreate), a rollback and a deleted pod; snapshot -> restore gives a new claim whose
data source is the snapshot and holds the snapshot's data; backup policy as a Longhorn RecurringJob; resize;
and the refusals that keep data safe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from mcp.types import CallToolResult

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from tests.support.platform import ok, running_platform
from workflows.domain.diagnosis import has_stopped
from workflows.domain.labels import LABEL_RELEASE

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]
REGISTRY = "127.0.0.1:5000"
CGI_HEADER = "#!/busybox sh\necho 'Content-Type: text/plain'\necho\n"
BUMP = CGI_HEADER + "n=$(/busybox cat /data/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/count; echo $n\n"
READ = CGI_HEADER + "/busybox cat /data/count 2>/dev/null || echo none\n"


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node)
    async with running_platform(settings) as p:
        yield p


def err(r: CallToolResult) -> str:
    assert r.is_error, r.structured_content
    return str(r.content[0].text)  # type: ignore[union-attr]


async def counter_image(p: Platform) -> str:
    files = busybox_web_files("counter") | {"www/cgi-bin/bump": (BUMP.encode(), 0o755),
                                            "www/cgi-bin/read": (READ.encode(), 0o755)}
    await push_image(REGISTRY, f"{p.tenant}/counter", "v1", files,
                     cmd=["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"])
    return f"{REGISTRY}/{p.tenant}/counter:v1"


async def get(p: Platform, ns: str, app: str, path: str) -> str:
    return await p.service_get(ns, app, path)


async def test_data_survives_deploy_rollback_and_pod_loss(platform: Platform) -> None:
    p = platform
    image = await counter_image(p)
    async with p.client() as c:
        created = ok(await c.call_tool("create_app", {
            "project": "vol", "name": "web", "source": {"image": image}, "port": 8080, "shutdown_grace_seconds": 1,
            "volumes": [{"name": "data", "size_gib": 1, "volume_class": "fast", "mount_path": "/data"}]}))
        assert created["phase"] == "succeeded", created
        app = await p.deps.store.get_app(p.tenant, "vol", "web")
        assert app is not None and app.spec["strategy"] == "recreate"
        ns = app.namespace
        assert await get(p, ns, "web", "/cgi-bin/bump") == "1"

        second = ok(await c.call_tool("deploy", {"project": "vol", "app": "web", "env": {"MODE": "two"}}))
        assert second["phase"] == "succeeded" and second["release"] == "web-r2"
        r1 = await p.kube.get("apps/v1", "Deployment", ns, "web-r1")
        assert r1 is not None and r1["spec"]["replicas"] == 0  # recreate: never two writers
        assert await get(p, ns, "web", "/cgi-bin/read") == "1"

        back = ok(await c.call_tool("rollback", {"project": "vol", "app": "web"}))
        assert back["phase"] == "succeeded" and back["release"] == "web-r1"
        assert await get(p, ns, "web", "/cgi-bin/read") == "1"
        r2 = await p.kube.get("apps/v1", "Deployment", ns, "web-r2")
        assert r2 is not None and r2["spec"]["replicas"] == 0

        pods = [x for x in await p.kube.list_objects("v1", "Pod", ns, label_selector=f"{LABEL_RELEASE}=web-r1")
                if not x["metadata"].get("deletionTimestamp")]
        assert len(pods) == 1
        others = await p.kube.list_objects("v1", "Pod", ns, label_selector=f"{LABEL_RELEASE}=web-r2")
        # Recreate waited for r2's pod to stop before it started r1's: one writer (seconds, as the kubelet says)
        assert all(has_stopped(x) for x in others)
        r1_started = pods[0]["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
        assert all(c["state"]["terminated"]["finishedAt"] <= r1_started
                   for x in others for c in x["status"]["containerStatuses"])
        await p.kube.delete("v1", "Pod", ns, pods[0]["metadata"]["name"], grace_seconds=0)
        deadline = time.monotonic() + 90
        while True:
            fresh = [x for x in await p.kube.list_objects("v1", "Pod", ns, label_selector=f"{LABEL_RELEASE}=web-r1")
                     if x["metadata"]["name"] != pods[0]["metadata"]["name"]
                     and any(cond["type"] == "Ready" and cond["status"] == "True"
                             for cond in (x.get("status") or {}).get("conditions", []))]
            if fresh:
                break
            assert time.monotonic() < deadline, "the replacement pod never became Ready"
            await asyncio.sleep(0.5)
        assert await get(p, ns, "web", "/cgi-bin/read") == "1"
        listed = ok(await c.call_tool("volumes", {"project": "vol"}))
    vol = listed["volumes"][0]
    assert vol["status"] == "bound"
    assert vol["attachments"] == [{"app": "web", "mount_path": "/data", "read_only": False}]


async def test_snapshot_restore_backup_policy_resize_and_refusals(platform: Platform) -> None:
    p = platform
    image = await counter_image(p)
    async with p.client() as c:
        ok(await c.call_tool("volume", {"action": "create", "project": "snap", "volume": "data", "size_gib": 1}))
        ok(await c.call_tool("create_app", {"project": "snap", "name": "web", "source": {"image": image},
                                            "port": 8080, "shutdown_grace_seconds": 1}))
        attached = ok(await c.call_tool("volume", {
                "action": "attach", "project": "snap", "app": "web", "volume": "data",
                                                          "mount_path": "/data"}))
        assert attached["phase"] == "succeeded", attached
        ns = (await p.deps.store.get_app(p.tenant, "snap", "web")).namespace  # type: ignore[union-attr]
        assert await get(p, ns, "web", "/cgi-bin/bump") == "1"
        snap = ok(await c.call_tool("volume", {"action": "snapshot", "project": "snap", "volume": "data"}))
        assert snap["status"] == "ready", snap
        assert await get(p, ns, "web", "/cgi-bin/bump") == "2"  # after the snapshot: not in it
        restored = ok(await c.call_tool("volume", {"action": "restore", "project": "snap", "from_snapshot": snap["id"],
                                                    "volume": "old"}))
        assert restored["volume"]["status"] == "bound", restored
        claim = await p.kube.get("v1", "PersistentVolumeClaim", ns, "vol-old")
        assert claim is not None and claim["spec"]["dataSource"] == {
            "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snap["name"]}
        ok(await c.call_tool("create_app", {"project": "snap", "name": "reader", "source": {"image": image},
                                            "port": 8080, "shutdown_grace_seconds": 1}))
        ok(await c.call_tool("volume", {"action": "attach", "project": "snap", "app": "reader", "volume": "old",
                                               "mount_path": "/data", "read_only": True}))
        assert await get(p, ns, "reader", "/cgi-bin/read") == "1"

        backup = ok(await c.call_tool("volume", {"action": "backup", "project": "snap", "volume": "data"}))
        content = await p.kube.get("snapshot.storage.k8s.io/v1", "VolumeSnapshot", ns, backup["name"])
        assert backup["status"] == "ready" and content is not None
        assert content["spec"]["volumeSnapshotClassName"] == "longhorn-backup"
        policy = ok(await c.call_tool("volume", {"action": "policy", "project": "snap", "volume": "data",
                                                            "schedule": "0 3 * * *", "retain": 5}))
        assert policy["volume"]["backup_schedule"] == "0 3 * * *" and policy["volume"]["backup_retain"] == 5
        jobs = await p.kube.list_objects("longhorn.io/v1beta2", "RecurringJob", "longhorn-system",
                                         label_selector=f"deploy-mcp/tenant={p.tenant}")
        assert [(j["spec"]["task"], j["spec"]["cron"], j["spec"]["retain"]) for j in jobs] == [
            ("backup", "0 3 * * *", 5)]
        pvc = await p.kube.get("v1", "PersistentVolumeClaim", ns, "vol-data")
        assert pvc is not None and pvc["metadata"]["labels"]["recurring-job.longhorn.io/source"] == "enabled"

        grown = ok(await c.call_tool("volume", {
                "action": "resize", "project": "snap", "volume": "data", "size_gib": 3}))
        assert grown["done"] and grown["volume"]["size_gib"] == 3
        listed = ok(await c.call_tool("volumes", {"project": "snap"}))

        shrink = err(await c.call_tool("volume", {
                "action": "resize", "project": "snap", "volume": "data", "size_gib": 1}))
        etc = err(await c.call_tool("volume", {"action": "attach", "project": "snap", "app": "web", "volume": "old",
                                                      "mount_path": "/etc/app"}))
        many = err(await c.call_tool("deploy", {"project": "snap", "app": "web", "replicas": 2}))
        new_many = err(await c.call_tool("create_app", {
            "project": "snap", "name": "multi", "source": {"image": image}, "port": 8080, "replicas": 3,
            "volumes": [{"name": "m", "size_gib": 1, "mount_path": "/data"}]}))
        busy = err(await c.call_tool("volume", {
                "action": "delete", "project": "snap", "volume": "data", "confirm": "snap/data"}))
        ok(await c.call_tool("volume", {"action": "detach", "project": "snap", "app": "reader", "volume": "old"}))
        gone = ok(await c.call_tool("volume", {
                "action": "delete", "project": "snap", "volume": "old", "confirm": "snap/old"}))
    data = next(v for v in listed["volumes"] if v["name"] == "data")
    assert data["last_snapshot_at"] and data["last_backup_at"]
    assert "only grow" in shrink and "under /etc" in etc
    assert "access: shared" in many and "access: shared" in new_many
    assert "attached to web" in busy
    left = await p.kube.get("v1", "PersistentVolumeClaim", ns, "vol-old")
    # Kubernetes' pvc-protection keeps the claim while the reader's previous release (rollback window) mounts it
    assert gone["done"] and (left is None or left["metadata"].get("deletionTimestamp"))
