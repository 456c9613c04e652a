"""A budget on dynamic client registration (RFC 7591 `POST /register`, open to anyone by design): each client
address may register `oauth.registrations_per_hour` clients per hour (a fixed window from its first); past it,
429 with `Retry-After` (the seconds until its window ends). Clients that never got a grant are swept a day after
registering (`PgOAuth.sweep_oauth_clients`), so what a stranger registers does not stay.

The address is the connection's (behind a proxy, run uvicorn with `--proxy-headers` / `forwarded_allow_ips`
so it is the client's). Past `MAX_TRACKED` addresses the others share one window, so memory stays bounded.
Each server process keeps its own windows."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

REGISTER_PATH = "/register"
MAX_TRACKED = 10_000
OVERFLOW = "*"


class RegistrationBudget:
    def __init__(self, per_window: int, period: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window, self.period, self.clock = per_window, period, clock
        self._windows: dict[str, tuple[float, int]] = {}  # address -> (window start, registrations)

    def admit(self, addr: str) -> float | None:
        """None: admitted (and counted); else the seconds until this address may register again."""
        now = self.clock()
        if len(self._windows) >= MAX_TRACKED:
            self._windows = {a: w for a, w in self._windows.items() if now - w[0] < self.period}
        if addr not in self._windows and len(self._windows) >= MAX_TRACKED:
            addr = OVERFLOW
        start, count = self._windows.get(addr, (now, 0))
        if now - start >= self.period:
            start, count = now, 0
        if count >= self.per_window:
            return start + self.period - now
        self._windows[addr] = (start, count + 1)
        return None


class RegistrationLimit:
    """ASGI wrapper of the SDK's registration endpoint."""

    def __init__(self, app: ASGIApp, budget: RegistrationBudget) -> None:
        self.app, self.budget = app, budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.budget.admit(str(client[0]) if client else "unknown")
        if wait is None:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        # RFC 7591 §3.2.2's error body shape, though the RFC defines no code for this
        body = json.dumps({"error": "invalid_client_metadata", "error_description": (
            f"too many client registrations from this address; retry in {retry} s, or reuse a client "
            "registered already")}).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry).encode()), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})


def limit_registrations(app: Starlette, budget: RegistrationBudget) -> None:
    """Wrap the SDK's `/register` route of `app` (it has none when registration is off)."""
    for route in app.routes:
        if isinstance(route, Route) and route.path == REGISTER_PATH:
            route.app = RegistrationLimit(route.app, budget)
