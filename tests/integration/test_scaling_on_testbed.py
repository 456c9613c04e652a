"""Scaling on the testbed (real kube-apiserver 1.20 with its HPA controller, kubelet node; the worker under the
install's ClusterRole, so a missing RBAC verb is a 403 here). For the lead to run: `-m "cluster or node"`.

- `scale` changes the serving release in place: no new release, its running pods kept (same names), the other
  release untouched; the next deploy and a rollback (warm, and cold from a release scaled to zero) start at
  the count;
- the HPA (autoscaling/v2beta2, the only version 1.20 serves) is accepted by the API server, targets the
  serving release, is retargeted on a blue/green switch and on a rollback with no drop in ready replicas of
  the release serving; its "no metrics API" condition (no metrics-server on the testbed) reaches `get_app`;
- `app_metrics` reads the testbed's real kubelets (Summary API through the node proxy) for a running app.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from tests.support.platform import ok, running_platform
from workflows.domain.labels import LABEL_RELEASE
from workflows.domain.scaling import NO_METRICS

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(900)]
REGISTRY = "127.0.0.1:5000"


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    # the reconciler on (a short period): get_app's autoscaler field is what it observed
    settings = platform_settings(database_url, temporal_address, needs_node, reconcile={
        "enabled": True, "period_seconds": 3.0, "sweep_seconds": 5})
    async with running_platform(settings) as p:
        yield p


async def image(p: Platform, tag: str) -> str:
    await push_image(REGISTRY, f"{p.tenant}/web", tag, busybox_web_files(f"hello {tag}"), cmd=BUSYBOX_HTTPD)
    return f"{REGISTRY}/{p.tenant}/web:{tag}"


async def release_of(p: Platform, ns: str) -> str:
    svc = await p.kube.get("v1", "Service", ns, "web")
    assert svc is not None
    return str(svc["spec"]["selector"][LABEL_RELEASE])


async def replicas(p: Platform, ns: str, release: str) -> tuple[int, int]:
    """(spec.replicas, status.readyReplicas) of a release's Deployment."""
    dep = await p.kube.get("apps/v1", "Deployment", ns, release)
    assert dep is not None, release
    return int(dep["spec"].get("replicas") or 0), int((dep.get("status") or {}).get("readyReplicas") or 0)


async def pods_of(p: Platform, ns: str, release: str) -> set[str]:
    return {x["metadata"]["name"] for x in await p.kube.list_objects(
        "v1", "Pod", ns, label_selector=f"{LABEL_RELEASE}={release}") if not x["metadata"].get("deletionTimestamp")}


