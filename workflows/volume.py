"""The volume workflow: create, resize, snapshot, back up, restore, set the backup policy of, or delete a
platform volume. Deterministic; the activities in `VolumeActivities` (`workflows/activities/volume.py`) do
the I/O, called by method reference, one per operation.

Workflow id `volume/<tenant>/<project>/<volume>/<op>/<key>` (`workflows.domain.workflow_ids`): the same
request retried never runs twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.activities.deploy import DeployActivities
    from workflows.activities.volume import VolumeActivities
    from workflows.domain.deploy_contract import EnsureNamespace
    from workflows.domain.volume_contract import VolumeOp, VolumeOutcome, VolumeResult

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=20),
                    maximum_attempts=8)

OPERATIONS: dict[str, Callable[[VolumeActivities, VolumeOp], Awaitable[VolumeResult]]] = {
    "create": VolumeActivities.volume_create,
    "resize": VolumeActivities.volume_resize,
    "delete": VolumeActivities.volume_delete,
    "snapshot": VolumeActivities.volume_snapshot,
    "backup": VolumeActivities.volume_backup,
    "restore": VolumeActivities.volume_restore,
    "policy": VolumeActivities.volume_policy,
}
"""The activity of each `VolumeOp.op`."""


@workflow.defn(name="volume")
class VolumeWorkflow:
    @workflow.run
    async def run(self, inp: VolumeOp) -> VolumeResult:
        quick = timedelta(seconds=60)
        try:
            if inp.op in ("create", "restore"):
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
            result = VolumeResult(status="failed", message=message)
        await workflow.execute_activity_method(VolumeActivities.volume_record, VolumeOutcome(op=inp, result=result),
                                               start_to_close_timeout=quick, retry_policy=RETRY)
        return result
