"""The volume workflow: create, resize, snapshot, back up, restore, set the backup policy of, or delete a
platform volume. Deterministic; the activities in `workflows/volume_activities.py` do the I/O.

Workflow id `volume/<tenant>/<project>/<volume>/<op>/<key>`: the same request retried never runs twice.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.domain.deploy_contract import EnsureNamespace
    from workflows.domain.volume_contract import VolumeOp, VolumeOutcome, VolumeResult

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=20),
                    maximum_attempts=8)


def volume_workflow_id(tenant: str, project: str, volume: str, op: str, key: str) -> str:
    return f"volume/{tenant}/{project}/{volume}/{op}/{key}"


@workflow.defn(name="volume")
class VolumeWorkflow:
    @workflow.run
    async def run(self, inp: VolumeOp) -> VolumeResult:
        quick = timedelta(seconds=60)
        try:
            if inp.op in ("create", "restore"):
                await workflow.execute_activity(
                    "ensure_namespace", EnsureNamespace(tenant=inp.spec.tenant, project=inp.spec.project,
                                                        namespace=inp.spec.namespace),
                    result_type=list[str], start_to_close_timeout=quick, retry_policy=RETRY)
            result: VolumeResult = await workflow.execute_activity(
                f"volume_{inp.op}", inp, result_type=VolumeResult,
                start_to_close_timeout=timedelta(seconds=inp.timeout_seconds + 60),
                heartbeat_timeout=timedelta(seconds=30), retry_policy=RETRY)
        except ActivityError as err:
            cause = err.cause
            message = getattr(cause, "message", None) or str(cause or err)
            result = VolumeResult(status="failed", message=message)
        await workflow.execute_activity("volume_record", VolumeOutcome(op=inp, result=result),
                                        start_to_close_timeout=quick, retry_policy=RETRY)
        return result
