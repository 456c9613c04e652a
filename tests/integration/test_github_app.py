"""GitHub App installation tokens (workflows/adapters/github_app.py) against a FAKE GitHub
(tests/fakes/fake_github.py) that verifies the app's JWT with its public key and checks the claims as GitHub
documents them: RS256, iat in the past, exp at most 10 minutes after iat, iss the app ID.

- The JWT: RS256, iat = now - 60, exp = now + 540, iss = the app ID; a foreign key is refused (401).
- The token is asked for the one repository with contents: read, is cached until shortly before it expires,
  and becomes git credentials (x-access-token).
- Not installed (404), repository outside the installation or permission not granted (422), GitHub down (5xx,
  rate limit) map to typed errors with `retryable`; no message holds the JWT, the key or a token.
"""

from __future__ import annotations

import json

import httpx
import jwt
import pytest

from tests.fakes.fake_github import FAKE_GITHUB_API, FakeGitHub, fake_app_key
from workflows.adapters.github_app import (
    GitHubApp,
    GitHubAppAuthError,
    GitHubAppError,
    GitHubAppNotInstalled,
    GitHubUnavailable,
)

APP_ID = 424242
KEYS = fake_app_key()
OTHER_KEYS = fake_app_key()


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeGitHub:
    github = FakeGitHub(APP_ID, KEYS[1], clock=clock)
    github.install("acme", "shop", "blog", installation_id=77)
    return github


def _app(fake: FakeGitHub, clock: Clock, private_key: str = KEYS[0]) -> GitHubApp:
    return GitHubApp(APP_ID, private_key, FAKE_GITHUB_API, transport=fake.transport(), clock=clock)


def _no_secrets(text: str, fake: FakeGitHub) -> None:
    assert "PRIVATE KEY" not in text and "ghs_" not in text
    for request in fake.requests:
        bearer = request.headers.get("Authorization", "").partition(" ")[2]
        if bearer:
            assert bearer not in text


async def test_app_jwt_has_the_documented_claims(fake: FakeGitHub, clock: Clock) -> None:
    async with _app(fake, clock) as app:
        token = app.app_jwt()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    claims = jwt.decode(token, KEYS[1], algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})
    now = int(clock.now)
    assert claims == {"iat": now - 60, "exp": now + 540, "iss": str(APP_ID)}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, OTHER_KEYS[1], algorithms=["RS256"], options={"verify_exp": False})


async def test_installation_token_for_one_repository_with_contents_read(fake: FakeGitHub, clock: Clock) -> None:
    async with _app(fake, clock) as app:
        token = await app.installation_token("acme", "shop")
    assert token.token == fake.issued[0]["token"] and token.installation_id == 77
    assert token.expires_at.timestamp() == clock.now + 3600
    assert token.permissions == {"contents": "read"}
    assert "ghs_" not in repr(token)
    assert [(r.method, r.url.path) for r in fake.requests] == [
        ("GET", "/repos/acme/shop/installation"),
        ("POST", "/app/installations/77/access_tokens"),
    ]
    assert json.loads(fake.requests[1].content) == {"repositories": ["shop"], "permissions": {"contents": "read"}}
    assert all(r.headers["X-GitHub-Api-Version"] == "2022-11-28" for r in fake.requests)
    assert len(fake.jwt_claims) == 2, "the fake verified the JWT of both calls with the app's public key"
    creds = token.git_credentials()
    assert creds.token == token.token and creds.username == "x-access-token"


async def test_token_is_cached_until_shortly_before_it_expires(fake: FakeGitHub, clock: Clock) -> None:
    async with _app(fake, clock) as app:
        first = await app.installation_token("acme", "shop")
        clock.now += 3000  # 10 minutes left: still cached
        assert await app.installation_token("Acme", "Shop") is first
        clock.now += 400  # under 5 minutes left: a new one
        second = await app.installation_token("acme", "shop")
        other = await app.installation_token("acme", "blog")
    assert second.token != first.token and other.token not in (first.token, second.token)
    assert len(fake.issued) == 3


