"""What `scale` records: the app's replica count or autoscaler (`apps.scale`, migration 0014), written under
the app's row lock, the lock the reconciler's passes and `create_release` take, so a scale never interleaves
with a release being recorded or a reconcile pass writing to the cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from psycopg.types.json import Jsonb

from mcp_server.store.observations import PgObservations
from workflows.domain.reconcile_contract import ReconcileTarget
from workflows.domain.scaling import AppScale

LOCK_WAIT = "20s"
"""How long a scale waits for the app's row lock (a reconcile pass holds it a few seconds); the activity's
retry tries again after."""


class PgScaling(PgObservations):
    @asynccontextmanager
    async def scale_lock(self, app_id: UUID) -> AsyncIterator[ReconcileTarget]:
        """The app's desired state with its row locked until the block ends; unlike the reconciler, waits for
        the lock (a scale is asked for, not periodic). `gone` for a deleted app."""
        async with self._transaction() as conn:
            await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
            row = await self._one("SELECT id FROM apps WHERE id = %s AND deleted_at IS NULL AND status <> 'deleting' "
                                  "FOR UPDATE", app_id)
            if row is None:
                yield ReconcileTarget(state="gone", app_id=app_id)
                return
            yield await self._target(app_id)

    async def record_scale(self, app_id: UUID, scale: AppScale) -> None:
        """Record the app's scale; a fixed count also becomes the app's configured `replicas`, which the next
        deploy starts from."""
        await self._one(
            "UPDATE apps SET scale = %s, updated_at = now(), spec = CASE WHEN %s::int IS NULL THEN spec "
            "ELSE jsonb_set(spec, '{replicas}', to_jsonb(%s::int)) END WHERE id = %s RETURNING id",
            Jsonb(scale.model_dump(mode="json", exclude_none=True)), scale.replicas, scale.replicas, app_id)
