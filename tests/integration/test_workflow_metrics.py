"""Workflow runs are counted once, by the worker that ends them: on the Temporal dev server a completed and a
failed run each add one to `deploy_mcp_workflow_runs_total` with their type and outcome, and their durations to
the histogram; replaying their histories (what a worker does after a restart or a cache eviction) adds
nothing."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from temporalio.client import WorkflowFailureError
from temporalio.worker import Replayer, Worker

from mcp_server.settings import load_settings
from mcp_server.telemetry.workflow_metrics import WorkflowMetrics
from mcp_server.temporal import connect
from tests.support.telemetry_workflows import FailWorkflow, PingWorkflow

pytestmark = pytest.mark.timeout(120)


def runs(workflow: str, outcome: str) -> float:
    labels = {"workflow": workflow, "outcome": outcome}
    return REGISTRY.get_sample_value("deploy_mcp_workflow_runs_total", labels) or 0.0


def timed(workflow: str, outcome: str) -> float:
    labels = {"workflow": workflow, "outcome": outcome}
    return REGISTRY.get_sample_value("deploy_mcp_workflow_duration_seconds_count", labels) or 0.0


async def test_runs_are_counted_once_and_never_on_replay(temporal_address: str) -> None:
    queue = f"wf-metrics-{uuid.uuid4().hex[:8]}"
    client = await connect(load_settings(temporal={"address": temporal_address, "task_queue": queue}))
    before = (runs("telemetry-ping", "completed"), runs("telemetry-fail", "failed"),
              timed("telemetry-ping", "completed"))
    async with Worker(client, task_queue=queue, workflows=[PingWorkflow, FailWorkflow],
                      interceptors=[WorkflowMetrics()]):
        await client.execute_workflow(PingWorkflow.run, "a", id=f"{queue}-ping", task_queue=queue)
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(FailWorkflow.run, "b", id=f"{queue}-fail", task_queue=queue)
    after = (runs("telemetry-ping", "completed"), runs("telemetry-fail", "failed"),
             timed("telemetry-ping", "completed"))
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1)

    replayer = Replayer(workflows=[PingWorkflow, FailWorkflow], interceptors=[WorkflowMetrics()],
                        data_converter=client.data_converter)
    for workflow_id in (f"{queue}-ping", f"{queue}-fail"):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        await replayer.replay_workflow(history)
    assert (runs("telemetry-ping", "completed"), runs("telemetry-fail", "failed"),
            timed("telemetry-ping", "completed")) == after
