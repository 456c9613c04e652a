"""The one path an app is deleted by, whether `delete_app` asked or its pull request closed (decision 0020):
the app marked deleting, its push-deploy connection removed (its hook answers as unknown), its releases in
flight cancelled and its delete workflow started; and the pull request previews of an app, which go with it.
Here rather than in `tools.apps` because `tools.push_deploys` takes the same path and `tools.apps` needs the
previews."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from tools.context import CallContext
from tools.databases import database_for_app_delete
from tools.records import AppRecord
from workflows.domain.delete_contract import DeleteAppInput
from workflows.domain.workflow_ids import delete_workflow_id


@dataclass(frozen=True)
class Preview:
    number: int
    app: AppRecord


def app_refs(row: AppRecord) -> list[str]:
    """What the delete workflow removes, as the audit row names it."""
    ns, app = row.namespace, row.name
    return [f"Service/{ns}/{app}", f"Ingress/{ns}/{app}", f"Deployment/{ns}/{app}-r*", f"Secret/{ns}/{app}-r*-env"]


async def stop_app(c: CallContext, row: AppRecord) -> None:
    """The app marked deleting and disconnected: from here no webhook delivery acts on it (`git_hooks` refuses a
    deleting app's hook, and the hook is gone)."""
    await c.store.mark_app_deleting(row.id)
    await c.store.disconnect_push(row.id)


async def start_app_delete(c: CallContext, row: AppRecord) -> str:
    """Stop the app, cancel its releases in flight and start its delete workflow; its workflow id. Again for an
    app already deleting finds the same workflow (its id is the app's)."""
    workflows = c.require_workflows()
    await stop_app(c, row)
    for d in await c.store.in_flight(row.id):
        await workflows.cancel(d.workflow_id)
    wf_id = delete_workflow_id(row.tenant, row.project, row.name, row.id)
    await workflows.start_delete(wf_id, DeleteAppInput(app_id=row.id, namespace=row.namespace, app=row.name))
    return wf_id


async def previews_of(c: CallContext, parent: AppRecord) -> list[Preview]:
    """The app's previews not yet deleted, by pull request number. One already deleting is among them while its
    row is recorded: its delete was started, perhaps not to the end, and starting it again is harmless."""
    found = []
    for number, app_id in await c.store.preview_apps(parent.id):
        row = await c.store.get_app_by_id(app_id)
        if row is not None and row.status != "deleted":
            found.append(Preview(number, row))
    return found


async def delete_preview(c: CallContext, parent_id: UUID, preview: Preview) -> tuple[str, list[str]]:
    """A preview deleted as its pull request's closing deletes it: a database someone attached to it is kept,
    detached (never deleted with a preview), then the delete workflow, then its pull request forgotten. The
    workflow id and the refs for the audit row."""
    kept = await database_for_app_delete(c, preview.app, "detach", 0)
    wf_id = await start_app_delete(c, preview.app)
    await c.store.remove_preview_app(parent_id, preview.number)
    return wf_id, app_refs(preview.app) + kept
