"""Killing the worker mid-deploy (SIGKILL, during the wait for Ready) and starting another one finishes the
deploy: the workflow resumes from history and the in-flight activity is retried once its heartbeat lapses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from tests.support.platform import running_platform, worker_process
from workflows.domain.labels import LABEL_RELEASE

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node)
    async with running_platform(settings, start_worker=False) as p:
        yield p


async def phase_of(p: Platform, deployment_id: str) -> str:
    d = await p.deps.store.get_deployment(p.tenant, __import__("uuid").UUID(deployment_id))
    assert d is not None
    return d.phase


async def test_killed_worker_mid_deploy_then_restarted_finishes_it(platform: Platform, workdir: Path) -> None:
    p = platform
    image = f"127.0.0.1:5000/{p.tenant}/slow:v1"
    await push_image("127.0.0.1:5000", f"{p.tenant}/slow", "v1", busybox_web_files("survived"), cmd=BUSYBOX_HTTPD)
    run_dir = workdir / f"workers-{p.tenant}"
    first = worker_process(p.settings, run_dir, "worker-a")
    first.start()
    async with p.client() as c:
        r = await c.call_tool("create_app", {
            "project": "crash", "name": "web", "source": {"image": image}, "port": 8080, "wait_seconds": 0,
            # slow to become Ready, so the kill lands inside the wait
            "health_check": {"type": "http", "path": "/index.html", "initial_delay_seconds": 8, "period_seconds": 1},
        })
        assert not r.is_error and r.structured_content is not None
        deployment_id = r.structured_content["deployment_id"]
        deadline = time.monotonic() + 90
        while await phase_of(p, deployment_id) != "waiting":
            assert time.monotonic() < deadline, "never reached the wait for Ready"
            await asyncio.sleep(0.2)
        first.stop()  # SIGKILL: no graceful shutdown, the activity is lost mid-flight
        second = worker_process(p.settings, run_dir, "worker-b")
        second.start()
        try:
            deadline = time.monotonic() + 180
            while (phase := await phase_of(p, deployment_id)) not in ("succeeded", "failed"):
                assert time.monotonic() < deadline, f"deploy stuck in {phase} after the worker restart"
                await asyncio.sleep(0.5)
        finally:
            second.stop()
    final = await p.deps.store.get_deployment(p.tenant, __import__("uuid").UUID(deployment_id))
    assert phase == "succeeded", final and final.error
    app = await p.deps.store.get_app(p.tenant, "crash", "web")
    assert app is not None and str(app.serving_deployment_id) == deployment_id
    svc = await p.kube.get("v1", "Service", app.namespace, "web")
    assert svc is not None and svc["spec"]["selector"][LABEL_RELEASE] == "web-r1"
