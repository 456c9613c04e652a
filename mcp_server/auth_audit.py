"""Refused authentications leave a trace: every HTTP 401 of the MCP endpoint writes an `auth_refusals` row
with the remote address, the reason and, when the token has the platform's format, its first characters
(as `api_tokens.prefix` keeps them); never the token itself.

Reasons: `missing` (no Authorization header), `malformed` (not `Bearer <token>`, or a token not of the
`dmcp_` format), `unknown` (no such token), `revoked`, `expired`; for an external issuer's JWT
(`mcp_server.oauth.oidc`), the reason its verifier noted (`OIDC_REASONS`), which the 401's `WWW-Authenticate`
then also says (`error="invalid_token", error_description=...`).

Rate limit, so a flood cannot fill the table: at most `rate_limits.refused_auth_rows_per_minute` rows per
remote address per minute (a fixed window starting at the address's first refusal). Past it, refusals are
only counted, and once the window is over one row with reason `dropped` and `dropped = <count>` says how
many were not written. That summary is written at the next refusal from any address after the window ends
(so a flood that stops leaves its summary at the next refusal, and one still running every minute); when
the server stops, the counts of windows still open are lost. Past `MAX_TRACKED` addresses, the others share
one window under the address `*`, so memory stays bounded too. A refusal over the budget costs no query: the
token is not looked up to classify it. Each server process keeps its own windows.

An ASGI middleware around the SDK's app (outside its authentication middleware), because only there are
the remote address and the 401 both known; the row is written after the response is sent, and a failure to
write it is logged, never turned into another error for the caller.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_server.auth import TOKEN_PREFIX, TokenRefusal, refusal_notes

log = logging.getLogger(__name__)

MAX_TRACKED = 10_000
OVERFLOW = "*"
PREFIX_CHARS = 12  # what api_tokens.prefix keeps: `dmcp_` and 7 characters of 256 random bits
_TOKEN_FORMAT = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{1,195}")
_DESCRIPTION = re.compile(rb'error_description="[^"]*"')
# what an external issuer's token is refused for (migration 0017 admits them), besides `malformed`, `expired`
OIDC_REASONS = ("wrong_issuer", "wrong_audience", "bad_signature", "unknown_key", "algorithm", "invalid_claims",
                "no_tenant", "no_rule", "keys_unavailable")


class RefusalStore(Protocol):
    async def token_refusal(self, token: str) -> tuple[str, str | None]: ...

    async def record_auth_refusal(self, remote_addr: str | None, reason: str, token_prefix: str | None = None,
                                  tenant: str | None = None, dropped: int = 0) -> None: ...


@dataclass
class _Window:
    start: float
    written: int = 0
    dropped: int = 0


class RefusalBudget:
    """Rows per address per window; `clock` and `period` are injectable so tests need not wait a minute."""

    def __init__(self, per_window: int, period: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window, self.period, self.clock = per_window, period, clock
        self._windows: dict[str, _Window] = {}

    def admit(self, addr: str) -> tuple[bool, list[tuple[str, int]]]:
        """(write this refusal's row?, the (address, dropped) summaries of windows that ended)."""
        now = self.clock()
        ended = [a for a, w in self._windows.items() if now - w.start >= self.period]
        summaries = [(a, self._windows[a].dropped) for a in ended if self._windows[a].dropped]
        for a in ended:
            del self._windows[a]
        if addr not in self._windows and len(self._windows) >= MAX_TRACKED:
            addr = OVERFLOW
        w = self._windows.setdefault(addr, _Window(now))
        if w.written < self.per_window:
            w.written += 1
            return True, summaries
        w.dropped += 1
        return False, summaries


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            return bytes(value).decode("latin-1")
    return None


class RefusedAuthAudit:
    """ASGI middleware: after a 401 is sent, record why (within the budget)."""

    def __init__(self, app: ASGIApp, store: RefusalStore, budget: RefusalBudget) -> None:
        self.app, self.store, self.budget = app, store, budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        with refusal_notes() as notes:
            async def watch(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                    if message["status"] == 401 and notes:
                        message = {**message, "headers": _explained(message.get("headers", []), notes[0])}
                await send(message)

            await self.app(scope, receive, watch)
        if status and status[0] == 401:
            try:
                await self._record(scope, notes[0] if notes else None)
            except Exception:
                log.exception("could not record a refused authentication")

    async def _record(self, scope: Scope, noted: TokenRefusal | None = None) -> None:
        client = scope.get("client")
        addr = str(client[0]) if client else "unknown"
        write, summaries = self.budget.admit(addr)
        for other, dropped in summaries:
            await self.store.record_auth_refusal(other, "dropped", dropped=dropped)
        if not write:
            return
        header = _bearer(scope)
        prefix: str | None = None
        tenant: str | None = None
        if noted is not None:
            reason, tenant = noted.reason, noted.tenant
        elif header is None:
            reason = "missing"
        else:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not _TOKEN_FORMAT.fullmatch(token):
                reason = "malformed"
            else:
                prefix = token[:PREFIX_CHARS]
                reason, tenant = await self.store.token_refusal(token)
        await self.store.record_auth_refusal(addr, reason, prefix, tenant)


def _explained(headers: list[tuple[bytes, bytes]], refusal: TokenRefusal) -> list[tuple[bytes, bytes]]:
    """The SDK's challenge (`error="invalid_token"`, its resource metadata URL) with the verifier's reason as
    its description (RFC 6750 §3: quotes and backslashes are not allowed in it)."""
    text = refusal.description.replace('"', "'").replace("\\", "/").encode("ascii", "replace")
    out = []
    for name, value in headers:
        if name.lower() == b"www-authenticate":
            value = _DESCRIPTION.sub(lambda _: b'error_description="' + text + b'"', bytes(value), count=1)
        out.append((name, value))
    return out
