"""Who is calling. Over stdio: the local operator named in the settings. Over HTTP: a bearer API token,
looked up by its SHA-256 in `api_tokens`; an unknown, revoked or expired token gets 401 before any tool runs.
With `oauth.enabled`, the OAuth provider (`mcp_server.oauth.provider`) verifies these and its own access
tokens; its principals say `via="http-oauth"`. With `oauth.oidc.issuer`, `mcp_server.oauth.oidc` verifies an external
issuer's JWTs and these; its principals say `via="http-oidc"`.

A verifier answers the SDK with a token or None, so the reason of a refusal would be lost: `note_refusal`
hands it to the refused-authentication middleware (`auth_audit.py`), which records it and says it in the 401's
`WWW-Authenticate`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from mcp_server.settings import ALL_SCOPES, OPERATOR_SCOPES, TOOLSETS, Settings
from tools.context import Principal

TOKEN_PREFIX = "dmcp_"  # noqa: S105 (a prefix, not a secret)
# A token's own budgets (api_tokens columns, NULL: the settings'), carried in its claims to the rate limiter.
TOKEN_LIMITS = ("calls_per_minute", "concurrent_waits")


class TokenStore(Protocol):
    """The token queries the auth layer needs (`mcp_server.store.PgStore` implements them)."""

    async def create_token(
        self, tenant: str, subject: str, scopes: list[str], token: str, expires_at: datetime | None,
        read_only: bool = False, toolsets: list[str] | None = None,
    ) -> UUID: ...

    async def find_token(self, token: str) -> dict[str, Any] | None:
        """The live token row (id, tenant, subject, scopes, expires_at, and `TOKEN_LIMITS`, None where the
        settings apply) for `token`; None if unknown, revoked or expired."""
        ...


def new_token() -> str:
    """`dmcp_` + 256 random bits: the prefix lets secret scanners and our own redaction recognise it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def check_scopes(scopes: list[str]) -> list[str]:
    known = (*ALL_SCOPES, *OPERATOR_SCOPES)
    unknown = sorted(set(scopes) - set(known))
    if unknown:
        raise ValueError(f"unknown scope(s) {unknown}; known scopes: {list(known)}")
    return sorted(set(scopes))


def check_toolsets(toolsets: list[str]) -> list[str]:
    unknown = sorted(set(toolsets) - set(TOOLSETS))
    if unknown:
        raise ValueError(f"unknown toolset(s) {unknown}; known toolsets: {list(TOOLSETS)}")
    return sorted(set(toolsets))


async def create_token(
    store: TokenStore, tenant: str, subject: str, scopes: list[str], expires_at: datetime | None = None,
    read_only: bool = False, toolsets: list[str] | None = None,
) -> str:
    """A new token; `read_only` and `toolsets` narrow the tools it is offered below what its scopes allow."""
    token = new_token()
    await store.create_token(tenant, subject, check_scopes(scopes), token, expires_at, read_only,
                             check_toolsets(toolsets) if toolsets is not None else None)
    return token


class ApiTokenVerifier:
    """`mcp.server.auth.provider.TokenVerifier` over the `api_tokens` table."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        row = await self.store.find_token(token)
        if row is None:
            return None
        expires = row["expires_at"]
        return AccessToken(
            token=token,
            client_id=f"token:{row['id']}",
            scopes=list(row["scopes"]),
            expires_at=int(expires.timestamp()) if expires else None,
            subject=row["subject"],
            claims={"tenant": row["tenant"], **{k: row[k] for k in TOKEN_LIMITS if row.get(k) is not None},
                    **({"read_only": True} if row.get("read_only") else {}),
                    **({"toolsets": list(row["toolsets"])} if row.get("toolsets") is not None else {})},
        )


def operator_principal(settings: Settings, via: str = "stdio") -> Principal:
    op = settings.operator
    return Principal(tenant=op.tenant, subject=op.subject, scopes=frozenset(op.scopes), via=via)


def principal_from_request() -> Principal | None:
    """The principal of the HTTP request being served, or None outside an authenticated request."""
    token = get_access_token()
    if token is None or not token.claims or "tenant" not in token.claims:
        return None
    return Principal(
        tenant=str(token.claims["tenant"]),
        subject=token.subject or token.client_id,
        scopes=frozenset(token.scopes),
        via=str(token.claims.get("via", "http-token")),
        read_only=bool(token.claims.get("read_only", False)),
        toolsets=frozenset(token.claims["toolsets"]) if "toolsets" in token.claims else None,
    )


@dataclass(frozen=True)
class TokenRefusal:
    """Why a verifier refused a token: `reason` is an `auth_refusals.reason`, `description` what the client is
    told (never the token, nor a claim's value a stranger chose), `tenant` the token's if it was signed
    properly."""

    reason: str
    description: str
    tenant: str | None = None


_refusals: ContextVar[list[TokenRefusal] | None] = ContextVar("token_refusals", default=None)


@contextmanager
def refusal_notes() -> Iterator[list[TokenRefusal]]:
    """Collect the refusals noted while one request is authenticated (a mutable list: the verifier runs below
    the middleware that opens this, in the same context)."""
    notes: list[TokenRefusal] = []
    reset = _refusals.set(notes)
    try:
        yield notes
    finally:
        _refusals.reset(reset)


def note_refusal(refusal: TokenRefusal) -> None:
    notes = _refusals.get()
    if notes is not None:
        notes.append(refusal)
