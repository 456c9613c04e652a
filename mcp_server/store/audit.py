"""The audit trail: one row per tool call (arguments already redacted by the server), read back newest first
by the tenant it belongs to; and the refused authentications, which name no tool (`auth_refusals`)."""

from __future__ import annotations

from datetime import datetime

from psycopg.types.json import Jsonb

from mcp_server.store.pool import PgPool
from tools.records import AuditEvent


class PgAudit(PgPool):
    async def record_audit(self, event: AuditEvent) -> None:
        await self._one(
            "INSERT INTO audit_events (tenant, principal, transport, tool, request_id, arguments, outcome, error, "
            "workflow_id, k8s_refs, duration_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            event.tenant, event.principal, event.transport, event.tool, event.request_id,
            Jsonb(event.arguments), event.outcome, event.error, event.workflow_id, Jsonb(event.k8s_refs),
            event.duration_ms,
        )

    async def list_audit(
        self, tenant: str, tool: str | None, since: datetime | None, before_id: int | None, limit: int
    ) -> list[AuditEvent]:
        rows = await self._all(
            "SELECT * FROM audit_events WHERE tenant = %s AND (%s::text IS NULL OR tool = %s) "
            "AND (%s::timestamptz IS NULL OR at >= %s) AND (%s::bigint IS NULL OR id < %s) "
            "ORDER BY id DESC LIMIT %s",
            tenant, tool, tool, since, since, before_id, before_id, limit,
        )
        return [AuditEvent.model_validate(r) for r in rows]

    async def record_auth_refusal(self, remote_addr: str | None, reason: str, token_prefix: str | None = None,
                                  tenant: str | None = None, dropped: int = 0) -> None:
        """One refused authentication, or (reason `dropped`) how many of one address were not written."""
        await self._one(
            "INSERT INTO auth_refusals (remote_addr, reason, token_prefix, tenant, dropped) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            remote_addr, reason, token_prefix, tenant, dropped,
        )
