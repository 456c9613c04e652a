"""A read-only look at a release, run by the worker (which holds the cluster credentials) on behalf of
`diagnose_deployment`: tools never talk to the cluster themselves. Its one activity is
`DeployActivities.diagnose_release`, called by method reference."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.activities.deploy import DeployActivities
    from workflows.domain.diagnose_contract import DiagnoseInput, Diagnosis


@workflow.defn(name="diagnose-release")
class DiagnoseWorkflow:
    @workflow.run
    async def run(self, inp: DiagnoseInput) -> Diagnosis:
        return await workflow.execute_activity_method(
            DeployActivities.diagnose_release, inp, start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
