"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, the MCP spec's preferred
registration): a client whose `client_id` is an https URL publishes its metadata there, and this server
fetches it instead of the client registering. Only public clients (`token_endpoint_auth_method: none`: a
document cannot hold a secret). The fetch is a request to a URL a stranger chose, so: https only, no
redirects, 5 s, 64 KiB, and no loopback, private, link-local or metadata address unless the host is in
`oauth.client_metadata_allowed_hosts` (the addresses are checked before the request; a DNS answer changing
in between is not caught)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

import httpx
from mcp.shared.auth import OAuthClientInformationFull
from pydantic import ValidationError

from workflows.domain.addresses import refused_address

MAX_BYTES = 64 * 1024


class ClientMetadataError(Exception):
    """The document could not be used; the message says why (logged, the client sees `invalid client`)."""


def is_metadata_url(client_id: str) -> bool:
    parts = urlsplit(client_id)
    return parts.scheme == "https" and bool(parts.hostname) and parts.path not in ("", "/") \
        and not parts.fragment and parts.username is None and parts.password is None


async def fetch_client_metadata(url: str, default_scope: str, allowed_hosts: Collection[str] = (),
                                timeout: float = 5.0) -> OAuthClientInformationFull:
    """The document's client; without a `scope`, `default_scope` (the SDK refuses scopes a client was not
    registered with, and the tenant rule caps what is granted anyway)."""
    if not is_metadata_url(url):
        raise ClientMetadataError(f"{url!r} is not an https URL with a path")
    host = urlsplit(url).hostname
    assert host is not None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ClientMetadataError(f"{host} does not resolve ({e.strerror})") from e
    refused = refused_address(host, sorted({str(i[4][0]) for i in infos}), allowed_hosts)
    if refused is not None:
        raise ClientMetadataError(f"{host} resolves to {refused[0]}, a {refused[1]} address; add the host to "
                                  "oauth.client_metadata_allowed_hosts if it is trusted")
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http, \
                http.stream("GET", url, headers={"Accept": "application/json"}) as r:
            if r.status_code != 200:
                raise ClientMetadataError(f"GET {url} answered HTTP {r.status_code}")
            body = b""
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise ClientMetadataError(f"the document at {url} is larger than {MAX_BYTES} bytes")
    except httpx.HTTPError as e:
        raise ClientMetadataError(f"GET {url} failed ({type(e).__name__})") from e
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise ClientMetadataError(f"the document at {url} is not JSON") from e
    if not isinstance(doc, dict) or doc.get("client_id") != url:
        raise ClientMetadataError(f"the document at {url} must name itself as its client_id")
    if doc.get("token_endpoint_auth_method", "none") != "none" or "client_secret" in doc:
        raise ClientMetadataError(f"the document at {url} must describe a public client "
                                  "(token_endpoint_auth_method none, no client_secret)")
    try:
        return OAuthClientInformationFull.model_validate(
            {"scope": default_scope, **doc, "token_endpoint_auth_method": "none"})
    except ValidationError as e:
        raise ClientMetadataError(f"the document at {url} is not valid client metadata: "
                                  f"{e.errors()[0]['loc']} {e.errors()[0]['msg']}") from e
