"""`diagnose_deployment` on failure modes the testbed really produces — an image the node cannot pull, a
crashing container (with its last log lines, secrets masked), a failing health probe, a full ResourceQuota
— and on a healthy release. Nothing here is a hand-made event dict."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from mcp.client import Client

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, build_image, busybox_web_files, push_built_image, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from tests.support.platform import running_platform

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]
REGISTRY = "127.0.0.1:5000"


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node, releases={"ready_timeout_seconds": 240})
    async with running_platform(settings) as p:
        yield p


async def diagnosed(c: Client, deployment_id: str, reason: str, seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await c.call_tool("deployments", {"diagnose": True, "deployment_id": deployment_id})
        assert not r.is_error, r.content[0].text  # type: ignore[union-attr]
        last = r.structured_content or {}
        if last.get("cause") and last["cause"]["reason"] == reason:
            return last
        await asyncio.sleep(1)
    raise AssertionError(f"no {reason} diagnosed in {seconds:.0f} s; last: {last}")


async def test_real_failure_modes_are_diagnosed(platform: Platform) -> None:
    p = platform
    t = p.tenant
    await push_image(REGISTRY, f"{t}/web", "ok", busybox_web_files("fine"), cmd=BUSYBOX_HTTPD)
    broken = build_image(busybox_web_files(f"broken {uuid.uuid4()}"), cmd=BUSYBOX_HTTPD)
    async with httpx.AsyncClient(timeout=30) as h:
        await push_built_image(REGISTRY, f"{t}/broken", ["v1"], broken, h)
        assert (await h.delete(f"http://{REGISTRY}/v2/{t}/broken/blobs/{broken.layer_digest}")).status_code == 202
    await push_image(REGISTRY, f"{t}/crash", "v1", busybox_web_files("x"),
                     cmd=["/busybox", "sh", "-c", "echo connecting with password=$DB_PASSWORD; exit 2"])
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "pull": ({"source": {"image": f"{REGISTRY}/{t}/broken:v1"}}, "ImagePullFailed"),
        "crash": ({"source": {"image": f"{REGISTRY}/{t}/crash:v1"}, "secrets": {"DB_PASSWORD": "pa55-w0rd-xyz"}},
                  "CrashLoop"),
        "probe": ({"source": {"image": f"{REGISTRY}/{t}/web:ok"},
                   "health_check": {"type": "http", "path": "/missing", "period_seconds": 1}}, "ProbeFailed"),
        "quota": ({"source": {"image": f"{REGISTRY}/{t}/web:ok"},
                   "resources": {"cpu_millicores": 9000, "cpu_limit_millicores": 9000}}, "QuotaExceeded"),
        "fine": ({"source": {"image": f"{REGISTRY}/{t}/web:ok"}}, ""),
    }
    async with p.client() as c:
        ids = {}
        for name, (args, _) in cases.items():
            base: dict[str, Any] = {"project": "diag", "name": name, "port": 8080, "wait_seconds": 0}
            r = await c.call_tool("create_app", base | args)
            assert not r.is_error, r.content[0].text  # type: ignore[union-attr]
            assert r.structured_content is not None
            ids[name] = r.structured_content["deployment_id"]
        # all at once: a failed release is cleaned up after a while (its pods go), so each is read while it runs
        failing = [(name, reason) for name, (_, reason) in cases.items() if reason]
        found = await asyncio.gather(*(diagnosed(c, ids[name], reason) for name, reason in failing))
        results = {name: d for (name, _), d in zip(failing, found, strict=True)}
        deadline = time.monotonic() + 120
        while True:
            fine = (await c.call_tool("deployments", {
                    "diagnose": True, "deployment_id": ids["fine"]})).structured_content
            if fine and fine["healthy"]:
                break
            assert time.monotonic() < deadline, fine
            await asyncio.sleep(1)
    assert fine["cause"] is None and fine["next_step"].startswith("Healthy")
    for name, d in results.items():
        assert d["next_step"] and d["cause"]["message"], name
        assert not d["healthy"], name
    crash = results["crash"]
    assert any("[secret:DB_PASSWORD]" in line for line in crash["app_output"]["lines"]), crash
    assert "pa55-w0rd-xyz" not in str(crash)
    assert any("exit 2" in x for x in crash["containers"]), crash["containers"]
    assert "memory" not in results["quota"]["next_step"] and "replicas" in results["quota"]["next_step"]
    assert any("Unhealthy" in e for e in results["probe"]["events"]), results["probe"]["events"]
    assert results["pull"]["cause"]["reason"] == "ImagePullFailed"
