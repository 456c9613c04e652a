"""The reconciler on the testbed (the worker under the install's ServiceAccount, so a missing RBAC verb is a
403 here): an app whose objects are broken by hand answers again by itself, within BOUND seconds, with no
tool call; an audit row (principal `platform`) names what was re-applied and why; and while it was broken,
`get_app` said `degraded`.

- its Deployment deleted;
- its whole namespace deleted (guardrails, env Secret with the pinned secrets, Service and Ingress too;
  the app answers at its URL through the edge again);
- its Service pointed elsewhere by hand (another field manager, as `kubectl edit` would);
- a restart on an empty cluster with the same database: the worker stopped, the tenant's namespace torn
  down, the reconcile loops gone from Temporal, the app `degraded` ("not observed since") meanwhile; a worker
  starting again serves the app without any call.

Figures: each case prints the seconds from breaking to answering again (goal: under 60 s; the period is
PERIOD seconds here, 30 by default).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from kubernetes_asyncio import client as k8s

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings, remove_tenant_objects, service_urls
from tests.conftest import Edge
from tests.support.platform import ok, running_platform
from workflows.domain.labels import LABEL_RELEASE
from workflows.domain.workflow_ids import reconcile_sweep_workflow_id, reconcile_workflow_id

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(900)]
REGISTRY = "127.0.0.1:5000"
PERIOD = 3.0
BOUND = 60.0
"""Seconds from breaking an app to its answering again, in every case."""


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node, reconcile={
        "enabled": True, "period_seconds": PERIOD, "sweep_seconds": 5, "stale_after_periods": 5})
    async with running_platform(settings) as p:
        yield p


async def create_web(p: Platform, c: Any, project: str) -> tuple[str, dict[str, Any]]:
    """A serving app `web` (1 replica, a secret, a 2 s shutdown grace so a namespace goes quickly); (namespace,
    create_app's result)."""
    await push_image(REGISTRY, f"{p.tenant}/web", "v1", busybox_web_files("hello v1"), cmd=BUSYBOX_HTTPD)
    r = ok(await c.call_tool("create_app", {
        "project": project, "name": "web", "source": {"image": f"{REGISTRY}/{p.tenant}/web:v1"}, "port": 8080,
        "env": {"GREETING": "hi"}, "secrets": {"API_TOKEN": "s3cr3t-value-123"}, "shutdown_grace_seconds": 2}))
    assert r["phase"] == "succeeded", r
    app = await p.deps.store.get_app(p.tenant, project, "web")
    assert app is not None
    assert await p.service_get(app.namespace, "web", expect="hello v1") == "hello v1"
    await until_running(c, project)
    return app.namespace, r


async def until_running(c: Any, project: str, timeout: float = BOUND) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        app = ok(await c.call_tool("apps", {"project": project, "app": "web"}))
        if app["status"] == "running" and app["observed"] is not None:
            return app
        assert time.monotonic() < deadline, f"get_app never said running again: {app['status_reason']}"
        await asyncio.sleep(0.3)


async def answers(p: Platform, ns: str, expect: str = "hello v1") -> bool:
    """One GET of each ready endpoint of the Service (no retries: the caller polls)."""
    async with httpx.AsyncClient(timeout=2, trust_env=False) as h:
        for url in await service_urls(p.kube, ns, "web"):
            try:
                r = await h.get(url + "/")
            except httpx.HTTPError:
                continue
            if r.status_code == 200 and r.text.strip() == expect:
                return True
    return False


Check = Callable[[], Awaitable[bool]]


async def broken_then_served(p: Platform, c: Any, project: str, ns: str, broke_at: float,
                             healed: Check, repairable_at: Callable[[], float | None] | None = None,
                             ) -> tuple[float, list[str]]:
    """Poll `get_app` and the Service from the moment the app was broken until the Service answers again and
    `healed()` says the broken object is back (not just still there: a pod of a deleted Deployment or namespace
    answers for a moment while it terminates); (seconds it took, the statuses `get_app` reported meanwhile).

    BOUND counts from `repairable_at()` when given: the moment the cluster let the platform repair (a deleted
    namespace can only be created again once Kubernetes has finished deleting it, which takes what its pods'
    termination takes: 15 s on a quiet testbed, over a minute under CI's load)."""
    statuses: list[str] = []
    while True:
        app = ok(await c.call_tool("apps", {"project": project, "app": "web"}))
        statuses.append(f"{app['status']}: {app['status_reason']}")
        now = time.monotonic()
        took = now - broke_at
        if any(s.startswith("degraded") for s in statuses) and await healed() and await answers(p, ns):
            return took, statuses
        since = broke_at if repairable_at is None else repairable_at()
        if since is None:
            assert took < 4 * BOUND, f"Kubernetes still deleting after {took:.0f} s; get_app said {statuses[-3:]}"
        else:
            assert now - since < BOUND, f"not served again within {BOUND} s; get_app said {statuses[-3:]}"
        await asyncio.sleep(0.2)


async def uid(p: Platform, api_version: str, kind: str, ns: str | None, name: str) -> str:
    obj = await p.kube.get(api_version, kind, ns, name)
    assert obj is not None
    return str(obj["metadata"]["uid"])


async def re_created(p: Platform, api_version: str, kind: str, ns: str | None, name: str, old_uid: str) -> bool:
    obj = await p.kube.get(api_version, kind, ns, name)
    return obj is not None and obj["metadata"]["uid"] != old_uid and not obj["metadata"].get("deletionTimestamp")


async def selects(p: Platform, ns: str, release: str) -> bool:
    svc = await p.kube.get("v1", "Service", ns, "web")
    return svc is not None and svc["spec"]["selector"].get(LABEL_RELEASE) == release


async def repairs(p: Platform, since: int) -> list[Any]:
    """The reconciler's audit rows newer than row id `since`, oldest first."""
    rows = await p.deps.store.list_audit(p.tenant, "reconcile", None, None, 100)
    return sorted((r for r in rows if (r.id or 0) > since), key=lambda r: r.id or 0)


async def last_audit_id(p: Platform) -> int:
    rows = await p.deps.store.list_audit(p.tenant, None, None, None, 1)
    return rows[0].id or 0 if rows else 0


async def test_a_deleted_deployment_is_re_created(platform: Platform) -> None:
    p = platform
    async with p.client() as c:
        ns, _ = await create_web(p, c, "dd")
        since = await last_audit_id(p)
        old = await uid(p, "apps/v1", "Deployment", ns, "web-r1")
        broke_at = time.monotonic()
        assert await p.kube.delete("apps/v1", "Deployment", ns, "web-r1")
        took, statuses = await broken_then_served(p, c, "dd", ns, broke_at, lambda: re_created(
            p, "apps/v1", "Deployment", ns, "web-r1", old))
        print(f"deleted Deployment: serving again after {took:.1f} s")
        assert any(s.startswith("degraded") for s in statuses), statuses
        rows = await repairs(p, since)
        assert rows and rows[0].principal == "platform" and f"Deployment/{ns}/web-r1" in rows[0].k8s_refs
        assert f"Deployment/{ns}/web-r1 is missing" in rows[0].arguments["drift"]
        app = await until_running(c, "dd")
        assert f"Deployment/{ns}/web-r1" in app["observed"]["last_repaired"]
        assert app["observed"]["pods_ready"] and app["observed"]["service_points_at_serving"]


async def test_a_deleted_namespace_is_re_created_with_everything_in_it(platform: Platform, edge: Edge) -> None:
    p = platform
    async with p.client() as c:
        ns, created = await create_web(p, c, "dn")
        since = await last_audit_id(p)
        old = await uid(p, "v1", "Namespace", None, ns)
        broke_at = time.monotonic()
        assert await p.kube.delete("v1", "Namespace", None, ns)
        gone_at: list[float] = []

        async def healed() -> bool:
            back = await re_created(p, "v1", "Namespace", None, ns, old)
            if not gone_at and (back or await p.kube.get("v1", "Namespace", None, ns) is None):
                gone_at.append(time.monotonic())
            return back

        took, statuses = await broken_then_served(p, c, "dn", ns, broke_at, healed,
                                                  lambda: gone_at[0] if gone_at else None)
        print(f"deleted namespace: serving again after {took:.1f} s, "
              f"{took - (gone_at[0] - broke_at):.1f} s of them after Kubernetes had deleted it")
        assert any(s.startswith("degraded") for s in statuses), statuses
        refs = {r for row in await repairs(p, since) for r in row.k8s_refs}
        assert {f"Namespace/{ns}", f"ResourceQuota/{ns}/guardrails", f"NetworkPolicy/{ns}/egress-public-only",
                f"Secret/{ns}/web-r1-env", f"Deployment/{ns}/web-r1", f"Service/{ns}/web",
                f"Ingress/{ns}/web"} <= refs, refs
        secret = await p.kube.get("v1", "Secret", ns, "web-r1-env")
        assert secret is not None  # the pinned secrets version, decrypted by the worker again
        assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
            "GREETING": "hi", "API_TOKEN": "s3cr3t-value-123"}
        namespace = await p.kube.get("v1", "Namespace", None, ns)
        assert namespace is not None
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        await until_running(c, "dn")
    assert await edge_get(edge, created["url"].removeprefix("https://")) == "hello v1"


