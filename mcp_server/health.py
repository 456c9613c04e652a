"""Liveness and readiness, the two paths the kubelet probes: `GET /healthz` (the process answers: 200) and
`GET /readyz` (200 only when every readiness check passes, else 503 with `{"ready": false, "reason": ...}`);
beside them `GET /metrics` (Prometheus' text format, `mcp_server.telemetry.metrics`) when the process has it.

The server answers them in an ASGI middleware in front of its app (`HealthRoutes`), so a probe passes no
authentication, writes no audit row and spends no rate limit. The worker has no HTTP app: `serve_health`
is a tiny asyncio responder (a probe needs one GET and nothing of HTTP/1.1 beyond it), so the worker loads
neither Starlette nor an HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from temporalio.client import Client

if TYPE_CHECKING:  # types only: the worker imports this module and must not load Starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

HEALTHZ = "/healthz"
READYZ = "/readyz"
METRICS = "/metrics"
JSON = "application/json"
CHECK_TIMEOUT_SECONDS = 2.0
"""Each readiness check's bound: below the kubelet's default probe timeout (1 s is its default, the manifests
set 3), so a hung database reads as "not ready" rather than as a probe timeout."""

MetricsSource = Callable[[], Awaitable[bytes]]
"""The `/metrics` body (`mcp_server.telemetry.metrics.exposition`)."""
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Check = Callable[[], Awaitable[str | None]]
"""A readiness check: None when ready, else the reason (short, no secret: the body is public)."""


@dataclass(frozen=True)
class Named:
    name: str
    check: Check


class Pingable(Protocol):
    """What the database check needs: one round trip. `mcp_server.store.PgStore` has it (`ping`)."""

    async def ping(self, timeout: float) -> None: ...


def database_check(store: Pingable) -> Named:
    """`SELECT 1` through the store's pool: the answer every request of the process needs first."""

    async def check() -> str | None:
        await store.ping(CHECK_TIMEOUT_SECONDS)
        return None

    return Named("database", check)


def temporal_check(client: Client) -> Named:
    """Temporal's frontend answers its gRPC health check on this process's connection."""

    async def check() -> str | None:
        serving = await client.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS))
        return None if serving else "Temporal's workflow service is not serving"

    return Named("temporal", check)


async def readiness(checks: Sequence[Named], timeout: float = CHECK_TIMEOUT_SECONDS) -> str | None:
    """None when every check passes; else the first failure, named (`database: ...`). Checks run at once."""

    async def one(c: Named) -> str | None:
        try:
            reason = await asyncio.wait_for(c.check(), timeout)
        except TimeoutError:
            return f"{c.name}: no answer within {timeout:g} s"
        except Exception as e:  # any failure is "not ready"; the exception's text names no secret here
            return f"{c.name}: {type(e).__name__}: {str(e)[:200]}"
        return f"{c.name}: {reason}" if reason else None

    for reason in await asyncio.gather(*(one(c) for c in checks)):
        if reason:
            return reason
    return None


async def answer(path: str, checks: Sequence[Named], metrics: MetricsSource | None = None
                 ) -> tuple[int, bytes, str] | None:
    """(status, body, content type) for a health or metrics path, None for any other path."""
    if path == HEALTHZ:
        return 200, b'{"alive": true}', JSON
    if path == METRICS and metrics is not None:
        return 200, await metrics(), METRICS_CONTENT_TYPE
    if path != READYZ:
        return None
    reason = await readiness(checks)
    if reason is None:
        return 200, b'{"ready": true}', JSON
    log.info("not ready: %s", reason)
    return 503, json.dumps({"ready": False, "reason": reason}).encode(), JSON


class HealthRoutes:
    """ASGI middleware, outermost on the server's app: GET /healthz and /readyz answered here, before the
    SDK's authentication, the refused-auth audit and the rate limits see the request; /metrics too, when
    given (unauthenticated like the probes: it names no tenant, app or secret)."""

    def __init__(self, app: ASGIApp, checks: Sequence[Named], metrics: MetricsSource | None = None) -> None:
        self.app = app
        self.checks = checks
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            reply = await answer(scope["path"], self.checks, self.metrics)
            if reply is not None:
                status, body, content_type = reply
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", content_type.encode()),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"cache-control", b"no-store")]})
                await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
                return
        await self.app(scope, receive, send)


_REASONS = {200: "OK", 404: "Not Found", 400: "Bad Request", 503: "Service Unavailable"}


async def _respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, checks: Sequence[Named],
                   metrics: MetricsSource | None) -> None:
    try:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            # headers are read and dropped: a probe's answer depends on nothing in them
            while (line := await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                del line
        except (TimeoutError, ValueError):
            return
        parts = request_line.decode("latin-1").split()
        status, body, content_type = 400, b'{"error": "bad request"}', JSON
        if len(parts) == 3 and parts[0] in ("GET", "HEAD"):
            reply = await answer(parts[1].split("?", 1)[0], checks, metrics)
            status, body, content_type = reply if reply is not None else (404, b'{"error": "not found"}', JSON)
        head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
        writer.write(head.encode() + (b"" if parts[:1] == ["HEAD"] else body))
        await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_health(host: str, port: int, checks: Sequence[Named], metrics: MetricsSource | None = None
                       ) -> AsyncIterator[int | None]:
    """/healthz and /readyz (and /metrics, given `metrics`) on host:port while the context is open; yields the
    bound port (None: port 0, disabled)."""
    if port == 0:
        yield None
        return
    server = await asyncio.start_server(lambda r, w: _respond(r, w, checks, metrics), host, port)
    bound: int = server.sockets[0].getsockname()[1]
    log.info("health endpoints on http://%s:%s%s and %s", host, bound, HEALTHZ, READYZ)
    try:
        yield bound
    finally:
        server.close()
        await server.wait_closed()
