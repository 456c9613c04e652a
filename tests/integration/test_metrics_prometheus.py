"""Prometheus scrapes the platform for real: a Prometheus from Debian's package, started by this test on
loopback, scrapes the server's /metrics (beside its probes, on its HTTP port), the worker's (on its health port)
and the Temporal SDK's own endpoint; PromQL over its HTTP API then returns

- the tool calls this test made over MCP, by tool and outcome (ok, denied, and a name no tool has as
  `tool="unknown"`), with their latency histogram's count;
- the workflow runs the worker finished, by type and outcome (completed, failed), counted once each;
- the age of the last successful Plane A backup, from `backup_runs`;
- the Temporal SDK's metrics (`temporal_*`) from the worker's runtime.

Counters are process-wide (other tests in this process may have counted before), so each expectation is the
value this process had before the test plus what the test did."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client import REGISTRY
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from mcp_server.auth import create_token
from mcp_server.devenv.processes import free_port
from mcp_server.health import serve_health
from mcp_server.server import ServerDeps
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.telemetry.metrics import backup_age, exposition
from mcp_server.telemetry.temporal_runtime import metrics_runtime
from mcp_server.telemetry.workflow_metrics import WorkflowMetrics
from mcp_server.temporal import connect
from mcp_server.wiring import http_server, make_server, platform_config
from tests.support.prometheus import prometheus
from tests.support.serving import serving
from tests.support.telemetry_workflows import FailWorkflow, PingWorkflow

pytestmark = pytest.mark.timeout(180)


def before(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_prometheus_counts_the_calls_workflows_and_backup_age(
        store: PgStore, temporal_address: str, tmp_path: Path) -> None:
    # a backup that finished 30 hours ago: older than the 26 h the alert allows
    run_id = await store.start_backup_run("file:///backups", "b1")
    await store.finish_backup_run(run_id, ok=True, size_bytes=10)
    await store._one("UPDATE backup_runs SET finished_at = now() - interval '30 hours' WHERE id = %s RETURNING id",
                     run_id)

    task_queue = f"telemetry-{uuid.uuid4().hex[:8]}"
    settings = load_settings(http={"port": free_port()}, temporal={"address": temporal_address,
                                                                   "task_queue": task_queue},
                             worker={"health_host": "127.0.0.1"}, telemetry={"temporal_metrics_port": free_port()})
    worker_port = free_port()
    deps = ServerDeps(store=store, config=platform_config(settings), metrics=exposition([backup_age(store)]))
    server = http_server(settings, make_server(settings, deps, "http"))
    client = await connect(settings, runtime=metrics_runtime(settings))
    worker = Worker(client, task_queue=task_queue, workflows=[PingWorkflow, FailWorkflow],
                    interceptors=[WorkflowMetrics()])

    calls = "deploy_mcp_tool_calls_total"
    start = {
        "whoami": before(calls, tool="whoami", outcome="ok"),
        "denied": before(calls, tool="get_audit_log", outcome="denied"),
        "unknown": before(calls, tool="unknown", outcome="invalid"),
        "latency": before("deploy_mcp_tool_call_duration_seconds_count", tool="whoami", outcome="ok"),
        "ping": before("deploy_mcp_workflow_runs_total", workflow="telemetry-ping", outcome="completed"),
        "fail": before("deploy_mcp_workflow_runs_total", workflow="telemetry-fail", outcome="failed"),
    }
    targets = {"server": f"127.0.0.1:{settings.http.port}", "worker": f"127.0.0.1:{worker_port}",
               "temporal-sdk": f"127.0.0.1:{settings.telemetry.temporal_metrics_port}"}
    async with serving(server), serve_health("127.0.0.1", worker_port, [], metrics=exposition()), worker:
        token = await create_token(store, "acme", "metrics-agent", ["apps:read"])
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as hc, \
                Client(streamable_http_client(settings.http.mcp_url(), http_client=hc)) as c:
            for _ in range(3):
                assert not (await c.call_tool("whoami", {})).is_error
            assert (await c.call_tool("get_audit_log", {})).is_error  # no audit:read: denied
            assert (await c.call_tool("no_such_tool", {})).is_error
        for i in range(2):
            assert await client.execute_workflow(PingWorkflow.run, str(i), id=f"{task_queue}-ping-{i}",
                                                 task_queue=task_queue) == f"pong {i}"
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(FailWorkflow.run, "x", id=f"{task_queue}-fail", task_queue=task_queue,
                                          execution_timeout=timedelta(seconds=30))

        with prometheus(tmp_path / "prometheus", targets) as prom:
            await prom.targets_up(set(targets))
            job = '{job="server",tool="whoami",outcome="ok"}'
            await prom.wait_for(f"deploy_mcp_tool_calls_total{job}", start["whoami"] + 3)
            await prom.wait_for(f"deploy_mcp_tool_call_duration_seconds_count{job}", start["latency"] + 3)
            await prom.wait_for('deploy_mcp_tool_calls_total{job="server",tool="get_audit_log",outcome="denied"}',
                                start["denied"] + 1)
            await prom.wait_for('deploy_mcp_tool_calls_total{job="server",tool="unknown",outcome="invalid"}',
                                start["unknown"] + 1)
            # the caller's made-up name never became a label value
            assert await prom.query('{__name__=~"deploy_mcp_.*",tool="no_such_tool"}') == []
            await prom.wait_for('deploy_mcp_workflow_runs_total{job="worker",workflow="telemetry-ping",'
                                'outcome="completed"}', start["ping"] + 2)
            await prom.wait_for('deploy_mcp_workflow_runs_total{job="worker",workflow="telemetry-fail",'
                                'outcome="failed"}', start["fail"] + 1)
            age = await prom.value('deploy_mcp_backup_age_seconds{job="server"}')
            assert age is not None and 30 * 3600 <= age < 30 * 3600 + 120, age
            assert await prom.value('deploy_mcp_backup_age_seconds{job="server"} > 26 * 3600') is not None
            # the SDK's own: the worker's polls and the workflows it completed
            sdk = await prom.query('{job="temporal-sdk",__name__=~"temporal_.*"}')
            assert sdk, "no temporal_* series on the SDK's endpoint"
            names = {r["metric"]["__name__"] for r in sdk}
            assert any(n.startswith("temporal_workflow_completed") for n in names), sorted(names)
