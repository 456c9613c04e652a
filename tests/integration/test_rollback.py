"""`rollback` through an MCP client on the testbed: inside the window it is a Service switch back to the
previous release's pods, which run the previous digest, config and secrets version; after the window the
target is scaled up again first; during a rollout the rollout is cancelled and the serving release stays.
Refusals: a target that never became healthy, a target already serving."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator

import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from tests.support.platform import ok, running_platform
from workflows.domain.labels import LABEL_RELEASE

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]
REGISTRY = "127.0.0.1:5000"


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node, releases={"rollback_window_seconds": 4})
    async with running_platform(settings) as p:
        yield p


async def image(p: Platform, tag: str) -> str:
    await push_image(REGISTRY, f"{p.tenant}/web", tag, busybox_web_files(f"version {tag}"), cmd=BUSYBOX_HTTPD)
    return f"{REGISTRY}/{p.tenant}/web:{tag}"


async def serving(p: Platform, ns: str) -> str:
    svc = await p.kube.get("v1", "Service", ns, "web")
    assert svc is not None
    return str(svc["spec"]["selector"][LABEL_RELEASE])


async def replicas(p: Platform, ns: str, release: str) -> int:
    d = await p.kube.get("apps/v1", "Deployment", ns, release)
    return int(d["spec"]["replicas"]) if d else -1


async def test_rollback_restores_digest_config_and_secrets_in_and_after_the_window(platform: Platform) -> None:
    p = platform
    v1, v2 = await image(p, "v1"), await image(p, "v2")
    async with p.client() as c:
        first = ok(await c.call_tool("create_app", {"project": "rb", "name": "web", "source": {"image": v1},
                                                    "port": 8080, "env": {"COLOR": "blue"},
                                                    "secrets": {"DB_PASSWORD": "old-pass"}}))
        ok(await c.call_tool("set_secrets", {"project": "rb", "app": "web", "values": {"DB_PASSWORD": "new-pass"}}))
        second = ok(await c.call_tool("deploy", {"project": "rb", "app": "web", "source": {"image": v2},
                                                 "env": {"COLOR": "green"}}))
        ns = (await p.deps.store.get_app(p.tenant, "rb", "web")).namespace  # type: ignore[union-attr]
        assert await serving(p, ns) == "web-r2" and await replicas(p, ns, "web-r1") == 1

        started = time.monotonic()
        back = ok(await c.call_tool("rollback", {"project": "rb", "app": "web"}))
        in_window = time.monotonic() - started
        assert back["phase"] == "succeeded" and back["release"] == "web-r1" and back["serving"], back
        assert await serving(p, ns) == "web-r1"
        detail = ok(await c.call_tool("deployments", {"deployment_id": back["deployment_id"]}))
        assert detail["kind"] == "rollback" and detail["rollback_of"] == first["deployment_id"]
        assert detail["image_digest"] == first["image_digest"] != second["image_digest"]
        assert detail["secrets_version"] == 1
        dep = await p.kube.get("apps/v1", "Deployment", ns, "web-r1")
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(first["image_digest"])
        env = await p.kube.get("v1", "Secret", ns, "web-r1-env")
        assert env is not None
        values = {k: base64.b64decode(v).decode() for k, v in env["data"].items()}
        assert values == {"COLOR": "blue", "DB_PASSWORD": "old-pass"}

        # after the window: the release we left (r2) is scaled down; rolling back to it scales it up first
        deadline = time.monotonic() + 60
        while await replicas(p, ns, "web-r2") != 0:
            assert time.monotonic() < deadline, "r2 was never scaled down after the window"
            await asyncio.sleep(0.5)
        phases: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            phases.append((message or "").rsplit(" ", 1)[-1])

        forward = ok(await c.call_tool("rollback", {"project": "rb", "app": "web", "to": second["deployment_id"]},
                                       progress_callback=on_progress))
        history = ok(await c.call_tool("deployments", {"project": "rb", "app": "web"}))
    assert forward["phase"] == "succeeded" and forward["release"] == "web-r2", forward
    assert "waiting" in phases  # scaled up and waited for Ready before the switch
    assert await serving(p, ns) == "web-r2" and await replicas(p, ns, "web-r2") == 1
    assert [(d["kind"], d["release"], d["serving"]) for d in history["deployments"]] == [
        ("rollback", "web-r2", True), ("rollback", "web-r1", False), ("deploy", "web-r2", False),
        ("deploy", "web-r1", False)]
    assert in_window < 5, f"in-window rollback took {in_window:.2f} s"


async def test_rollback_during_a_rollout_cancels_it_and_keeps_serving(platform: Platform) -> None:
    p = platform
    v1, v2 = await image(p, "v1"), await image(p, "v2")
    async with p.client() as c:
        ok(await c.call_tool("create_app", {"project": "rr", "name": "web", "source": {"image": v1}, "port": 8080}))
        slow = ok(await c.call_tool("deploy", {
            "project": "rr", "app": "web", "source": {"image": v2}, "wait_seconds": 0,
            "health_check": {"type": "http", "path": "/index.html", "initial_delay_seconds": 30}}))
        ns = (await p.deps.store.get_app(p.tenant, "rr", "web")).namespace  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while (await p.deps.store.get_deployment(p.tenant, __import__("uuid").UUID(slow["deployment_id"]))
               ).phase != "waiting":  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        back = ok(await c.call_tool("rollback", {"project": "rr", "app": "web"}))
        cancelled = ok(await c.call_tool("deployments", {"deployment_id": slow["deployment_id"]}))
    assert back["phase"] == "succeeded" and back["release"] == "web-r1"
    assert cancelled["phase"] == "cancelled"
    assert await serving(p, ns) == "web-r1"
    assert await replicas(p, ns, "web-r2") == 0


async def test_rollback_refusals(platform: Platform) -> None:
    p = platform
    v1 = await image(p, "v1")
    await push_image(REGISTRY, f"{p.tenant}/crash", "v1", busybox_web_files("x"), cmd=["/busybox", "false"])
    async with p.client() as c:
        first = ok(await c.call_tool("create_app", {"project": "rf", "name": "web", "source": {"image": v1},
                                                    "port": 8080}))
        only = await c.call_tool("rollback", {"project": "rf", "app": "web"})
        bad = ok(await c.call_tool("deploy", {"project": "rf", "app": "web",
                                              "source": {"image": f"{REGISTRY}/{p.tenant}/crash:v1"}}))
        never = await c.call_tool("rollback", {"project": "rf", "app": "web", "to": bad["deployment_id"]})
        same = await c.call_tool("rollback", {"project": "rf", "app": "web", "to": first["deployment_id"]})
    assert only.is_error and "no earlier healthy release" in only.content[0].text  # type: ignore[union-attr]
    assert bad["phase"] == "failed"
    assert never.is_error and "never became healthy" in never.content[0].text  # type: ignore[union-attr]
    assert same.is_error and "already serving" in same.content[0].text  # type: ignore[union-attr]
