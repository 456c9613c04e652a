"""Scaling an app in place (`scale-app`) and reading its pods' use (`app-metrics`), run by the worker on behalf
of the `scale` and `app_metrics` tools: tools never talk to the cluster themselves.

`scale-app` is one activity, `ScaleActivities.scale_app`, which holds the app's row lock (the reconciler's and
the release recording's) while it records the count and patches the serving release's `scale` subresource and
autoscaler; durable, so a worker lost mid-way finishes it on another. Its id is
`scale/<app id>/<request key>`: a retried call with the same `idempotency_key` never scales twice.

Deterministic: activities by method reference, imported passed through the sandbox; no I/O here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.activities.pod_metrics import MetricsActivities
    from workflows.activities.scaling import ScaleActivities
    from workflows.domain.scaling_contract import AppMetrics, MetricsInput, ScaleInput, ScaleResult

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=10), maximum_attempts=5)


@workflow.defn(name="scale-app")
class ScaleWorkflow:
    @workflow.run
    async def run(self, inp: ScaleInput) -> ScaleResult:
        # the lock wait (20 s) and a few API calls fit well inside the timeout; a retry starts from the top
        try:
            return await workflow.execute_activity_method(
                ScaleActivities.scale_app, inp, start_to_close_timeout=timedelta(seconds=60), retry_policy=RETRY)
        except ActivityError as e:
            # the cluster refused (RBAC, admission) or stayed away past the retries: the scale was not recorded
            # (the record shares the cluster change's transaction); the reconciler puts back what had changed
            cause = e.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or e)
            return ScaleResult(outcome="failed", reason=message[:300],
                               fix="call scale again in a moment; if it persists, tell the operator")


@workflow.defn(name="app-metrics")
class AppMetricsWorkflow:
    @workflow.run
    async def run(self, inp: MetricsInput) -> AppMetrics:
        return await workflow.execute_activity_method(
            MetricsActivities.app_metrics, inp, start_to_close_timeout=timedelta(seconds=inp.window_seconds + 40),
            # a heartbeat between samples, which are at most 30 s apart
            heartbeat_timeout=timedelta(seconds=75), retry_policy=RetryPolicy(maximum_attempts=2))
