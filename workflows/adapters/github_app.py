"""GitHub App installation tokens: how the platform reads a customer's private GitHub repository without a
long-lived secret.

As GitHub documents it (Apps > Authenticating with a GitHub App): the app signs a JSON Web Token with its
private key (RS256; `iat` 60 s in the past against clock drift, `exp` at most 10 minutes ahead, `iss` the app's
ID), finds the installation that covers the repository (GET /repos/{owner}/{repo}/installation) and exchanges
the JWT for an installation access token (POST /app/installations/{id}/access_tokens), narrowed here to that one
repository and `contents: read`. The token expires after an hour; it is cached until shortly before that.

The JWT is made by PyJWT (RS256 through `cryptography`), not by hand. Messages never hold the JWT, the key or
a token.

`hosts` are the git hosts this GitHub serves (github.com, or a GitHub Enterprise Server's host): an https URL
`https://<host>/<owner>/<repo>[.git]` on one of them is a repository the app may be installed on.
`credentials_for` is the one rule both the tools (resolving a ref) and the build (checking out) follow to pick
the credentials of a clone: the tenant's own credentials for the host win when they fit the URL; otherwise the
app's installation token when the app covers the URL; otherwise none (a public repository).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
import jwt

from workflows.adapters.errors import AdapterError, AuthRefused, ResourceNotFound, ServiceUnavailable
from workflows.adapters.git import GitAuthError, GitError
from workflows.adapters.http import http_client
from workflows.domain.credentials import GitCredentials
from workflows.domain.git_urls import CREDENTIALS_TOOL, GitUrl, github_repository

GITHUB_API = "https://api.github.com"
API_VERSION = "2022-11-28"
JWT_BACKDATE = 60
JWT_LIFETIME = 540  # exp - iat = 600 s: GitHub's maximum
TOKEN_REFRESH_MARGIN = 300.0
GIT_USERNAME = "x-access-token"
"""The user name GitHub expects with an installation token over git's HTTP Basic auth."""


class GitHubAppError(AdapterError):
    """A GitHub App call failed. `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHubAppNotInstalled(GitHubAppError, ResourceNotFound):
    """The app is not installed on the repository's account, or the installation does not cover the repo."""


class GitHubAppNotForTenant(GitHubAppError, AuthRefused):
    """The operator binds GitHub accounts to tenants (`github_app_owners`) and this account is not the tenant's."""


class GitHubAppAuthError(GitHubAppError, AuthRefused):
    """GitHub refused the app's JWT: wrong app ID or key, or a clock far off."""


class GitHubUnavailable(GitHubAppError, ServiceUnavailable):
    """GitHub answered 5xx or a rate limit, or could not be reached."""

    retryable = True


@dataclass(frozen=True)
class InstallationToken:
    """An installation access token; `expires_at` is timezone-aware. Its repr never shows the token."""

    token: str = field(repr=False)
    expires_at: datetime
    installation_id: int = 0
    permissions: Mapping[str, str] = field(default_factory=dict)

    def git_credentials(self) -> GitCredentials:
        """Credentials for `workflows.adapters.git` (HTTP Basic `x-access-token:<token>`)."""
        return GitCredentials(token=self.token, username=GIT_USERNAME)


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:300]
    return ""


