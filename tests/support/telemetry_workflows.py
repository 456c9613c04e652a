"""Two workflows with no activity for the telemetry tests: one that completes, one that fails. Here, beside
nothing else, because the workflow sandbox re-imports the module that defines them."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError


@workflow.defn(name="telemetry-ping")
class PingWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return f"pong {text}"


@workflow.defn(name="telemetry-fail")
class FailWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        raise ApplicationError(f"failing on purpose: {text}", non_retryable=True)
