"""API tokens: stored as their SHA-256 only (plus a short prefix to recognise them in a list), found by hash
for each HTTP request, revoked by id. The auth layer's `TokenStore`."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from mcp_server.store.projects import PgProjects

LAST_USED_PRECISION = timedelta(minutes=1)  # `last_used_at` is at most this much older than the last request


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class PgTokens(PgProjects):
    async def create_token(
        self, tenant: str, subject: str, scopes: list[str], token: str, expires_at: datetime | None,
        read_only: bool = False, toolsets: list[str] | None = None,
    ) -> UUID:
        t = await self.ensure_tenant(tenant)
        row = await self._one(
            "INSERT INTO api_tokens (tenant_id, subject, scopes, token_hash, prefix, expires_at, read_only, toolsets) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            t.id, subject, scopes, token_hash(token), token[:12], expires_at, read_only, toolsets,
        )
        assert row is not None
        return UUID(str(row["id"]))

    async def find_token(self, token: str) -> dict[str, Any] | None:
        """The live token row (tenant, subject, scopes, its own rate limits or None) for `token`; None if
        unknown, revoked or expired. `last_used_at` is touched when it is older than `LAST_USED_PRECISION`:
        touched on every request, the token's row lock would queue each concurrent call of one token behind
        the others (an agent fanning out 100 calls waited ~0.5 s for it), while a minute is precise enough
        to tell a token in use from a forgotten one. Under the lock Postgres re-checks the age, so concurrent
        requests touch it once."""
        return await self._one(
            "WITH live AS (SELECT k.id, t.name AS tenant, k.subject, k.scopes, k.expires_at, k.calls_per_minute, "
            "k.concurrent_waits, k.read_only, k.toolsets, k.last_used_at FROM api_tokens k "
            "JOIN tenants t ON t.id = k.tenant_id WHERE k.token_hash = %s AND k.revoked_at IS NULL "
            "AND (k.expires_at IS NULL OR k.expires_at > now())), "
            "touched AS (UPDATE api_tokens SET last_used_at = now() WHERE id IN (SELECT id FROM live) "
            "AND (last_used_at IS NULL OR last_used_at < now() - %s) RETURNING id) "
            "SELECT id, tenant, subject, scopes, expires_at, calls_per_minute, concurrent_waits, read_only, toolsets "
            "FROM live",
            token_hash(token), LAST_USED_PRECISION,
        )

    async def token_refusal(self, token: str) -> tuple[str, str | None]:
        """Why `token` is refused, and its tenant when it is known: `unknown`, `revoked` or `expired`
        (`unknown` too for a live token, which only a revocation racing the request can refuse)."""
        # API tokens and OAuth access tokens (`mcp_server.oauth`) both: the same prefix, the same hash
        row = await self._one(
            "SELECT t.name AS tenant, k.revoked_at IS NOT NULL AS revoked, "
            "coalesce(k.expires_at <= now(), false) AS expired FROM api_tokens k JOIN tenants t ON t.id = k.tenant_id "
            "WHERE k.token_hash = %s "
            "UNION ALL SELECT t.name, k.revoked_at IS NOT NULL OR g.revoked_at IS NOT NULL, k.expires_at <= now() "
            "FROM oauth_tokens k JOIN oauth_grants g ON g.id = k.grant_id JOIN tenants t ON t.id = g.tenant_id "
            "WHERE k.token_hash = %s AND k.kind = 'access'", token_hash(token), token_hash(token),
        )
        if row is None:
            return "unknown", None
        return ("revoked" if row["revoked"] else "expired" if row["expired"] else "unknown"), row["tenant"]

    async def revoke_token(self, token_id: UUID) -> bool:
        row = await self._one(
            "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id", token_id
        )
        return row is not None

    async def list_tokens(self, tenant: str | None) -> list[dict[str, Any]]:
        return await self._all(
            "SELECT k.id, t.name AS tenant, k.subject, k.scopes, k.prefix, k.created_at, k.expires_at, "
            "k.last_used_at, k.revoked_at, k.read_only, k.toolsets "
            "FROM api_tokens k JOIN tenants t ON t.id = k.tenant_id "
            "WHERE (%s::text IS NULL OR t.name = %s) ORDER BY k.created_at",
            tenant, tenant,
        )
