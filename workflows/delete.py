"""Deleting an app: its Ingress and Service first (it stops serving), then every release's Deployment,
PodDisruptionBudget and Secret, then the app row is marked deleted. Volumes and the audit trail stay.

Workflow id `delete/<tenant>/<project>/<app>/<app id>` (`workflows.domain.workflow_ids`): the app id keeps a
later app of the same name apart. The activities are `DeployActivities`', called by method reference.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.activities.deploy import DeployActivities
    from workflows.domain.delete_contract import DeleteAppInput


@workflow.defn(name="delete-app")
class DeleteAppWorkflow:
    @workflow.run
    async def run(self, inp: DeleteAppInput) -> list[str]:
        retry = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
        deleted = await workflow.execute_activity_method(
            DeployActivities.delete_app_objects, inp, start_to_close_timeout=timedelta(minutes=2),
            retry_policy=retry,
        )
        await workflow.execute_activity_method(DeployActivities.mark_app_deleted, inp,
                                               start_to_close_timeout=timedelta(seconds=30), retry_policy=retry)
        return deleted
