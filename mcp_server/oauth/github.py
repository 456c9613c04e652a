"""Signing a user in at GitHub (github.com or GitHub Enterprise Server): the OAuth app's web flow
(authorize -> callback with a code -> POST /login/oauth/access_token), then who the user is (GET /user) and
which organizations they are in (GET /user/orgs, needing the `read:org` scope), and team membership per rule
(GET /orgs/{org}/teams/{team}/memberships/{user}). The GitHub token is used for these reads only and kept
nowhere."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import httpx

from mcp_server.oauth.rules import GitHubUser
from mcp_server.settings import OAuthSettings

CALLBACK_PATH = "/oauth/github/callback"
SCOPE = "read:org"  # to see the user's organizations (and teams), private memberships included


class GitHubLoginError(Exception):
    """GitHub refused the sign-in or answered unexpectedly; the message says which call and why."""


class GitHubLogin:
    def __init__(self, settings: OAuthSettings, callback_url: str, timeout: float = 15.0) -> None:
        self.settings = settings
        self.callback_url = callback_url
        self.timeout = timeout

    def authorize_url(self, state: str) -> str:
        query = urlencode({"client_id": self.settings.client_id, "redirect_uri": self.callback_url,
                           "scope": SCOPE, "state": state, "allow_signup": "false"})
        return f"{self.settings.github_url.rstrip('/')}/login/oauth/authorize?{query}"

    async def user(self, code: str) -> tuple[GitHubUser, str]:
        """The user the callback's `code` signed in, and their GitHub token (for the team checks)."""
        secret = self.settings.client_secret
        assert secret is not None
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            r = await http.post(
                f"{self.settings.github_url.rstrip('/')}/login/oauth/access_token",
                data={"client_id": self.settings.client_id, "client_secret": secret.get_secret_value(),
                      "code": code, "redirect_uri": self.callback_url},
                headers={"Accept": "application/json"})
            body = _json(r, "POST /login/oauth/access_token")
            # GitHub answers errors here with 200 and an `error` field
            if not isinstance(body, dict) or "access_token" not in body:
                err = body.get("error", "no access_token") if isinstance(body, dict) else "not an object"
                raise GitHubLoginError(f"GitHub did not exchange the sign-in code: {err}")
            token = str(body["access_token"])
            headers = _api_headers(token)
            api = self.settings.github_api_url.rstrip("/")
            me = _json(await http.get(f"{api}/user", headers=headers), "GET /user")
            orgs = _json(await http.get(f"{api}/user/orgs", params={"per_page": 100}, headers=headers),
                         "GET /user/orgs")
        if not isinstance(me, dict) or not isinstance(me.get("login"), str) or not isinstance(orgs, list):
            raise GitHubLoginError("GitHub's /user or /user/orgs answer has not the documented shape")
        return GitHubUser(login=me["login"], orgs=frozenset(str(o["login"]).lower() for o in orgs)), token

    async def in_team(self, token: str, org: str, team: str, login: str) -> bool:
        api = self.settings.github_api_url.rstrip("/")
        url = f"{api}/orgs/{quote(org, safe='')}/teams/{quote(team, safe='')}/memberships/{quote(login, safe='')}"
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            r = await http.get(url, headers=_api_headers(token))
        if r.status_code == 404:
            return False
        body = _json(r, "GET /orgs/{org}/teams/{team}/memberships/{user}")
        # `pending`: invited, not yet a member
        return isinstance(body, dict) and body.get("state") == "active"


def _api_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28"}


def _json(r: httpx.Response, call: str) -> object:
    if r.status_code != 200:
        raise GitHubLoginError(f"GitHub answered {call} with HTTP {r.status_code}")
    try:
        return r.json()
    except ValueError as e:
        raise GitHubLoginError(f"GitHub answered {call} with something other than JSON") from e
