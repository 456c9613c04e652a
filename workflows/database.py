"""The database workflow: create (apply and wait for Ready), rotate the password, take a dump, restore one
(after a safety dump), or delete a platform database. Deterministic; the activities in `DatabaseActivities`
(`workflows/activities/database.py`) do the I/O, called by method reference.

Workflow id `database/<tenant>/<project>/<name>/<op>/<key>`: the same request retried never runs twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.activities.database import DatabaseActivities
    from workflows.activities.database_observe import DatabaseObserveActivities
    from workflows.activities.deploy import DeployActivities
    from workflows.domain.database_contract import DatabaseOp, DatabaseOutcome, DatabaseResult
    from workflows.domain.database_observation import DatabaseObservation, ObserveInput
    from workflows.domain.deploy_contract import EnsureNamespace

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=20),
                    maximum_attempts=8)

OPERATIONS: dict[str, Callable[[DatabaseActivities, DatabaseOp], Awaitable[DatabaseResult]]] = {
    "create": DatabaseActivities.database_apply,
    "rotate": DatabaseActivities.database_rotate,
    "backup": DatabaseActivities.database_backup,
    "restore": DatabaseActivities.database_restore,
    "delete": DatabaseActivities.database_delete,
}


@workflow.defn(name="database")
class DatabaseWorkflow:
    @workflow.run
    async def run(self, inp: DatabaseOp) -> DatabaseResult:
        quick = timedelta(seconds=60)
        try:
            if inp.op == "create":
                # the namespace and its guardrails first: the database's policy relies on the project's
                await workflow.execute_activity_method(
                    DeployActivities.ensure_namespace, EnsureNamespace(
                        tenant=inp.spec.tenant, project=inp.spec.project, namespace=inp.spec.namespace),
                    start_to_close_timeout=quick, retry_policy=RETRY)
            result = await workflow.execute_activity_method(
                OPERATIONS[inp.op], inp,
                start_to_close_timeout=timedelta(seconds=inp.timeout_seconds + 60),
                heartbeat_timeout=timedelta(seconds=30), retry_policy=RETRY)
        except ActivityError as err:
            cause = err.cause
            message = getattr(cause, "message", None) or str(cause or err)
            result = DatabaseResult(status="failed", message=message)
        await workflow.execute_activity_method(
            DatabaseActivities.database_record, DatabaseOutcome(op=inp, result=result),
            start_to_close_timeout=quick, retry_policy=RETRY)
        return result


@workflow.defn(name="database-observe")
class DatabaseObserveWorkflow:
    """A question like `app-metrics`: a fresh id per call, one activity, no retry (an answer that came late
    would no longer be the state at the time of asking; the activity turns failures into `unknown`)."""

    @workflow.run
    async def run(self, inp: ObserveInput) -> DatabaseObservation:
        return await workflow.execute_activity_method(
            DatabaseObserveActivities.database_observe, inp,
            # no heartbeat timeout: one node-proxy read may take the adapter's whole timeout between beats
            start_to_close_timeout=timedelta(seconds=inp.query_timeout_seconds + 30),
            retry_policy=RetryPolicy(maximum_attempts=1))
