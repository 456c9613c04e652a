"""A fake GitHub for an OAuth app's web flow and the reads a sign-in makes, over real HTTP (uvicorn), in the
formats GitHub documents (docs.github.com: "Authorizing OAuth apps", "Troubleshooting OAuth app access token
request errors", REST "Users", "Organizations", "Teams > Members"). The API is served under /api/v3, as GitHub
Enterprise Server serves it, so the platform's `oauth.github_api_url` is exercised as a separate setting.

- `GET /login/oauth/authorize?client_id&redirect_uri&scope&state`: GitHub's "Authorize app" screen is skipped:
  the signed-in user (the fake's `signed_in`, or the browser's `user_session` cookie) authorizes at once, 302 to
  `redirect_uri?code&state`. Nobody signed in: a sign-in form (`login`, `password`, "Sign in") posting to
  `POST /session` with `return_to`, which sets the cookie and sends the browser back (a known login, any
  password: the fake checks no passwords). An unknown client_id: 404; a redirect_uri not on the app's callback
  URL (same host and port, path below it): 302 to the callback with `error=redirect_uri_mismatch`, as GitHub does.
- `POST /login/oauth/access_token` (form: client_id, client_secret, code, redirect_uri; `Accept:
  application/json`): 200 `{"access_token", "token_type": "bearer", "scope"}`; errors also with 200 and
  `{"error", "error_description", "error_uri"}`: `incorrect_client_credentials`, `redirect_uri_mismatch`,
  `bad_verification_code` (unknown, used or older than 10 minutes: codes are single use).
- `GET /api/v3/user` (`Authorization: Bearer|token <t>`): the user (`login`, `id`, `node_id`, `type`, ...);
  401 `{"message": "Bad credentials", ...}`.
- `GET /api/v3/user/orgs`: the user's organizations (`login`, `id`, `url`, ...); without `read:org`, only
  the public memberships.
- `GET /api/v3/orgs/{org}/teams/{team_slug}/memberships/{username}`: 200 `{"url", "role", "state"}`
  (`active` or `pending`), 404 `{"message": "Not Found"}` otherwise.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mcp_server.devenv.processes import free_port

_DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"


@dataclass
class FakeUser:
    login: str
    id: int
    orgs: dict[str, bool] = field(default_factory=dict)  # org -> membership is public
    teams: dict[tuple[str, str], str] = field(default_factory=dict)  # (org, team slug) -> "active" | "pending"


@dataclass
class _Code:
    login: str
    redirect_uri: str
    scope: str
    at: float
    used: bool = False


@dataclass
class FakeGitHubOAuth:
    client_id: str = "Iv1.fakeclientid"
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))
    callback_url: str = ""  # the OAuth app's registered callback URL
    users: dict[str, FakeUser] = field(default_factory=dict)
    signed_in: str | None = None  # who is signed in at github.com in "the browser"
    codes: dict[str, _Code] = field(default_factory=dict)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (login, scope)
    token_requests: int = 0
    sessions: dict[str, str] = field(default_factory=dict)  # user_session cookie -> login

    def add_user(self, login: str, orgs: dict[str, bool] | None = None,
                 teams: dict[tuple[str, str], str] | None = None) -> FakeUser:
        user = FakeUser(login, 1000 + len(self.users), dict(orgs or {}), dict(teams or {}))
        self.users[login] = user
        return user

    def _callback_ok(self, redirect_uri: str) -> bool:
        want, got = urlsplit(self.callback_url), urlsplit(redirect_uri)
        return (want.scheme, want.netloc) == (got.scheme, got.netloc) and got.path.startswith(want.path)

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if q.get("client_id") != self.client_id:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        redirect_uri = q.get("redirect_uri") or self.callback_url
        state = q.get("state")
        if not self._callback_ok(redirect_uri):
            error = urlencode({"error": "redirect_uri_mismatch", "state": state or ""})
            return RedirectResponse(f"{self.callback_url}?{error}")
        login = self.signed_in or self.sessions.get(request.cookies.get("user_session", ""))
        if login is None:
            return _sign_in_form(str(request.url))
        code = secrets.token_hex(10)
        self.codes[code] = _Code(login, redirect_uri, q.get("scope", ""), time.time())
        params = {"code": code, **({"state": state} if state is not None else {})}
        return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

    async def session(self, request: Request) -> Response:
        form = await request.form()
        login, return_to = str(form.get("login", "")), str(form.get("return_to", "/"))
        if login not in self.users:
            return _sign_in_form(return_to, "Incorrect username or password.")
        sid = secrets.token_hex(16)
        self.sessions[sid] = login
        response = RedirectResponse(return_to, status_code=302)
        response.set_cookie("user_session", sid, httponly=True, samesite="lax")
        return response

    async def access_token(self, request: Request) -> Response:
        self.token_requests += 1
        form = await request.form()
        if request.headers.get("accept") != "application/json":
            return Response("access_token=&error=unsupported_accept", media_type="application/x-www-form-urlencoded")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
        code = self.codes.get(str(form.get("code", "")))
        if code is None or code.used or time.time() - code.at > 600:
            return _error("bad_verification_code", "The code passed is incorrect or expired.")
        if form.get("redirect_uri") not in (None, code.redirect_uri):
            return _error("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL "
                          "for this application.")
        code.used = True
        token = "gho_" + secrets.token_hex(18)
        self.tokens[token] = (code.login, code.scope)
        return JSONResponse({"access_token": token, "token_type": "bearer", "scope": code.scope})

    def _caller(self, request: Request) -> tuple[FakeUser, str] | None:
        kind, _, token = request.headers.get("authorization", "").partition(" ")
        if kind.lower() not in ("bearer", "token") or token not in self.tokens:
            return None
        login, scope = self.tokens[token]
        return self.users[login], scope

    async def user(self, request: Request) -> Response:
        caller = self._caller(request)
        if caller is None:
            return _bad_credentials()
        u = caller[0]
        return JSONResponse({"login": u.login, "id": u.id, "node_id": f"U_{u.id}", "type": "User",
                             "site_admin": False, "name": u.login.title(), "html_url": f"https://github.fake/{u.login}"})

    async def user_orgs(self, request: Request) -> Response:
        caller = self._caller(request)
        if caller is None:
            return _bad_credentials()
        u, scope = caller
        private_ok = "read:org" in scope.split(",") or "read:org" in scope.split()
        return JSONResponse([{"login": org, "id": 5000 + i, "node_id": f"O_{i}", "url": f"/api/v3/orgs/{org}",
                              "description": None} for i, (org, public) in enumerate(sorted(u.orgs.items()))
                             if public or private_ok])

    async def team_membership(self, request: Request) -> Response:
        if self._caller(request) is None:
            return _bad_credentials()
        org, team, username = (request.path_params[k] for k in ("org", "team", "username"))
        user = self.users.get(username)
        state = user.teams.get((org, team)) if user else None
        if state is None:
            return JSONResponse({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
                                status_code=404)
        return JSONResponse({"url": str(request.url), "role": "member", "state": state})

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/login/oauth/authorize", self.authorize, methods=["GET"]),
            Route("/login/oauth/access_token", self.access_token, methods=["POST"]),
            Route("/session", self.session, methods=["POST"]),
            Route("/api/v3/user", self.user, methods=["GET"]),
            Route("/api/v3/user/orgs", self.user_orgs, methods=["GET"]),
            Route("/api/v3/orgs/{org}/teams/{team}/memberships/{username}", self.team_membership, methods=["GET"]),
        ])


def _sign_in_form(return_to: str, flash: str = "") -> Response:
    return HTMLResponse(
        "<!doctype html><title>Sign in to GitHub</title><h1>Sign in to GitHub</h1>"
        + (f"<p class=flash>{escape(flash)}</p>" if flash else "")
        + "<form method=post action=/session><label>Username <input name=login id=login_field></label>"
        "<label>Password <input type=password name=password id=password></label>"
        f"<input type=hidden name=return_to value=\"{escape(return_to)}\"><input type=submit name=commit "
        "value=\"Sign in\"></form>", status_code=200 if not flash else 422)


def _error(error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description, "error_uri": _DOCS})


def _bad_credentials() -> Response:
    return JSONResponse({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
                        status_code=401)


@asynccontextmanager
async def fake_github_oauth_running(fake: FakeGitHubOAuth) -> AsyncIterator[str]:
    """Serve `fake` on 127.0.0.1 (uvicorn, in the caller's loop); yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(fake.app(), host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            task.result()
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await task


__all__ = ["FakeGitHubOAuth", "FakeUser", "fake_github_oauth_running"]
