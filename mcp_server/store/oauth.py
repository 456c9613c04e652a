"""The OAuth authorization server's rows (`mcp_server.oauth`): registered clients, logins under way, grants
and their codes and tokens. Codes and tokens are found by their SHA-256, as API tokens are; every change that
must happen once (a code exchanged, a refresh token rotated) is a single conditional UPDATE, so two racing
requests cannot both win."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from mcp_server.store.projects import PgProjects
from mcp_server.store.tokens import token_hash

_GRANT = "g.id AS grant_id, g.client_id, t.name AS tenant, g.subject, g.resource"


class PgOAuth(PgProjects):
    async def save_oauth_client(self, client_id: str, info: dict[str, Any]) -> None:
        # an upsert for client metadata documents, fetched again on each use (registered ids are fresh UUIDs)
        await self._one("INSERT INTO oauth_clients (client_id, info) VALUES (%s, %s) ON CONFLICT (client_id) "
                        "DO UPDATE SET info = EXCLUDED.info RETURNING client_id", client_id, Jsonb(info))

    async def sweep_oauth_clients(self) -> int:
        """Delete the clients registered over a day ago that never got a grant and have no login under way
        (registration is open to anyone: what was registered and never used does not stay)."""
        row = await self._one(
            "WITH d AS (DELETE FROM oauth_clients c WHERE c.created_at < now() - interval '1 day' "
            "AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = c.client_id) "
            "AND NOT EXISTS (SELECT 1 FROM oauth_logins l WHERE l.client_id = c.client_id) RETURNING 1) "
            "SELECT count(*) AS swept FROM d")
        return int(row["swept"]) if row else 0

    async def oauth_client(self, client_id: str) -> dict[str, Any] | None:
        row = await self._one("SELECT info FROM oauth_clients WHERE client_id = %s", client_id)
        return dict(row["info"]) if row else None

    async def start_oauth_login(self, login_id: str, client_id: str, params: dict[str, Any],
                                expires_at: datetime) -> None:
        # Each new login sweeps what expired: logins at once; codes and tokens a day late, so that a replay
        # soon after expiry still finds its row (and revokes the grant) instead of looking unknown.
        await self._one(
            "WITH l AS (DELETE FROM oauth_logins WHERE expires_at < now() RETURNING 1), "
            "c AS (DELETE FROM oauth_codes WHERE expires_at < now() - interval '1 day' RETURNING 1), "
            "t AS (DELETE FROM oauth_tokens WHERE expires_at < now() - interval '1 day' RETURNING 1) "
            "SELECT (SELECT count(*) FROM l) + (SELECT count(*) FROM c) + (SELECT count(*) FROM t) AS swept")
        await self._one(
            "INSERT INTO oauth_logins (id_hash, client_id, params, expires_at) VALUES (%s, %s, %s, %s) "
            "RETURNING client_id", token_hash(login_id), client_id, Jsonb(params), expires_at)

    async def identify_oauth_login(self, login_id: str, tenant: str, subject: str, scopes: list[str],
                                   consent: str) -> bool:
        """Record who signed in for a live login that nobody signed in for yet, and the nonce of the consent
        page they are shown."""
        row = await self._one(
            "UPDATE oauth_logins SET tenant = %s, subject = %s, scopes = %s, consent_hash = %s WHERE id_hash = %s "
            "AND subject IS NULL AND expires_at > now() RETURNING client_id",
            tenant, subject, scopes, token_hash(consent), token_hash(login_id))
        return row is not None

    async def oauth_login(self, login_id: str) -> dict[str, Any] | None:
        """A live login (client_id, params, and tenant/subject/scopes once identified)."""
        return await self._one(
            "SELECT client_id, params, tenant, subject, scopes FROM oauth_logins "
            "WHERE id_hash = %s AND expires_at > now()", token_hash(login_id))

    async def end_oauth_login(self, login_id: str, consent: str | None) -> dict[str, Any] | None:
        """Take a live login away: an identified one with its consent page's nonce (consent is given or refused
        once), or, with `consent` None, one refused before consent."""
        if consent is None:
            return await self._one("DELETE FROM oauth_logins WHERE id_hash = %s RETURNING client_id",
                                   token_hash(login_id))
        return await self._one(
            "DELETE FROM oauth_logins WHERE id_hash = %s AND consent_hash = %s AND expires_at > now() "
            "RETURNING client_id, params, tenant, subject, scopes", token_hash(login_id), token_hash(consent))

    async def create_oauth_grant(
        self, client_id: str, tenant: str, subject: str, scopes: list[str], resource: str | None, *,
        code: str, code_challenge: str, redirect_uri: str, redirect_uri_explicit: bool, expires_at: datetime,
    ) -> UUID:
        t = await self.ensure_tenant(tenant)
        row = await self._one(
            "WITH g AS (INSERT INTO oauth_grants (client_id, tenant_id, subject, scopes, resource) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id) "
            "INSERT INTO oauth_codes (code_hash, grant_id, code_challenge, redirect_uri, redirect_uri_explicit, "
            "expires_at) SELECT %s, g.id, %s, %s, %s, %s FROM g RETURNING grant_id",
            client_id, t.id, subject, scopes, resource,
            token_hash(code), code_challenge, redirect_uri, redirect_uri_explicit, expires_at)
        assert row is not None
        return UUID(str(row["grant_id"]))

    async def oauth_code(self, code: str) -> dict[str, Any] | None:
        """The code's row with its grant's (grant_id, client_id, tenant, subject, resource, scopes, used,
        revoked), whatever its state: the caller tells a replayed code from an unknown one."""
        return await self._one(
            f"SELECT {_GRANT}, g.scopes, c.code_challenge, c.redirect_uri, c.redirect_uri_explicit, c.expires_at, "
            "c.used_at IS NOT NULL AS used, g.revoked_at IS NOT NULL AS revoked "
            "FROM oauth_codes c JOIN oauth_grants g ON g.id = c.grant_id JOIN tenants t ON t.id = g.tenant_id "
            "WHERE c.code_hash = %s", token_hash(code))

    async def use_oauth_code(self, code: str) -> bool:
        row = await self._one(
            "UPDATE oauth_codes SET used_at = now() WHERE code_hash = %s AND used_at IS NULL "
            "AND expires_at > now() RETURNING grant_id", token_hash(code))
        return row is not None

    async def revoke_oauth_grant(self, grant_id: UUID) -> None:
        await self._one("UPDATE oauth_grants SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s "
                        "RETURNING id", grant_id)

    async def add_oauth_token(self, grant_id: UUID, kind: str, token: str, scopes: list[str],
                              expires_at: datetime) -> None:
        await self._one(
            "INSERT INTO oauth_tokens (token_hash, grant_id, kind, scopes, expires_at) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING grant_id", token_hash(token), grant_id, kind, scopes, expires_at)

    async def oauth_token(self, token: str, kind: str) -> dict[str, Any] | None:
        """The token's row with its grant's, whatever its state (live: not `used`, `revoked` or `expired`)."""
        return await self._one(
            f"SELECT {_GRANT}, k.scopes, k.expires_at, k.used_at IS NOT NULL AS used, "
            "(k.revoked_at IS NOT NULL OR g.revoked_at IS NOT NULL) AS revoked, k.expires_at <= now() AS expired "
            "FROM oauth_tokens k JOIN oauth_grants g ON g.id = k.grant_id JOIN tenants t ON t.id = g.tenant_id "
            "WHERE k.token_hash = %s AND k.kind = %s", token_hash(token), kind)

    async def use_oauth_refresh_token(self, token: str) -> bool:
        """Rotate: mark a live refresh token used, once."""
        row = await self._one(
            "UPDATE oauth_tokens SET used_at = now() WHERE token_hash = %s AND kind = 'refresh' "
            "AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() RETURNING grant_id",
            token_hash(token))
        return row is not None
