"""Workflow outcomes and durations, counted by a worker interceptor as each run ends.

A workflow's code replays on every worker that picks its history up, so the count happens only when the end is
not a replay (`workflow.unsafe.is_replaying()`): a run is counted once, by the worker that finished it. A
workflow task that fails (a bug, not an outcome) is retried by Temporal and counted when the run really ends.
The label values are the registered workflow types and a closed set of outcomes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import temporalio.exceptions
from prometheus_client import Counter, Histogram
from temporalio import workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

WORKFLOW_RUNS = Counter(
    "deploy_mcp_workflow_runs", "Workflow runs that ended, by workflow type and outcome "
    "(completed, failed, cancelled, continued_as_new).", ["workflow", "outcome"])
WORKFLOW_SECONDS = Histogram(
    "deploy_mcp_workflow_duration_seconds", "Time from a workflow run's start to its end, by workflow type and "
    "outcome.", ["workflow", "outcome"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200))


def _record(outcome: str) -> None:
    if workflow.unsafe.is_replaying():
        return
    info = workflow.info()
    seconds = max(0.0, (workflow.now() - info.start_time).total_seconds())
    # the metrics' locks and clocks are outside the workflow's deterministic world; nothing here feeds back
    with workflow.unsafe.sandbox_unrestricted():
        WORKFLOW_RUNS.labels(workflow=info.workflow_type, outcome=outcome).inc()
        WORKFLOW_SECONDS.labels(workflow=info.workflow_type, outcome=outcome).observe(seconds)


class _CountingInbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            result = await super().execute_workflow(input)
        except workflow.ContinueAsNewError:
            _record("continued_as_new")
            raise
        except (asyncio.CancelledError, temporalio.exceptions.CancelledError):
            _record("cancelled")
            raise
        except temporalio.exceptions.FailureError:
            _record("failed")
            raise
        _record("completed")
        return result


class WorkflowMetrics(Interceptor):
    """Hand to `Worker(interceptors=[...])`."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _CountingInbound
