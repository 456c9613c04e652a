"""A fake OpenID Connect issuer over real HTTP (uvicorn in the test's loop), as Keycloak, Dex or Authentik publish
one: the discovery document (OpenID Connect Discovery 1.0 §4: `issuer`, `jwks_uri`, ...) and the JWK Set
(RFC 7517 §5, public keys only, each with `kid`, `use: sig`, `alg`). It signs access tokens (RS256, ES256) with
chosen claims, rotates its RSA key (a new one published, the old one removed), and counts the key set's
fetches. It also forges what an attacker would send: `alg: none` and HS256 keyed with the public key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_server.devenv.processes import free_port


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class FakeOidcIssuer:
    def __init__(self) -> None:
        self.issuer = ""  # set when served (fake_oidc_running)
        self._rsa_n = 1
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"})
        self.published: list[RSAKey | ECKey] = [self.rsa, self.ec]
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.down = False  # answer 503 to everything, as an issuer restarting does

    def rotate(self) -> RSAKey:
        """A new RSA signing key, published in place of the old one (which is no longer listed)."""
        self._rsa_n += 1
        old, self.rsa = self.rsa, RSAKey.generate_key(
            2048, parameters={"kid": f"rsa-{self._rsa_n}", "use": "sig", "alg": "RS256"})
        self.published = [k for k in self.published if k is not old] + [self.rsa]
        return self.rsa

    def claims(self, **claims: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {"iss": self.issuer, "sub": "alice", "iat": now, "exp": now + 300}
        base.update(claims)
        return {k: v for k, v in base.items() if v is not None}  # a claim given as None is left out

    def mint(self, alg: str = "RS256", key: RSAKey | ECKey | None = None, header: dict[str, Any] | None = None,
             **claims: Any) -> str:
        """A token signed with `key` (default: the current key for `alg`), its `kid` in the header."""
        key = key or (self.rsa if alg == "RS256" else self.ec)
        return jwt.encode({"alg": alg, "kid": key.kid, **(header or {})}, self.claims(**claims), key,
                          algorithms=[alg])

    def mint_unsigned(self, **claims: Any) -> str:
        """`alg: none` and no signature (RFC 7519 §6.1), which a verifier must never accept."""
        head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{head}.{_b64(json.dumps(self.claims(**claims)).encode())}."

    def mint_hs256_with_public_key(self, **claims: Any) -> str:
        """The key-confusion forgery: HS256 whose HMAC secret is the issuer's public RSA key (its PEM)."""
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.rsa.kid}).encode())
        body = _b64(json.dumps(self.claims(**claims)).encode())
        secret = self.rsa.as_pem(private=False)
        sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(sig)}"

    async def discovery(self, request: Request) -> Response:
        if self.down:
            return Response("restarting", status_code=503)
        self.discovery_fetches += 1
        return JSONResponse({
            "issuer": self.issuer, "authorization_endpoint": self.issuer + "/protocol/openid-connect/auth",
            "token_endpoint": self.issuer + "/protocol/openid-connect/token", "jwks_uri": self.issuer + "/certs",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"]})

    async def certs(self, request: Request) -> Response:
        if self.down:
            return Response("restarting", status_code=503)
        self.jwks_fetches += 1
        return JSONResponse({"keys": [k.as_dict(private=False) for k in self.published]})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/.well-known/openid-configuration", self.discovery, methods=["GET"]),
                                 Route("/certs", self.certs, methods=["GET"])])


@asynccontextmanager
async def fake_oidc_running(fake: FakeOidcIssuer, path: str = "/realms/deploy") -> AsyncIterator[str]:
    """Serve `fake` on 127.0.0.1 under `path` (an issuer URL with a path, as Keycloak's realms have); yields the
    issuer URL."""
    port = free_port()
    fake.issuer = f"http://127.0.0.1:{port}{path}"
    outer = Starlette()
    outer.mount(path, fake.app())
    server = uvicorn.Server(uvicorn.Config(outer, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            task.result()
    try:
        yield fake.issuer
    finally:
        server.should_exit = True
        await task


__all__ = ["FakeOidcIssuer", "fake_oidc_running"]
