"""Step-up (MCP authorization, "scope challenge"): a `tools/call` of a tool whose scope an OAuth token lacks is
answered at the HTTP layer, 403 with `WWW-Authenticate: Bearer error="insufficient_scope", scope="..."`
naming the scopes the token has plus the one needed, so the client can ask the user for them and retry (the
SDK's OAuth client does).

Only for OAuth access tokens (ours, or an external OIDC issuer's: its client asks that issuer): an API token
cannot ask for more, so its callers keep the tool-level refusal
(an error result naming the scope), as before."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_INSPECTED = 1 << 20  # a larger body passes unread: the tool-level scope check still refuses it

# (tool, arguments, token, needed scope): what to record of a refused call
OnRefused = Callable[[str, dict[str, Any], AccessToken, str], Awaitable[None]]


class ScopeChallenge:
    def __init__(self, app: ASGIApp, tool_scopes: Mapping[str, str], resource_metadata_url: str,
                 on_refused: OnRefused) -> None:
        self.app = app
        self.tool_scopes = tool_scopes
        self.resource_metadata_url = resource_metadata_url
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        token = user.access_token if isinstance(user, AuthenticatedUser) else None
        if scope["type"] != "http" or scope.get("method") != "POST" or token is None or \
                (token.claims or {}).get("via") not in ("http-oauth", "http-oidc"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size, more = 0, True
        while more and size <= MAX_INSPECTED:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            more = bool(message.get("more_body", False))
        if not more and messages and messages[-1]["type"] == "http.request":
            call = _tool_call(b"".join(m.get("body", b"") for m in messages))
            needed = self.tool_scopes.get(call[0]) if call else None
            if call and needed and needed not in token.scopes:
                await self.on_refused(call[0], call[1], token, needed)
                await self._challenge(send, sorted({*token.scopes, needed}), needed)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _challenge(self, send: Send, scopes: list[str], needed: str) -> None:
        description = f"this tool needs scope {needed}"
        header = (f'Bearer error="insufficient_scope", scope="{" ".join(scopes)}", '
                  f'resource_metadata="{self.resource_metadata_url}", error_description="{description}"')
        body = json.dumps({"error": "insufficient_scope", "error_description": description}).encode()
        await send({"type": "http.response.start", "status": 403, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", header.encode())]})
        await send({"type": "http.response.body", "body": body})


def _tool_call(body: bytes) -> tuple[str, dict[str, Any]] | None:
    try:
        msg = json.loads(body)
    except ValueError:
        return None
    if not isinstance(msg, dict) or msg.get("method") != "tools/call" or not isinstance(msg.get("params"), dict):
        return None
    name, args = msg["params"].get("name"), msg["params"].get("arguments") or {}
    return (name, args) if isinstance(name, str) and isinstance(args, dict) else None
