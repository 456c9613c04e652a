"""The custom-domain workflow: check the owner's DNS with backoff until the domain verifies or its deadline
passes, then have its certificate issued and watch it (status `issuing` -> `active`), then re-check the records
and the certificate every `recheck_seconds`, so a CNAME that moved away or a certificate that stopped renewing
shows in the status. Deterministic; `DomainActivities` (`workflows/activities/domains.py`) does the I/O.

Signals: `check_now` (the agent's `domain(action=verify)`: check at once instead of after the backoff) and
`remove` (delete the domain's cluster objects and its row, then end). The tools send them with signal-with-start,
so a domain whose workflow ended (failed) starts again. Workflow id `domain/<domain id>/<token prefix>`.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.activities.domains import DomainActivities
    from workflows.domain.domain_contract import DomainInput, DomainStep

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                    maximum_attempts=0)  # DNS or the API server down: keep trying, the status says so meanwhile
QUICK = timedelta(seconds=60)


@workflow.defn(name="custom-domain")
class DomainWorkflow:
    def __init__(self) -> None:
        self._check_now = False
        self._remove = False

    @workflow.signal
    def check_now(self) -> None:
        self._check_now = True

    @workflow.signal
    def remove(self) -> None:
        self._remove = True

    @workflow.run
    async def run(self, inp: DomainInput) -> DomainStep:
        self._remove = self._remove or inp.remove
        delay = inp.first_delay_seconds
        for _ in range(inp.checks_before_continue):
            if self._remove:
                return await workflow.execute_activity_method(
                    DomainActivities.domain_remove, inp, start_to_close_timeout=QUICK, retry_policy=RETRY)
            self._check_now = False  # a verify signalled while this check runs asks for the next one at once
            step = await workflow.execute_activity_method(
                DomainActivities.domain_step, inp, start_to_close_timeout=QUICK, retry_policy=RETRY)
            if step.gone or step.done:
                return step
            if step.status == "active":
                wait = inp.recheck_seconds
                delay = inp.first_delay_seconds
            else:
                wait = delay
                delay = min(delay * 2, inp.max_backoff_seconds)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._check_now or self._remove, timeout=timedelta(seconds=wait))
        workflow.continue_as_new(inp.model_copy(update={"remove": self._remove}))
