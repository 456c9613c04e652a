"""`get_audit_log`: every tool call of your tenant, newest first, secret values redacted."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from tools.context import call, tool
from tools.errors import InvalidInput
from tools.records import AuditEvent


class AuditEntry(BaseModel):
    id: int
    at: datetime
    principal: str
    tool: str
    outcome: str = Field(description="ok, planned (plan=true: nothing changed), error, denied or invalid.")
    arguments: dict[str, Any] = Field(description="Arguments as called, secret values redacted.")
    error: str | None
    workflow_id: str | None
    k8s_refs: list[str]
    request_id: str | None
    duration_ms: int


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for older entries; null at the end.")


def _encode_cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(f"a:{event_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "a":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput("cursor", "is not a cursor this tool returned", "pass `next_cursor` unchanged") from e


def shown_outcome(r: AuditEvent) -> str:
    """`planned` for a plan that answered (decision 0021): stored as ok with `plan: true` in its arguments, which
    the audit table's outcome check (migration 0001) keeps to ok/error/denied/invalid."""
    return "planned" if r.outcome == "ok" and r.arguments.get("plan") is True else r.outcome


@tool(title="Read the audit log", scope="audit:read", read_only=True, idempotent=True)
async def get_audit_log(
    tool: Annotated[str | None, Field(max_length=64)] = None,
    since: Annotated[datetime | None, Field(description="ISO 8601.")] = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Field(description="`next_cursor` of the previous page.", max_length=200)] = None,
) -> AuditPage:
    """Your tenant's audit log, newest first: who called which tool, with what outcome."""
    c = call()
    before = _decode_cursor(cursor) if cursor else None
    rows = await c.store.list_audit(c.principal.tenant, tool, since, before, limit + 1)
    page = rows[:limit]
    entries = [
        AuditEntry(
            id=r.id or 0, at=r.at or datetime.min, principal=r.principal, tool=r.tool, outcome=shown_outcome(r),
            arguments=r.arguments, error=r.error, workflow_id=r.workflow_id, k8s_refs=r.k8s_refs,
            request_id=r.request_id, duration_ms=r.duration_ms,
        )
        for r in page
    ]
    more = len(rows) > limit and page
    return AuditPage(entries=entries, next_cursor=_encode_cursor(page[-1].id or 0) if more else None)
