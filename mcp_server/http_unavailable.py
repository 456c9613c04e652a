"""The HTTP answer when the database is down: every request needs it before any tool runs (the bearer token
is looked up in it), so `StoreUnavailable` would otherwise escape the SDK's authentication as a bare 500.

An ASGI middleware around the whole app: the client gets 503, a `Retry-After`, and the same text a tool
answers (`tools.errors.from_store`), as an OAuth-style error body.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tools.errors import from_store
from tools.ports import StoreUnavailable

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 60  # the message says "in a minute"


class StoreUnavailableResponse:
    """ASGI middleware: a request cut by an unreachable database, before its response started, answers 503."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except StoreUnavailable as e:
            if started:
                raise
            log.warning("answered 503: %s", e)
            body = json.dumps({"error": "temporarily_unavailable", "error_description": str(from_store(e))}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]})
            await send({"type": "http.response.body", "body": body})
