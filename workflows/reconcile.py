"""The reconciler: a long-running loop per app (`reconcile`) and the install's sweeper (`reconcile-sweep`),
see docs/decisions/0011-reconciler.md.

`reconcile` (id `reconcile/<app id>`) runs one level-based pass (`ReconcileActivities.reconcile_app`) every
period, sooner when signalled (`poke`), and ends when the app is deleted. A pass that fails (the API server
or the database refusing, after the activity's own retries) doubles the wait before the next one, up to a
ceiling, so a sick control plane is not hammered. The period and the ceiling are the worker's settings,
returned by every pass, so a changed setting applies from the next pass. Every `passes_per_run` passes the
loop continues as new, so its history stays small however long the app lives.

`reconcile-sweep` (id `reconcile-sweep/<task queue>`, started by the worker at start) makes sure every
recorded app has its loop, also after Temporal lost its state, and reports objects no recorded app owns.

Deterministic: activities are called by method reference, imported passed through the sandbox; no I/O here.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.activities.reconcile import ReconcileActivities
    from workflows.domain.reconcile_contract import (
        PassResult,
        ReconcileEnd,
        ReconcileInput,
        ReconcilePass,
        SweepInput,
        SweepResult,
        next_pass_seconds,
    )

# A pass is a few dozen API reads; its retries ride out a blip, the loop's back-off a longer outage.
PASS_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                         maximum_interval=timedelta(seconds=10), maximum_attempts=3)
PASS_TIMEOUT = timedelta(seconds=120)


@workflow.defn(name="reconcile")
class ReconcileWorkflow:
    def __init__(self) -> None:
        self._poked = False
        self._last: PassResult | None = None
        self._failures = 0

    @workflow.signal
    def poke(self) -> None:
        """Run the next pass now (a deploy just finished, an operator asks)."""
        self._poked = True

    @workflow.query
    def last_pass(self) -> PassResult | None:
        return self._last

    @workflow.query
    def failures(self) -> int:
        return self._failures

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileEnd:
        self._failures = inp.failures
        period, ceiling = 30.0, 300.0
        if inp.start_jitter_seconds > 0 and workflow.info().continued_run_id is None:
            await workflow.sleep(timedelta(seconds=workflow.random().uniform(0, inp.start_jitter_seconds)))
        for _ in range(max(inp.passes_per_run, 1)):
            self._poked = False
            try:
                result = await workflow.execute_activity_method(
                    ReconcileActivities.reconcile_app, ReconcilePass(app_id=inp.app_id),
                    start_to_close_timeout=PASS_TIMEOUT, retry_policy=PASS_RETRY)
            except ActivityError as e:
                self._failures += 1
                workflow.logger.warning("reconcile pass of %s failed (%d in a row): %s", inp.app_id,
                                        self._failures, e.cause)
            else:
                self._last = result
                self._failures = 0
                period, ceiling = result.period_seconds, result.max_backoff_seconds
                if result.state == "gone":
                    return ReconcileEnd(app_id=inp.app_id, reason=result.reason)
            with contextlib.suppress(TimeoutError):  # the period passed without a poke
                await workflow.wait_condition(lambda: self._poked, timeout=timedelta(
                    seconds=next_pass_seconds(period, ceiling, self._failures)))
        workflow.continue_as_new(inp.model_copy(update={"failures": self._failures}))


@workflow.defn(name="reconcile-sweep")
class ReconcileSweepWorkflow:
    def __init__(self) -> None:
        self._last: SweepResult | None = None

    @workflow.query
    def last_sweep(self) -> SweepResult | None:
        return self._last

    @workflow.run
    async def run(self, inp: SweepInput) -> None:
        wait = 60.0
        for _ in range(max(inp.sweeps_per_run, 1)):
            try:
                self._last = await workflow.execute_activity_method(
                    ReconcileActivities.ensure_reconcilers, inp, start_to_close_timeout=timedelta(minutes=5),
                    heartbeat_timeout=timedelta(seconds=60), retry_policy=PASS_RETRY)
                wait = self._last.sweep_seconds
            except ActivityError as e:
                workflow.logger.warning("reconcile sweep failed: %s", e.cause)
            await workflow.sleep(timedelta(seconds=wait))
        workflow.continue_as_new(inp)