async def until_ready(p: Platform, ns: str, release: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (got := await replicas(p, ns, release))[0] != n or got[1] < n:
        assert time.monotonic() < deadline, f"{release}: {got}, want {n} Ready"
        await asyncio.sleep(0.5)


async def test_scale_in_place_then_the_next_release_and_rollbacks_keep_the_count(platform: Platform) -> None:
    p = platform
    async with p.client() as c:
        ok(await c.call_tool("create_app", {"project": "sc", "name": "web", "source": {"image": await image(p, "v1")},
                                            "port": 8080}))
        ok(await c.call_tool("deploy", {"project": "sc", "app": "web", "source": {"image": await image(p, "v2")}}))
        app = await p.deps.store.get_app(p.tenant, "sc", "web")
        assert app is not None
        ns = app.namespace
        before = await pods_of(p, ns, "web-r2")
        scaled = ok(await c.call_tool("scale", {"project": "sc", "app": "web", "replicas": 3}))
        assert scaled == {"release": "web-r2", "replicas": 3}, scaled
        await until_ready(p, ns, "web-r2", 3)
        assert before <= await pods_of(p, ns, "web-r2"), "the running pods are kept"
        assert (await replicas(p, ns, "web-r1"))[0] == 1, "the warm release is untouched"
        history = ok(await c.call_tool("deployments", {"project": "sc", "app": "web"}))
        assert len(history["deployments"]) == 2, "no new release"

        third = ok(await c.call_tool("deploy", {"project": "sc", "app": "web",
                                                "source": {"image": await image(p, "v3")}}))
        assert third["phase"] == "succeeded" and await release_of(p, ns) == "web-r3"
        assert (await replicas(p, ns, "web-r3")) == (3, 3), "the next release starts at the count"

        warm = ok(await c.call_tool("rollback", {"project": "sc", "app": "web"}))  # to r2, still warm
        assert warm["phase"] == "succeeded" and await release_of(p, ns) == "web-r2"
        assert (await replicas(p, ns, "web-r2"))[1] >= 3
        r1 = next(d for d in history["deployments"] if d["release"] == "web-r1")
        cold = ok(await c.call_tool("rollback", {"project": "sc", "app": "web", "to": r1["id"]}))
        assert cold["phase"] == "succeeded" and await release_of(p, ns) == "web-r1"
        assert (await replicas(p, ns, "web-r1")) == (3, 3), "a rollback scales its target up to the count"


async def test_the_hpa_follows_switches_and_rollbacks_and_says_there_are_no_metrics(platform: Platform) -> None:
    p = platform
    async with p.client() as c:
        ok(await c.call_tool("create_app", {"project": "hpa", "name": "web", "port": 8080,
                                            "source": {"image": await image(p, "v1")}}))
        app = await p.deps.store.get_app(p.tenant, "hpa", "web")
        assert app is not None
        ns = app.namespace
        auto = {"min": 2, "max": 4, "cpu_percent": 50}
        ok(await c.call_tool("scale", {"project": "hpa", "app": "web", "autoscale": auto}))
        hpa = await p.kube.get("autoscaling/v2beta2", "HorizontalPodAutoscaler", ns, "web")
        assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "web-r1"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
        await until_ready(p, ns, "web-r1", 2)

        # ready replicas of whatever serves, sampled through the switch: never below the floor
        low: list[tuple[str, int]] = []
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                serving = await release_of(p, ns)
                ready = (await replicas(p, ns, serving))[1]
                if ready < 2:
                    low.append((serving, ready))
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch())
        try:
            second = ok(await c.call_tool("deploy", {"project": "hpa", "app": "web",
                                                     "source": {"image": await image(p, "v2")}}))
            assert second["phase"] == "succeeded" and await release_of(p, ns) == "web-r2"
            hpa = await p.kube.get("autoscaling/v2beta2", "HorizontalPodAutoscaler", ns, "web")
            assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "web-r2"
            assert (await replicas(p, ns, "web-r2"))[0] >= 2, "the new release started at the serving count"

            back = ok(await c.call_tool("rollback", {"project": "hpa", "app": "web"}))
            assert back["phase"] == "succeeded" and await release_of(p, ns) == "web-r1"
            hpa = await p.kube.get("autoscaling/v2beta2", "HorizontalPodAutoscaler", ns, "web")
            assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == "web-r1"
        finally:
            done.set()
            await watcher
        assert low == [], f"ready replicas dropped below the floor: {low[:5]}"

        # no metrics-server on the testbed: the HPA controller says so, and get_app says it plainly
        deadline = time.monotonic() + 120
        while True:
            view = ok(await c.call_tool("apps", {"project": "hpa", "app": "web"}))
            scaler: dict[str, Any] | None = view.get("autoscaler")
            if scaler and NO_METRICS in scaler["conditions"] and scaler["target"] == "web-r1":
                break
            assert time.monotonic() < deadline, f"get_app's autoscaler never said so: {scaler}"
            await asyncio.sleep(1)
        assert scaler["min"] == 2 and scaler["max"] == 4 and scaler["current_replicas"] is not None

        stopped = ok(await c.call_tool("scale", {"project": "hpa", "app": "web"}))  # stop autoscaling
        assert stopped["replicas"] >= 2
        assert await p.kube.get("autoscaling/v2beta2", "HorizontalPodAutoscaler", ns, "web") is None


async def test_app_metrics_from_the_real_kubelets(platform: Platform) -> None:
    p = platform
    async with p.client() as c:
        ok(await c.call_tool("create_app", {"project": "met", "name": "web", "port": 8080,
                                            "source": {"image": await image(p, "v1")}}))
        got: dict[str, Any] = {}
        deadline = time.monotonic() + 90  # the kubelet reports a new pod's stats after its first housekeeping
        while time.monotonic() < deadline:
            got = ok(await c.call_tool("app_metrics", {"project": "met", "app": "web", "window_seconds": 4}))
            if got["pods"] and got["pods"][0]["mem_mib"]:
                break
            await asyncio.sleep(3)
    assert got["source"] == "kubelet", got  # no metrics-server on the testbed
    pod = got["pods"][0]
    assert pod["pod"].startswith("web-r1-") and pod["restarts"] == 0 and pod["oom_kills"] == 0
    assert len(pod["mem_mib"]) == 3 and 0 < pod["mem_mib"][0] <= pod["mem_mib"][2], pod  # now <= limit
    assert len(pod["cpu_m"]) == 4 and pod["cpu_m"][3] == 250, pod  # the default request beside the use
