"""Temporal for the server side: the client (pydantic data converter) and the tools' `Workflows` port, which
reports a Temporal it cannot reach as `tools.ports.WorkflowsUnavailable` (the client has retried by then)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Literal, TypeVar

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from mcp_server.settings import Settings
from mcp_server.telemetry import tracing
from tools.ports import WorkflowsUnavailable
from workflows.domain.database_contract import DatabaseOp, DatabaseResult
from workflows.domain.database_observation import Connections, DatabaseObservation, DiskUse, ObserveInput
from workflows.domain.delete_contract import DeleteAppInput
from workflows.domain.deploy_contract import DeployInput
from workflows.domain.diagnose_contract import DiagnoseInput, Diagnosis
from workflows.domain.domain_contract import DomainInput
from workflows.domain.scaling_contract import AppMetrics, MetricsInput, ScaleInput, ScaleResult
from workflows.domain.volume_contract import VolumeOp, VolumeResult


async def connect(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """The client; with the tracing interceptor when this process traces (`mcp_server.telemetry.tracing`), on
    `runtime` when given (the worker's, exporting the SDK's metrics)."""
    if not settings.temporal.address:
        raise SystemExit("deploy-mcp: no Temporal. Set DEPLOY_MCP_TEMPORAL__ADDRESS, or run `deploy-mcp dev`.")
    return await Client.connect(settings.temporal.address, namespace=settings.temporal.namespace,
                                data_converter=pydantic_data_converter, interceptors=tracing.temporal_interceptors(),
                                runtime=runtime)


R = TypeVar("R")

# The server is down, restarting or too slow to answer: a retry later may work, unlike every other status.
_UNREACHABLE = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except RPCError as e:
        if e.status in _UNREACHABLE:
            raise WorkflowsUnavailable(f"Temporal cannot be reached: {e}") from e
        raise


class TemporalWorkflows:
    """Starts are idempotent: the workflow id is the business key, an existing run is reused, and a finished
    run is never started again (REJECT_DUPLICATE)."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def _start(self, wf: str, arg: object, workflow_id: str) -> None:
        # A finished run with this id means it ran already: that is the point of a business-keyed id.
        with _reachable(), contextlib.suppress(WorkflowAlreadyStartedError):
            await self.client.start_workflow(
                wf, arg, id=workflow_id, task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )

    async def start_deploy(self, workflow_id: str, inp: DeployInput) -> None:
        await self._start("deploy", inp, workflow_id)

    async def start_delete(self, workflow_id: str, inp: DeleteAppInput) -> None:
        await self._start("delete-app", inp, workflow_id)

    async def diagnose(self, inp: DiagnoseInput) -> Diagnosis:
        """Runs to completion at once (a few API reads); a fresh id each time: it is a question, not a change."""
        with _reachable():
            result: Diagnosis = await self.client.execute_workflow(
                "diagnose-release", inp, id=f"diagnose/{inp.namespace}/{inp.release}/{uuid.uuid4().hex[:8]}",
                task_queue=self.task_queue, result_type=Diagnosis, execution_timeout=timedelta(seconds=60),
            )
        return result

    async def run_volume(self, workflow_id: str, op: VolumeOp, wait_seconds: float) -> VolumeResult | None:
        """Start (or find) the volume workflow and wait up to `wait_seconds` for its result; None while it runs."""
        await self._start("volume", op, workflow_id)
        return await self._result(workflow_id, VolumeResult, wait_seconds)

    async def run_scale(self, workflow_id: str, inp: ScaleInput, wait_seconds: float) -> ScaleResult | None:
        await self._start("scale-app", inp, workflow_id)
        return await self._result(workflow_id, ScaleResult, wait_seconds)

    async def _result(self, workflow_id: str, result_type: type[R], wait_seconds: float) -> R | None:
        handle: WorkflowHandle[object, R] = self.client.get_workflow_handle(workflow_id, result_type=result_type)
        try:
            with _reachable():
                return await asyncio.wait_for(handle.result(), timeout=wait_seconds)
        except TimeoutError:
            return None

    async def app_metrics(self, inp: MetricsInput) -> AppMetrics:
        """A question like `diagnose`: a fresh id each time, run to completion (the sampling window + reads)."""
        with _reachable():
            result: AppMetrics = await self.client.execute_workflow(
                "app-metrics", inp, id=f"app-metrics/{inp.namespace}/{inp.app}/{uuid.uuid4().hex[:8]}",
                task_queue=self.task_queue, result_type=AppMetrics,
                execution_timeout=timedelta(seconds=inp.window_seconds + 60))
        return result
    async def observe_database(self, inp: ObserveInput) -> DatabaseObservation:
        """A question: a fresh id each time, run to completion (a few reads and one query Job)."""
        try:
            with _reachable():
                result: DatabaseObservation = await self.client.execute_workflow(
                    "database-observe", inp, id=f"database-observe/{inp.spec.namespace}/{inp.spec.name}/"
                                                f"{uuid.uuid4().hex[:8]}",
                    task_queue=self.task_queue, result_type=DatabaseObservation,
                    execution_timeout=timedelta(seconds=inp.query_timeout_seconds + 60))
        except WorkflowFailureError as e:  # timed out, or no worker took it: say so rather than fail the read
            why = f"could not be observed: {e.cause or e}"[:200]
            return DatabaseObservation(disk=DiskUse(unknown=why), connections=Connections(unknown=why))
        return result

    async def run_database(self, workflow_id: str, op: DatabaseOp, wait_seconds: float) -> DatabaseResult | None:
        """Start (or find) the database workflow and wait up to `wait_seconds` for its result; None while it runs."""
        await self._start("database", op, workflow_id)
        handle: WorkflowHandle[object, DatabaseResult] = self.client.get_workflow_handle(
            workflow_id, result_type=DatabaseResult)
        try:
            with _reachable():
                return await asyncio.wait_for(handle.result(), timeout=wait_seconds)
        except TimeoutError:
            return None

    async def signal_domain(self, workflow_id: str, inp: DomainInput, signal: Literal["check_now", "remove"]
                            ) -> None:
        """Signal-with-start: a running domain workflow gets the signal; a domain whose workflow ended (failed,
        or never started) gets a new run, which the signal reaches first."""
        with _reachable():
            await self.client.start_workflow(
                "custom-domain", inp, id=workflow_id, task_queue=self.task_queue, start_signal=signal,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )

    async def cancel(self, workflow_id: str) -> None:
        handle: WorkflowHandle[object, object] = self.client.get_workflow_handle(workflow_id)
        try:
            with _reachable():
                desc = await handle.describe()
                if desc.status == WorkflowExecutionStatus.RUNNING:
                    await handle.cancel()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise

