"""The adapters' one HTTP client factory (workflows.adapters.http): timeouts per phase, the platform's
User-Agent under the service's headers, a CA bundle instead of the system CAs, retries on connect errors, and
an injected transport left untouched."""

from __future__ import annotations

import asyncio

import certifi
import httpx

from workflows.adapters.http import USER_AGENT, http_client


def test_timeouts_headers_and_base_url() -> None:
    client = http_client(timeout=10.0, connect_timeout=3.0, base_url="http://loki:3100", headers={"X-Scope-OrgID": "t"})
    assert client.timeout == httpx.Timeout(10.0, connect=3.0)
    assert client.headers["User-Agent"] == USER_AGENT and client.headers["X-Scope-OrgID"] == "t"
    assert str(client.base_url) == "http://loki:3100"
    assert http_client(timeout=15.0).timeout == httpx.Timeout(15.0)
    assert http_client(timeout=1.0, headers={"User-Agent": "other"}).headers["User-Agent"] == "other"


def test_ca_file_and_connect_retries_build_the_transport() -> None:
    assert http_client(timeout=1.0, ca_file=certifi.where()) is not None
    retrying = http_client(timeout=1.0, connect_retries=2)
    assert isinstance(retrying._transport, httpx.AsyncHTTPTransport)
    assert retrying._transport._pool._retries == 2


def test_an_injected_transport_is_used_as_is() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def go() -> int:
        async with http_client(timeout=1.0, base_url="https://harbor.test/api/v2.0", connect_retries=3,
                               transport=httpx.MockTransport(handle), auth=httpx.BasicAuth("u", "p")) as client:
            return (await client.get("/projects")).status_code

    assert asyncio.run(go()) == 204
    assert str(seen[0].url) == "https://harbor.test/api/v2.0/projects"
    assert seen[0].headers["Authorization"].startswith("Basic ") and seen[0].headers["User-Agent"] == USER_AGENT
