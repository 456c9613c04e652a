"""A fake GitHub REST API (an httpx.MockTransport) for the two calls a GitHub App makes to get an installation
access token, checking what GitHub documents:

- Every request carries `Authorization: Bearer <JWT>`: the JWT must verify with the app's public key (RS256 only),
  carry `iat`, `exp` and `iss` (the app ID, or its client ID), `iat` not in the future (60 s of leeway for clock
  drift), `exp` in the future and at most 10 minutes after `iat`. Otherwise 401 with GitHub's JSON error body.
- `GET /repos/{owner}/{repo}/installation`: 200 `{"id", "account", "app_id", "repository_selection",
  "permissions"}`, or 404 `{"message": "Not Found"}` when the app is not installed there.
- `POST /app/installations/{id}/access_tokens` with an optional JSON body `{"repositories": [...],
  "permissions": {...}}`: 201 `{"token", "expires_at", "permissions", "repository_selection", "repositories"}`;
  422 when a repository is not in the installation or a permission exceeds what the installation was granted;
  404 for an unknown installation.
- `Accept: application/vnd.github+json` is expected (415 otherwise, a fake's strictness).

In process it is an `httpx.MockTransport` (`transport()`); `fake_github_running(fake)` also serves it over real
HTTP on 127.0.0.1 (aiohttp, in the caller's event loop) for code that is configured with a URL (the worker).

Not implemented: everything else GitHub does.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

FAKE_GITHUB_API = "https://api.github.fake.test"
_LEVELS = {"read": 1, "write": 2, "admin": 3}


def fake_app_key() -> tuple[str, str]:
    """(private key PEM, public key PEM) of a new 2048-bit RSA key, as GitHub generates for an app."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@dataclass
class FakeInstallation:
    id: int
    account: str
    repositories: set[str]
    permissions: dict[str, str] = field(default_factory=lambda: {"contents": "read", "metadata": "read"})


@dataclass
class FakeGitHub:
    app_id: int
    public_key_pem: str
    client_id: str = "Iv1.fakeclientid"
    clock: Callable[[], float] = time.time
    installations: list[FakeInstallation] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    jwt_claims: list[dict[str, Any]] = field(default_factory=list)
    issued: list[dict[str, Any]] = field(default_factory=list)
    fault: httpx.Response | None = None

    def install(self, account: str, *repositories: str, installation_id: int = 0, **permissions: str) -> int:
        iid = installation_id or 1000 + len(self.installations)
        perms = permissions or {"contents": "read", "metadata": "read"}
        self.installations.append(FakeInstallation(iid, account, set(repositories), dict(perms)))
        return iid

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- handling ---------------------------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, message: str) -> httpx.Response:
        body = {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)}
        return httpx.Response(status, json=body)

    def _authenticate(self, request: httpx.Request) -> httpx.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self._error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            return self._error(401, "A JSON web token could not be decoded")
        except jwt.PyJWTError as e:
            return self._error(401, f"A JSON web token could not be decoded ({type(e).__name__})")
        now = self.clock()
        if str(claims["iss"]) not in (str(self.app_id), self.client_id):
            return self._error(401, "'Issuer' claim ('iss') must be an Integer")
        if claims["iat"] > now + 60:
            return self._error(401, "'Issued at' claim ('iat') must be an Integer representing a time in the past")
        if claims["exp"] <= now:
            return self._error(
                401,
                "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the "
                "assertion expires",
            )
        if claims["exp"] - claims["iat"] > 600:
            return self._error(401, "'Expiration time' claim ('exp') is too far in the future")
        self.jwt_claims.append(claims)
        return None

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fault is not None:
            return self.fault
        if "application/vnd.github+json" not in request.headers.get("Accept", ""):
            return self._error(415, "Unsupported 'Accept' header")
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        parts = request.url.path.strip("/").split("/")
        if request.method == "GET" and len(parts) == 4 and parts[0] == "repos" and parts[3] == "installation":
            return self._repo_installation(parts[1], parts[2])
        if (
            request.method == "POST"
            and len(parts) == 4
            and parts[:2] == ["app", "installations"]
            and parts[3] == "access_tokens"
            and parts[2].isdigit()
        ):
            return self._access_token(int(parts[2]), request)
        return self._error(404, "Not Found")

    def _find(self, owner: str, repo: str) -> FakeInstallation | None:
        for inst in self.installations:
            if inst.account.lower() == owner.lower() and repo.lower() in {r.lower() for r in inst.repositories}:
                return inst
        return None

    def _repo_installation(self, owner: str, repo: str) -> httpx.Response:
        inst = self._find(owner, repo)
        if inst is None:
            return self._error(404, "Not Found")
        return httpx.Response(
            200,
            json={
                "id": inst.id,
                "account": {"login": inst.account, "type": "Organization"},
                "app_id": self.app_id,
                "repository_selection": "selected",
                "permissions": inst.permissions,
            },
        )

    def _access_token(self, installation_id: int, request: httpx.Request) -> httpx.Response:
        inst = next((i for i in self.installations if i.id == installation_id), None)
        if inst is None:
            return self._error(404, "Not Found")
        body: dict[str, Any] = json.loads(request.content) if request.content else {}
        repos = body.get("repositories") or sorted(inst.repositories)
        if any(r.lower() not in {x.lower() for x in inst.repositories} for r in repos):
            return self._error(
                422,
                "There is at least one repository that does not exist or is not accessible to the parent installation.",
            )
        permissions = body.get("permissions") or dict(inst.permissions)
        for name, level in permissions.items():
            granted = inst.permissions.get(name)
            if granted is None or _LEVELS.get(level, 99) > _LEVELS.get(granted, 0):
                return self._error(
                    422, f"The permissions requested are not granted to this installation. ({name}: {level})"
                )
        token = f"ghs_fake{installation_id}x{len(self.issued):04d}" + "a" * 24
        expires_at = datetime.fromtimestamp(self.clock() + 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        issued = {
            "token": token,
            "expires_at": expires_at,
            "permissions": permissions,
            "repository_selection": "selected",
            "repositories": [{"name": r, "full_name": f"{inst.account}/{r}"} for r in repos],
        }
        self.issued.append(issued)
        return httpx.Response(201, json=issued)


@asynccontextmanager
async def fake_github_running(fake: FakeGitHub) -> AsyncIterator[str]:
    """Serve `fake` over HTTP on a free loopback port; yields its base URL (what `github_api_url` names)."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        answer = fake.handle(httpx.Request(request.method, str(request.url), headers=dict(request.headers),
                                           content=body))
        headers = {k: v for k, v in answer.headers.items() if k.lower() not in ("content-length",
                                                                                  "content-encoding")}
        return web.Response(status=answer.status_code, body=answer.content, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