async def test_a_service_pointed_elsewhere_by_hand_is_pointed_back(platform: Platform) -> None:
    p = platform
    async with p.client() as c:
        ns, _ = await create_web(p, c, "ds")
        since = await last_audit_id(p)
        broke_at = time.monotonic()
        core = k8s.CoreV1Api(p.kube.api)  # another field manager, as `kubectl edit` would be
        await core.patch_namespaced_service("web", ns, {"spec": {"selector": {LABEL_RELEASE: "web-r9"}}},
                                            field_manager="kubectl-edit")  # a strategic merge patch
        took, statuses = await broken_then_served(p, c, "ds", ns, broke_at, lambda: selects(p, ns, "web-r1"))
        print(f"Service selector changed: serving again after {took:.1f} s")
        assert any(s.startswith("degraded") for s in statuses), statuses
        rows = await repairs(p, since)
        assert rows and rows[0].k8s_refs == [f"Service/{ns}/web"], [r.k8s_refs for r in rows]
        assert any("spec.selector" in d and "web-r9" in d for d in rows[0].arguments["drift"])
        svc = await p.kube.get("v1", "Service", ns, "web")
        assert svc is not None and svc["spec"]["selector"][LABEL_RELEASE] == "web-r1"
        await until_running(c, "ds")


async def test_a_restart_on_an_empty_cluster_serves_every_app_without_a_call(platform: Platform, edge: Edge) -> None:
    """`deploy-mcp dev` stopped and started on a fresh testbed with the same database: the worker is stopped,
    every object of the tenant is gone, Temporal has no reconcile loop left; starting the worker is all."""
    p = platform
    async with p.client() as c:
        ns, created = await create_web(p, c, "rs")
        app = await p.deps.store.get_app(p.tenant, "rs", "web")
        assert app is not None
    await p.stop_worker()
    temporal = p.deps.workflows.client  # type: ignore[union-attr]
    for wf in (reconcile_workflow_id(app.id), reconcile_sweep_workflow_id(p.settings.temporal.task_queue)):
        await temporal.get_workflow_handle(wf).terminate("a Temporal that lost its state")
    await remove_tenant_objects(p.kube, p.tenant)
    deadline = time.monotonic() + 120
    while await p.kube.get("v1", "Namespace", None, ns) is not None:
        assert time.monotonic() < deadline, "the namespace was never deleted"
        await asyncio.sleep(0.5)

    async with p.client() as c:
        # nothing observes the app now: once the bound passed, get_app says so instead of `running`
        stale = PERIOD * 5
        await asyncio.sleep(stale + 1)
        shown = ok(await c.call_tool("apps", {"project": "rs", "app": "web"}))
        assert shown["status"] == "degraded" and "not observed since" in shown["status_reason"], shown
        started = time.monotonic()
        await p.start_worker()
        while not await answers(p, ns):
            assert time.monotonic() - started < BOUND, "the app never served again after the restart"
            await asyncio.sleep(0.3)
        print(f"restart on an empty cluster: serving again {time.monotonic() - started:.1f} s after the worker started")
        await until_running(c, "rs")
    assert await edge_get(edge, created["url"].removeprefix("https://")) == "hello v1"
    rows = await repairs(p, 0)
    assert any(f"Namespace/{ns}" in r.k8s_refs for r in rows)


async def edge_get(edge: Edge, host: str) -> str:
    """GET / through the edge (Traefik) with the app's Host header, as a browser resolving the name would."""
    last = ""
    async with httpx.AsyncClient(timeout=5) as h:
        for _ in range(150):  # the edge picks up a re-created Ingress within a second or two
            r = await h.get(f"http://127.0.0.1:{edge.http_port}/", headers={"Host": host})
            if r.status_code == 200:
                return r.text.strip()
            last = f"{r.status_code} {r.text[:200]}"
            await asyncio.sleep(0.2)
    raise AssertionError(f"the edge never served {host}: {last}")
