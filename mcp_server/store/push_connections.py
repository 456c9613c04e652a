"""Deploy on push: the apps connected to a branch (their hook id and sealed webhook secret), the deliveries each
hook received (by the provider's delivery id, which is how a replay is told apart) and the pull requests'
preview apps."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from mcp_server.store.pool import PgPool
from tools.records import DeliveryOutcome, PushConnection


class PgPushConnections(PgPool):
    @staticmethod
    def _push_connection(row: dict[str, Any]) -> PushConnection:
        return PushConnection.model_validate(row | {"ciphertext": bytes(row["ciphertext"])})

    async def connect_push(self, app_id: UUID, hook_id: str, branch: str, previews: bool, previews_secrets: bool,
                           ciphertext: bytes, created_by: str) -> PushConnection:
        """Connect the app (or replace its connection: a new hook id and secret)."""
        row = await self._one(
            "INSERT INTO push_connections (app_id, hook_id, branch, previews, previews_secrets, ciphertext, "
            "created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (app_id) DO UPDATE SET "
            "hook_id = excluded.hook_id, branch = excluded.branch, previews = excluded.previews, "
            "previews_secrets = excluded.previews_secrets, ciphertext = excluded.ciphertext, "
            "created_by = excluded.created_by, created_at = now() RETURNING *",
            app_id, hook_id, branch, previews, previews_secrets, ciphertext, created_by)
        assert row is not None
        return self._push_connection(row)

    async def disconnect_push(self, app_id: UUID) -> bool:
        return await self._one("DELETE FROM push_connections WHERE app_id = %s RETURNING app_id", app_id) is not None

    async def push_connection(self, app_id: UUID) -> PushConnection | None:
        row = await self._one("SELECT * FROM push_connections WHERE app_id = %s", app_id)
        return self._push_connection(row) if row else None

    async def push_connection_by_hook(self, hook_id: str) -> PushConnection | None:
        row = await self._one("SELECT * FROM push_connections WHERE hook_id = %s", hook_id)
        return self._push_connection(row) if row else None

    async def claim_delivery(self, hook_id: str, delivery_id: str, provider: str, event: str) -> bool:
        """Record a signed delivery as received; False when its id was seen before and did not fail on the
        platform's side (a replay). A failed one is claimed again, so the provider's redelivery is processed."""
        row = await self._one(
            "INSERT INTO webhook_deliveries (hook_id, delivery_id, provider, event, outcome) "
            "VALUES (%s, %s, %s, %s, 'received') ON CONFLICT (hook_id, delivery_id) DO UPDATE "
            "SET outcome = 'received', detail = NULL, received_at = now() "
            "WHERE webhook_deliveries.outcome = 'failed' RETURNING delivery_id",
            hook_id, delivery_id, provider, event)
        return row is not None

    async def finish_delivery(self, hook_id: str, delivery_id: str, outcome: DeliveryOutcome,
                              detail: str | None) -> None:
        await self._one(
            "UPDATE webhook_deliveries SET outcome = %s, detail = %s WHERE hook_id = %s AND delivery_id = %s "
            "RETURNING delivery_id", outcome, detail, hook_id, delivery_id)

    async def delivery_outcome(self, hook_id: str, delivery_id: str) -> tuple[DeliveryOutcome, str | None] | None:
        row = await self._one("SELECT outcome, detail FROM webhook_deliveries WHERE hook_id = %s AND "
                              "delivery_id = %s", hook_id, delivery_id)
        return (row["outcome"], row["detail"]) if row else None

    async def preview_app_id(self, parent_app_id: UUID, pr_number: int) -> UUID | None:
        row = await self._one("SELECT app_id FROM preview_apps WHERE parent_app_id = %s AND pr_number = %s",
                              parent_app_id, pr_number)
        return UUID(str(row["app_id"])) if row else None

    async def preview_apps(self, parent_app_id: UUID) -> list[tuple[int, UUID]]:
        """The app's pull requests with a recorded preview: (number, preview app id), by number."""
        rows = await self._all("SELECT pr_number, app_id FROM preview_apps WHERE parent_app_id = %s "
                               "ORDER BY pr_number", parent_app_id)
        return [(int(r["pr_number"]), UUID(str(r["app_id"]))) for r in rows]

    async def set_preview_app(self, parent_app_id: UUID, pr_number: int, app_id: UUID) -> None:
        await self._one(
            "INSERT INTO preview_apps (parent_app_id, pr_number, app_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (parent_app_id, pr_number) DO UPDATE SET app_id = excluded.app_id RETURNING app_id",
            parent_app_id, pr_number, app_id)

    async def remove_preview_app(self, parent_app_id: UUID, pr_number: int) -> None:
        await self._one("DELETE FROM preview_apps WHERE parent_app_id = %s AND pr_number = %s RETURNING app_id",
                        parent_app_id, pr_number)