async def test_a_jwt_signed_with_another_key_is_refused(fake: FakeGitHub, clock: Clock) -> None:
    async with _app(fake, clock, private_key=OTHER_KEYS[0]) as app:
        with pytest.raises(GitHubAppAuthError, match="refused the JWT of app 424242") as info:
            await app.installation_token("acme", "shop")
    assert info.value.status == 401 and info.value.retryable is False
    assert "could not be decoded" in str(info.value)
    _no_secrets(str(info.value), fake)


async def test_the_fake_checks_the_claims_as_github_does(fake: FakeGitHub, clock: Clock) -> None:
    """The fake refuses what GitHub refuses, so the claims test above means something."""

    def call(claims: dict[str, object], key: str = KEYS[0], alg: str = "RS256") -> httpx.Response:
        token = jwt.encode(claims, key, algorithm=alg)
        request = httpx.Request(
            "GET",
            f"{FAKE_GITHUB_API}/repos/acme/shop/installation",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
        )
        return fake.handle(request)

    now = int(clock.now)
    assert call({"iat": now - 60, "exp": now + 540, "iss": str(APP_ID)}).status_code == 200
    assert call({"iat": now - 60, "exp": now + 541, "iss": str(APP_ID)}).status_code == 401, "exp - iat > 10 min"
    assert call({"iat": now + 120, "exp": now + 500, "iss": str(APP_ID)}).status_code == 401, "iat in the future"
    assert call({"iat": now - 700, "exp": now - 100, "iss": str(APP_ID)}).status_code == 401, "expired"
    assert call({"iat": now - 60, "exp": now + 540, "iss": "1"}).status_code == 401, "another app"
    assert call({"iat": now - 60, "exp": now + 540}).status_code == 401, "no iss"
    hmac = "an-hmac-secret-of-at-least-32-bytes!"
    assert call({"iat": now - 60, "exp": now + 540, "iss": str(APP_ID)}, hmac, "HS256").status_code == 401


async def test_not_installed_and_not_covered(fake: FakeGitHub, clock: Clock) -> None:
    async with _app(fake, clock) as app:
        with pytest.raises(GitHubAppNotInstalled, match="not installed on other/repo") as missing:
            await app.installation_token("other", "repo")
        assert missing.value.status == 404 and missing.value.retryable is False
        fake.installations[0].permissions = {"metadata": "read"}
        with pytest.raises(GitHubAppNotInstalled, match="'Contents: read'") as denied:
            await app.installation_token("acme", "shop")
        assert denied.value.status == 422
    _no_secrets(str(missing.value) + str(denied.value), fake)


@pytest.mark.parametrize(
    ("fault", "error", "retryable"),
    [
        (httpx.Response(502, json={"message": "Server Error"}), GitHubUnavailable, True),
        (httpx.Response(429, json={"message": "rate limit"}), GitHubUnavailable, True),
        (
            httpx.Response(403, headers={"x-ratelimit-remaining": "0"}, json={"message": "API rate limit exceeded"}),
            GitHubUnavailable,
            True,
        ),
        (httpx.Response(403, json={"message": "Resource not accessible by integration"}), GitHubAppError, False),
        (httpx.Response(200, text="<html>"), GitHubAppError, False),
    ],
)
async def test_github_failures_map_to_typed_errors(
    fake: FakeGitHub, clock: Clock, fault: httpx.Response, error: type[GitHubAppError], retryable: bool
) -> None:
    fake.fault = fault
    async with _app(fake, clock) as app:
        with pytest.raises(error) as info:
            await app.installation_token("acme", "shop")
    assert type(info.value) is error and info.value.retryable is retryable
    _no_secrets(str(info.value), fake)


async def test_unreachable_github_is_retryable(clock: Clock) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with GitHubApp(APP_ID, KEYS[0], FAKE_GITHUB_API, transport=httpx.MockTransport(down), clock=clock) as app:
        with pytest.raises(GitHubUnavailable, match="could not be reached") as info:
            await app.installation_token("acme", "shop")
    assert info.value.retryable is True


async def test_a_key_that_cannot_sign_is_an_auth_error(clock: Clock) -> None:
    async with GitHubApp(APP_ID, "not a pem", FAKE_GITHUB_API, clock=clock) as app:
        with pytest.raises(GitHubAppAuthError, match="cannot sign a JWT") as info:
            app.app_jwt()
    assert "not a pem" not in str(info.value)
