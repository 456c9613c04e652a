"""The one place an `httpx.AsyncClient` is built for the adapters that speak HTTP (Loki, the OCI registry, Harbor,
the GitHub App), so timeouts, certificate trust, connect retries, the base URL and the platform's User-Agent are
decided the same way for every service.

Tests hand an adapter an `httpx.AsyncBaseTransport` (a fake speaking the service's API, or a MockTransport);
it is passed through untouched, and then trust and retries are the transport's business.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

import httpx

USER_AGENT = "deploy-mcp"


def http_client(
    *,
    timeout: float,
    connect_timeout: float | None = None,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | None = None,
    ca_file: str | Path | None = None,
    verify: bool | ssl.SSLContext = True,
    connect_retries: int = 0,
    follow_redirects: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """A client whose every phase times out after `timeout` seconds (the connect phase after `connect_timeout`
    when given: a service that is down should be reported fast even when its answers may take long).

    `ca_file`: a PEM bundle to trust instead of the system CAs (a service behind a private CA); else `verify`.
    `connect_retries`: how often to retry a connection that could not be made (nothing was sent, so any request
    may be retried); 0, every adapter's choice today, reports an unreachable service at the first failure.
    `headers` are sent on every request, after the platform's User-Agent (which they may replace).
    """
    trust: bool | ssl.SSLContext = ssl.create_default_context(cafile=ca_file) if ca_file else verify
    if transport is None and connect_retries:
        transport = httpx.AsyncHTTPTransport(verify=trust, retries=connect_retries)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=connect_timeout) if connect_timeout is not None else timeout,
        verify=trust,
        follow_redirects=follow_redirects,
        transport=transport,
    )
