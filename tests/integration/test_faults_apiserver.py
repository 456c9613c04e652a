"""The Kubernetes API server stops in the middle of a release (while the new pods are being waited for) and
comes back a few seconds later: the previous release keeps serving throughout (its pods do not need the API
server), the tools that read Postgres keep answering, the worker's activities retry on `K8sUnreachable`, and
the release then completes; nothing is left half-switched (the Service names exactly one release).

The outage is kept under the controller manager's node grace period (16 s) so the nodes are not marked
NotReady when the API server returns; a longer one is a node failure, which test_slice covers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings, service_urls
from tests.support.platform import ok, running_platform
from workflows.domain.labels import LABEL_RELEASE

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]
REGISTRY = "127.0.0.1:5000"
OUTAGE_SECONDS = 4.0


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node)
    async with running_platform(settings) as p:
        yield p


async def phase_of(p: Platform, deployment_id: str) -> str:
    d = await p.deps.store.get_deployment(p.tenant, uuid.UUID(deployment_id))
    assert d is not None
    return d.phase


async def test_apiserver_stopped_mid_release_then_back_the_release_completes(
        platform: Platform, needs_node: Testbed) -> None:
    p = platform
    for tag in ("v1", "v2"):
        await push_image(REGISTRY, f"{p.tenant}/web", tag, busybox_web_files(f"version {tag}"), cmd=BUSYBOX_HTTPD)
    async with p.client() as c:
        ok(await c.call_tool("create_app", {"project": "outage", "name": "web", "port": 8080,
                                            "source": {"image": f"{REGISTRY}/{p.tenant}/web:v1"}}))
        app = await p.deps.store.get_app(p.tenant, "outage", "web")
        assert app is not None
        assert await p.service_get(app.namespace, "web", "/index.html", expect="version v1")
        old_pods = await service_urls(p.kube, app.namespace, "web")
        assert old_pods
        second = ok(await c.call_tool("deploy", {
            "project": "outage", "app": "web", "source": {"image": f"{REGISTRY}/{p.tenant}/web:v2"},
            "wait_seconds": 0,
            # slow to become Ready, so the outage lands inside the wait
            "health_check": {"type": "http", "path": "/index.html", "initial_delay_seconds": 6, "period_seconds": 1},
        }))
        deployment_id = second["deployment_id"]
        deadline = time.monotonic() + 90
        while await phase_of(p, deployment_id) != "waiting":
            assert time.monotonic() < deadline, "the release never reached the wait for Ready"
            await asyncio.sleep(0.2)

        await asyncio.to_thread(needs_node.stop_apiserver)
        stopped = time.monotonic()
        served_during, read_during = 0, None
        async with httpx.AsyncClient(timeout=3, trust_env=False) as h:
            while time.monotonic() - stopped < OUTAGE_SECONDS:
                for url in old_pods:
                    r = await h.get(url + "/index.html")
                    assert r.status_code == 200 and r.text.strip() == "version v1", (url, r.status_code, r.text)
                    served_during += 1
                read_during = await c.call_tool("apps", {"project": "outage", "app": "web"})
                await asyncio.sleep(0.5)
        await asyncio.to_thread(needs_node.start_apiserver)
        outage = time.monotonic() - stopped

        assert served_during > 0
        assert read_during is not None
        assert not read_during.is_error, read_during.content
        deadline = time.monotonic() + 240
        while (phase := await phase_of(p, deployment_id)) not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, f"release stuck in {phase} after the API server came back"
            await asyncio.sleep(0.5)
        final = await p.deps.store.get_deployment(p.tenant, uuid.UUID(deployment_id))
        assert phase == "succeeded", final and final.error
        svc = await p.kube.get("v1", "Service", app.namespace, "web")
        assert svc is not None and svc["spec"]["selector"][LABEL_RELEASE] == "web-r2"
        assert await p.service_get(app.namespace, "web", "/index.html", expect="version v2")
        after = ok(await c.call_tool("apps", {"project": "outage", "app": "web"}))
        assert after["serving_deployment_id"] == deployment_id and after["status"] == "running"
    print(f"\napiserver outage {outage:.1f} s; old release answered {served_during} requests during it")
    await nodes_settled(p)


async def nodes_settled(p: Platform, timeout: float = 90.0) -> None:
    """The next test gets a cluster as it was: every node Ready and without the not-ready/unreachable taints
    the node controller may set once it sees heartbeats that stopped while the API server was away."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = await p.kube.list_objects("v1", "Node", None)
        unsettled = [n["metadata"]["name"] for n in nodes if any(
            c["type"] == "Ready" and c["status"] != "True" for c in n["status"].get("conditions", [])) or any(
            t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints") or [])]
        if not unsettled:
            return
        assert time.monotonic() < deadline, f"nodes {unsettled} not Ready again {timeout:.0f} s after the outage"
        await asyncio.sleep(1)
