"""The build workflow: one commit of one app's repository into an image in the registry, pinned by digest.

Workflow id `build/<tenant>/<project>/<app>/<sha>[/<subdir hash>]` (`workflows.domain.workflow_ids`), started
with USE_EXISTING by the deploy workflow's `run_build` activity: the same commit never builds twice at once,
and a commit that built before is not built again (its digest is reused). Deterministic; the I/O is in
`BuildActivities` (`workflows/activities/build.py`), called by method reference.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.activities.build import BuildActivities
    from workflows.domain.build_contract import BuildDone, BuildInput, BuildOutput
    from workflows.domain.diagnosis import Failure


@workflow.defn(name="build")
class BuildWorkflow:
    @workflow.run
    async def run(self, inp: BuildInput) -> BuildOutput:
        quick = timedelta(seconds=60)
        retry = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                            maximum_attempts=6)
        started = await workflow.execute_activity_method(
            BuildActivities.build_start, inp, start_to_close_timeout=quick, retry_policy=retry)
        if started.reused_digest:
            return BuildOutput(build_id=started.build_id, digest=started.reused_digest, reused=True,
                               image=f"{inp.image_repo}@{started.reused_digest}")
        try:
            done = await workflow.execute_activity_method(
                BuildActivities.build_image, started,
                start_to_close_timeout=timedelta(seconds=inp.timeout_seconds + 300),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=5)),
            )
        except ActivityError as err:
            message = getattr(err.cause, "message", None) or str(err.cause or err)
            done = BuildDone(build_id=started.build_id, status="failed", error=message)
        await workflow.execute_activity_method(BuildActivities.build_finish, done, start_to_close_timeout=quick,
                                               retry_policy=retry)
        if done.status == "failed":
            return BuildOutput(build_id=started.build_id, failure=Failure(
                reason="BuildFailed", message=done.error or "the build failed",
                hint="Read `builds` with this deployment_id, fix the failing step and deploy again.",
                evidence=([f"step: {done.failed_step}"] if done.failed_step else [])
                + [f"log: {line}" for line in done.last_lines[-15:]]))
        return BuildOutput(build_id=started.build_id, image=done.image, digest=done.digest)
