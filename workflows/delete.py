"""Deleting an app: its Ingress and Service first (it stops serving), then every release's Deployment,
PodDisruptionBudget and Secret, then the app row is marked deleted. Volumes and the audit trail stay.

Workflow id `delete/<tenant>/<project>/<app>/<app id>`: the app id keeps a later app of the same name apart.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.domain.delete_contract import DeleteAppInput


def delete_workflow_id(tenant: str, project: str, app: str, app_id: UUID) -> str:
    return f"delete/{tenant}/{project}/{app}/{app_id}"


@workflow.defn(name="delete-app")
class DeleteAppWorkflow:
    @workflow.run
    async def run(self, inp: DeleteAppInput) -> list[str]:
        retry = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
        deleted: list[str] = await workflow.execute_activity(
            "delete_app_objects", inp, result_type=list[str], start_to_close_timeout=timedelta(minutes=2),
            retry_policy=retry,
        )
        await workflow.execute_activity("mark_app_deleted", inp, start_to_close_timeout=timedelta(seconds=30),
                                        retry_policy=retry)
        return deleted