class GitHubApp:
    """One GitHub App. `private_key_pem` is the PEM the app's settings page generates. Close with `aclose()` or
    use as an async context manager. `clock` returns Unix seconds (tests move it)."""

    def __init__(
        self,
        app_id: int | str,
        private_key_pem: str | bytes,
        api_url: str = GITHUB_API,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        timeout: float = 15.0,
        clock: Callable[[], float] = time.time,
        hosts: Iterable[str] = ("github.com",),
        tenant_owners: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.app_id = str(app_id)
        # None: every tenant may use the app's installations (one team's platform); else tenant -> its accounts
        self.tenant_owners = None if tenant_owners is None else {
            tenant: frozenset(o.lower() for o in owners) for tenant, owners in tenant_owners.items()}
        self.hosts = tuple(h.strip().lower() for h in hosts if h.strip())
        self._key = private_key_pem
        self._api = api_url.rstrip("/")
        self._clock = clock
        self._client = http_client(
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
        )
        self._tokens: dict[tuple[str, str], InstallationToken] = {}

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self.app_id!r}, api_url={self._api!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> GitHubApp:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def allows(self, tenant: str, owner: str) -> bool:
        """Whether `tenant` may clone with tokens of the installation on GitHub account `owner`."""
        return self.tenant_owners is None or owner.lower() in self.tenant_owners.get(tenant, frozenset())

    def repository(self, url: GitUrl) -> tuple[str, str] | None:
        """(owner, repo) when the app can give a token for `url`: https, on one of `hosts`, /owner/repo."""
        return github_repository(url, self.hosts)

    def forget(self, url: GitUrl) -> None:
        """Drop the cached token for `url`'s repository (the git server refused it: the installation changed),
        so the next clone asks GitHub again."""
        repository = self.repository(url)
        if repository is not None:
            self._tokens.pop((repository[0].lower(), repository[1].lower()), None)

    def app_jwt(self) -> str:
        """The app's JWT: RS256, iat = now - 60, exp = now + 540, iss = the app ID."""
        now = int(self._clock())
        payload = {"iat": now - JWT_BACKDATE, "exp": now + JWT_LIFETIME, "iss": self.app_id}
        try:
            return jwt.encode(payload, self._key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as e:
            raise GitHubAppAuthError(
                f"the private key of GitHub App {self.app_id} cannot sign a JWT ({type(e).__name__}); configure the "
                "PEM private key generated in the app's settings"
            ) from None

    async def installation_token(self, owner: str, repo: str) -> InstallationToken:
        """A token that can read `owner/repo` (contents: read, that repository only), cached until 5 minutes
        before it expires."""
        key = (owner.lower(), repo.lower())
        cached = self._tokens.get(key)
        if cached is not None and cached.expires_at.timestamp() - TOKEN_REFRESH_MARGIN > self._clock():
            return cached
        bearer = {"Authorization": f"Bearer {self.app_jwt()}"}
        found = await self._send("GET", f"/repos/{owner}/{repo}/installation", bearer, owner=owner, repo=repo)
        installation_id = found.get("id")
        if not isinstance(installation_id, int):
            raise GitHubAppError(f"GitHub answered the installation of {owner}/{repo} without an id")
        body = {"repositories": [repo], "permissions": {"contents": "read"}}
        created = await self._send(
            "POST", f"/app/installations/{installation_id}/access_tokens", bearer, owner=owner, repo=repo, json=body
        )
        token, expires = created.get("token"), created.get("expires_at")
        if not isinstance(token, str) or not token or not isinstance(expires, str):
            raise GitHubAppError(f"GitHub answered the token request for {owner}/{repo} without a token or expiry")
        try:
            expires_at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            raise GitHubAppError(f"GitHub answered an expiry that is not a timestamp: {expires[:40]!r}") from None
        permissions = created.get("permissions")
        result = InstallationToken(
            token, expires_at, installation_id, dict(permissions) if isinstance(permissions, dict) else {}
        )
        self._tokens[key] = result
        return result

    async def _send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        owner: str,
        repo: str,
        json: Any = None,
    ) -> dict[str, Any]:
        try:
            response = await self._client.request(method, self._api + path, headers=headers, json=json)
        except httpx.TimeoutException as e:
            raise GitHubUnavailable(f"GitHub ({self._api}) did not answer in time ({type(e).__name__})") from None
        except httpx.TransportError as e:
            raise GitHubUnavailable(f"GitHub ({self._api}) could not be reached: {type(e).__name__}") from None
        status = response.status_code
        problem = _problem(response)
        suffix = f" [HTTP {status}{': ' + problem if problem else ''}]"
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                raise GitHubAppError(f"GitHub answered {method} {path} with something that is not JSON") from None
            if not isinstance(data, dict):
                raise GitHubAppError(f"GitHub answered {method} {path} with JSON that is not an object")
            return data
        if status == 401:
            raise GitHubAppAuthError(
                f"GitHub refused the JWT of app {self.app_id}: check the app ID and its private key, and that this "
                f"machine's clock is right{suffix}",
                status=status,
            )
        if status == 404:
            raise GitHubAppNotInstalled(
                f"GitHub App {self.app_id} is not installed on {owner}/{repo} (or cannot see it): install the app on "
                f"the account {owner} and grant it access to {repo}{suffix}",
                status=status,
            )
        if status == 422:
            raise GitHubAppNotInstalled(
                f"the installation of GitHub App {self.app_id} cannot grant read access to {owner}/{repo}: add the "
                f"repository to the installation and give the app 'Contents: read'{suffix}",
                status=status,
            )
        rate_limited = status == 429 or (status == 403 and response.headers.get("x-ratelimit-remaining") == "0")
        if status >= 500 or rate_limited:
            raise GitHubUnavailable(
                f"GitHub is unavailable or rate-limiting now; try again later{suffix}", status=status
            )
        raise GitHubAppError(f"GitHub refused {method} {path}{suffix}", status=status)


@dataclass(frozen=True)
class ChosenCredentials:
    """The credentials a clone of one URL uses, and where they came from. `app_problem`: the app covers the
    URL but could not give a token (not installed there, misconfigured); the clone is then tried without
    credentials, which suffices for a public repository. Its repr never shows a secret."""

    credentials: GitCredentials | None
    source: str  # "tenant", "github-app" or "none"
    app_problem: GitHubAppError | None = None

    def secrets(self) -> dict[str, str]:
        """The secret strings to mask in build lines, by name."""
        found = self.credentials.secrets() if self.credentials is not None else []
        return {f"git-credential-{i}" if i else "git-credential": v for i, v in enumerate(found)}

    def explain(self, url: GitUrl, error: GitError) -> str:
        """The message for a clone that failed with `error` (GitAuthError or RepoNotFound): when the app could
        not give a token, that first (it is the cause), with both fixes; when the app's token was refused, so."""
        if self.source == "github-app":
            return (
                f"{url.netloc} refused the GitHub App's installation token for {url.repo_path}: check that the app's "
                f"installation on {url.repo_path.split('/')[0]} covers the repository with 'Contents: read', or "
                f"give a token for {url.host} with {CREDENTIALS_TOOL} ({error})"
            )
        if self.app_problem is None:
            return str(error)
        cause = str(self.app_problem)
        if isinstance(self.app_problem, GitHubAppAuthError):
            cause = f"the platform's GitHub App cannot get tokens ({cause}): tell the operator"
        kind = "refused to serve it" if isinstance(error, GitAuthError) else "did not show it"
        return (
            f"{cause}; or give a token for {url.host} with {CREDENTIALS_TOOL} (without a token, {url.netloc} {kind})"
        )


async def credentials_for(url: GitUrl, stored: GitCredentials | None, app: GitHubApp | None,
                          tenant: str) -> ChosenCredentials:
    """The credentials `tenant` clones `url` with: `stored` (the tenant's, from set_git_credentials) when they
    fit the URL's transport; else an installation token of `app` when the app covers the URL and the operator
    lets this tenant use that account's installation; else none.

    GitHubUnavailable propagates (retryable); any other app error becomes `app_problem`, with no credentials."""
    if stored is not None and stored.fits(url):
        return ChosenCredentials(stored, "tenant")
    repository = app.repository(url) if app is not None else None
    if app is None or repository is None:
        return ChosenCredentials(None, "none")
    if not app.allows(tenant, repository[0]):
        return ChosenCredentials(None, "none", app_problem=GitHubAppNotForTenant(
            f"the platform's GitHub App does not serve the GitHub account {repository[0]} to your tenant: ask the "
            f"operator to add it to github_app_owners for tenant {tenant}"))
    try:
        token = await app.installation_token(*repository)
    except GitHubUnavailable:
        raise
    except GitHubAppError as e:
        return ChosenCredentials(None, "none", app_problem=e)
    return ChosenCredentials(token.git_credentials(), "github-app")
