"""The Temporal server restarted mid-deploy: the worker and the server's client reconnect on their own and the
deploy completes. The real deploy workflow and the store's real activities run in a worker in this process;
stand-ins take the cluster's place (tests/support/stand_ins.py), and the wait for Ready blocks until the test
releases it, so the server is stopped while the deploy waits. The test owns its Temporal dev server, with its
state in a file, so the restarted server (same port) still holds the running workflow; the session's server
serves the other tests and must not stop. While Temporal is down, a tool that must start a workflow answers a
clear "call again" error, and the retry with the same idempotency key, once it is back, starts it."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from temporalio import activity
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from mcp_server.devenv.embedded import TemporalDevServer
from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.support.platform import ok
from tests.support.stand_ins import Cluster, StandInImages
from tools.context import PlatformConfig, Principal
from workflows.activities.deploy import DeployActivities
from workflows.adapters.kube import Kube
from workflows.deploy import DeployWorkflow
from workflows.domain.secretbox import SecretBox

pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])
SCOPES = frozenset({"apps:read", "apps:write"})


class Gate:
    """wait_ready for one release blocks (heartbeating) until `open`; every other release is Ready at once."""

    def __init__(self, release: str) -> None:
        self.release, self.reached, self.opened = release, asyncio.Event(), asyncio.Event()

    def activity(self) -> Any:
        gate = self

        @activity.defn(name="wait_ready")
        async def wait_ready(inp: Any) -> None:
            if inp["release"] != gate.release:
                return
            gate.reached.set()
            while not gate.opened.is_set():
                activity.heartbeat()  # fails quietly while the server is down; the worker retries it
                await asyncio.sleep(0.1)

        return wait_ready


@pytest.fixture
def own_temporal() -> Iterator[TemporalDevServer]:
    d = Path(tempfile.mkdtemp(prefix="deploy-mcp-faults-temporal-"))
    server = TemporalDevServer(d, db_file=d / "temporal.db")  # the state survives the restart
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def poll_phase(c: Client, deployment_id: str, want: str, seconds: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        d = ok(await c.call_tool("deployments", {"deployment_id": deployment_id}))
        if d["phase"] == want or time.monotonic() > deadline:
            assert d["phase"] == want, d
            return d
        await asyncio.sleep(0.5)


async def test_a_deploy_survives_a_temporal_restart_and_calls_meanwhile_say_retry(
        store: PgStore, own_temporal: TemporalDevServer, mode: str) -> None:
    temporal = await TemporalClient.connect(own_temporal.address, data_converter=pydantic_data_converter)
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    box = SecretBox(Fernet.generate_key())
    real = DeployActivities(cast(Kube, None), store, box, temporal=temporal)
    gate = Gate("web-r1")
    stand_ins = [a for a in Cluster().activities() if activity._Definition.must_from_callable(a).name != "wait_ready"]
    worker = Worker(temporal, task_queue=queue, workflows=[DeployWorkflow],
                    activities=[real.set_phase, real.record_outcome, real.set_image, real.wait_workflows_closed,
                                *stand_ins, gate.activity()],
                    max_heartbeat_throttle_interval=timedelta(milliseconds=100),
                    default_heartbeat_throttle_interval=timedelta(milliseconds=100))
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", progress_wait_seconds=0),
                      workflows=TemporalWorkflows(temporal, queue), images=StandInImages(), secretbox=box)
    tenant = f"t{uuid.uuid4().hex[:6]}"
    server = build_server(deps, transport="memory", principal=Principal(tenant, "agent", SCOPES, "memory"))
    api = {"project": "shop", "name": "api", "source": {"image": "registry.test/team/api:v1"}, "port": 8080,
           "wait_seconds": 0, "idempotency_key": "api-first"}
    async with worker, Client(server, mode=mode) as c:
        web = ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "port": 8080, "wait_seconds": 0,
                                                  "source": {"image": "registry.test/team/web:v1"}}))
        await asyncio.wait_for(gate.reached.wait(), 60)

        own_temporal.stop()
        down = await c.call_tool("create_app", api)
        assert down.is_error, down
        said = down.content[0].text  # type: ignore[union-attr]
        assert said.startswith("The platform's workflow service cannot be reached now"), said
        assert "Error executing tool" not in said and "idempotency_key" in said
        # reads need only the database: they answer as usual
        assert (await poll_phase(c, web["deployment_id"], "waiting", 5))["phase"] == "waiting"

        own_temporal.start()  # same port, same state file
        gate.opened.set()
        done = await poll_phase(c, web["deployment_id"], "succeeded")
        assert done["release"] == "web-r1"

        retried = ok(await c.call_tool("create_app", api))  # the same key: the release recorded while down
        await poll_phase(c, retried["deployment_id"], "succeeded")
        apps = ok(await c.call_tool("apps", {}))
        assert sorted(a["name"] for a in apps["apps"]) == ["api", "web"]
