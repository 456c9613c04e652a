"""SIGTERM, as the kubelet sends it when a pod stops, for real child processes on the suite's Postgres and
Temporal:

- `deploy-mcp serve --transport http` with a tool call in flight (a `create_volume` waiting on its
  workflow, whose activity takes seconds): the call still answers with its real result, the server refuses
  new connections meanwhile, and the process exits 0 within `http.shutdown_grace_seconds`.
- `deploy-mcp worker` on the testbed (cluster marker): health, its preflight stored, exit 0 on SIGTERM.
- the worker loop (`mcp_server.worker.run_until_signalled`, with the real volume workflow and a slow
  activity): the activity running at SIGTERM finishes (once), the process exits 0 within
  `worker.shutdown_grace_seconds`, and a second worker completes the workflow without running it again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from mcp_server.auth import create_token
from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.support.platform import ok
from tests.support.processes import DEPLOY_MCP, child, platform_env, tail, wait_healthy
from tests.support.slow_volume_worker import activities
from tools.context import PlatformConfig, Principal
from workflows.volume import VolumeWorkflow

pytestmark = pytest.mark.timeout(180)


def count(path: Path, prefix: str) -> int:
    return sum(1 for name in os.listdir(path) if name.startswith(f"{prefix}-"))


async def wait_for(path: Path, prefix: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not count(path, prefix):
        assert time.monotonic() < deadline, f"no {prefix} marker in {path}"
        await asyncio.sleep(0.05)


async def test_sigterm_lets_the_call_in_flight_finish_then_serve_exits_0(
        store: PgStore, database_url: str, temporal_address: str, tmp_path: Path) -> None:
    queue = f"shutdown-{uuid.uuid4().hex[:8]}"
    markers = tmp_path / "markers"
    markers.mkdir()
    temporal = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)
    port = free_port()
    env = platform_env(database_url, temporal_address, queue, tmp_path / "state", HTTP__SHUTDOWN_GRACE_SECONDS="20")
    log = tmp_path / "serve.log"
    token = await create_token(store, "acme", "agent", ["apps:read", "volumes:write"])
    async with Worker(temporal, task_queue=queue, workflows=[VolumeWorkflow], activities=activities(markers, store)):
        with child([DEPLOY_MCP, "serve", "--transport", "http", "--port", str(port)], env, log) as proc:
            await asyncio.to_thread(wait_healthy, proc, f"http://127.0.0.1:{port}/healthz", log)
            url = f"http://127.0.0.1:{port}/mcp"
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as hc, \
                    Client(streamable_http_client(url, http_client=hc, terminate_on_close=False)) as c:
                await c.list_tools()  # the client checks a result against the tool's schema: fetch it now
                call = asyncio.create_task(c.call_tool("volume", {
                    "action": "create", "project": "shop", "volume": "data", "size_gib": 1, "wait_seconds": 60}))
                await wait_for(markers, "started")
                proc.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                await asyncio.sleep(0.5)
                async with httpx.AsyncClient() as h:
                    with pytest.raises(httpx.ConnectError):  # no new connections once draining
                        await h.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                result = ok(await call)
            assert result["done"] and result["volume"]["status"] == "bound", result
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 0, tail(log)
            assert time.monotonic() - signalled < 20 + 5, "the grace bound was not kept"
    assert count(markers, "finished") == 1


async def test_sigterm_drains_the_worker_and_a_second_worker_completes_the_workflow(
        store: PgStore, database_url: str, temporal_address: str, tmp_path: Path) -> None:
    queue = f"drain-{uuid.uuid4().hex[:8]}"
    markers = tmp_path / "markers"
    markers.mkdir()
    temporal = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)
    health = free_port()
    env = platform_env(database_url, temporal_address, queue, tmp_path / "state",
                       WORKER__HEALTH_PORT=str(health), WORKER__SHUTDOWN_GRACE_SECONDS="15")
    log = tmp_path / "worker.log"
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", progress_wait_seconds=0),
                      workflows=TemporalWorkflows(temporal, queue))
    server = build_server(deps, transport="memory", principal=Principal("acme", "agent",
                                                                        frozenset({"volumes:write"}), "memory"))
    with child([sys.executable, "-m", "tests.support.slow_volume_worker", str(markers)], env, log) as proc:
        await asyncio.to_thread(wait_healthy, proc, f"http://127.0.0.1:{health}/readyz", log)
        async with Client(server) as c:
            started = ok(await c.call_tool("volume", {
                    "action": "create", "project": "shop", "volume": "data", "size_gib": 1,
                                                             "wait_seconds": 0}))
        assert not started["done"]
        await wait_for(markers, "started")
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0, tail(log)
        assert time.monotonic() - signalled < 15 + 5
    # the activity ran to its end inside the grace period, so Temporal has its result: nothing runs twice
    assert count(markers, "finished") == 1
    async with Worker(temporal, task_queue=queue, workflows=[VolumeWorkflow], activities=activities(markers, store)):
        deadline = time.monotonic() + 60
        while (v := await store.get_volume("acme", "shop", "data")) is None or v.status != "bound":
            assert time.monotonic() < deadline, v
            await asyncio.sleep(0.2)
    assert count(markers, "started") == 1


@pytest.mark.cluster
async def test_deploy_mcp_worker_serves_health_records_its_preflight_and_exits_0_on_sigterm(
        store: PgStore, database_url: str, temporal_address: str, testbed: Testbed, tmp_path: Path) -> None:
    """The `deploy-mcp worker` command itself (it needs a cluster: the testbed's API server, run by the lead):
    /readyz once polling, /metrics (and the SDK's metrics port), its preflight at start stored for this host,
    exit 0 soon after SIGTERM."""
    health, sdk_metrics = free_port(), free_port()
    env = platform_env(database_url, temporal_address, f"cmd-{uuid.uuid4().hex[:8]}", tmp_path / "state",
                       WORKER__SHUTDOWN_GRACE_SECONDS="10", WORKER__HEALTH_HOST="127.0.0.1",
                       TELEMETRY__TEMPORAL_METRICS_PORT=str(sdk_metrics))
    env["KUBECONFIG"] = str(testbed.kubeconfig)
    log = tmp_path / "worker.log"
    with child([DEPLOY_MCP, "worker", "--health-port", str(health)], env, log) as proc:
        await asyncio.to_thread(wait_healthy, proc, f"http://127.0.0.1:{health}/readyz", log)
        # its /metrics beside the probes, and the Temporal SDK's own on telemetry.temporal_metrics_port
        async with httpx.AsyncClient(timeout=5) as h:
            metrics = await h.get(f"http://127.0.0.1:{health}/metrics")
            sdk = await h.get(f"http://127.0.0.1:{sdk_metrics}/metrics")
        assert metrics.status_code == 200 and "# TYPE deploy_mcp_workflow_runs_total counter" in metrics.text
        assert sdk.status_code == 200 and "temporal_" in sdk.text, sdk.text[:500]
        deadline = time.monotonic() + 60
        while (seen := await store.latest_preflight()) is None:
            assert time.monotonic() < deadline, tail(log)
            await asyncio.sleep(0.5)
        assert seen.host == socket.gethostname()
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = await asyncio.to_thread(proc.wait, 30)
    assert code == 0, tail(log)
    assert time.monotonic() - signalled < 10 + 5
