"""The two legs the SDK leaves to the provider: GitHub's callback (who signed in, which rule admits them, the
consent page) and the consent form (a code back to the client's redirect URI, or `access_denied`)."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlparse

from mcp.server.auth.provider import construct_redirect_uri
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mcp_server.oauth.github import CALLBACK_PATH, GitHubLoginError
from mcp_server.oauth.pages import CONSENT_PATH, consent_page, refusal_page
from mcp_server.oauth.provider import PlatformAuthProvider
from mcp_server.oauth.rules import match_rule, refusal_reason

log = logging.getLogger(__name__)
_EXPIRED = "This sign-in has expired or was finished already. Start again from your agent."


def login_routes(provider: PlatformAuthProvider) -> list[Route]:
    settings = provider.settings

    async def callback(request: Request) -> Response:
        state = request.query_params.get("state", "")
        code = request.query_params.get("code")
        login = await provider.store.oauth_login(state) if state else None
        if login is None or login["subject"] is not None:
            return refusal_page(_EXPIRED, 400)
        if code is None:  # the user cancelled at GitHub
            return refusal_page(f"GitHub did not sign you in ({request.query_params.get('error', 'no code')}).")
        try:
            user, gh_token = await provider.github.user(code)
            rule = await match_rule(settings.rules, user,
                                    lambda org, team, who: provider.github.in_team(gh_token, org, team, who))
        except GitHubLoginError as e:
            log.warning("GitHub sign-in failed: %s", e)
            return refusal_page(f"Signing in at GitHub failed: {e}", 502)
        if rule is None:
            await provider.store.end_oauth_login(state, None)
            return refusal_page(refusal_reason(settings.rules, user))
        asked = login["params"].get("scopes")
        # a client gets at most what the rule allows, and no more than it asked for
        scopes = sorted(set(rule.scopes) & set(asked)) if asked else sorted(rule.scopes)
        # The login id went through GitHub (whoever started the login knows it); the consent nonce exists only
        # in the page this browser receives, so only the person who signed in can answer it.
        nonce = secrets.token_urlsafe(32)
        if not await provider.store.identify_oauth_login(state, rule.tenant, f"github:{user.login}", scopes, nonce):
            return refusal_page(_EXPIRED, 400)
        client = await provider.get_client(login["client_id"])
        redirect = str(login["params"]["redirect_uri"])
        name = (client.client_name if client else None) or login["client_id"]
        return consent_page(login_id=state, nonce=nonce, client_name=name,
                            redirect_host=urlparse(redirect).netloc or redirect, user=user.login,
                            tenant=rule.tenant, scopes=scopes)

    async def consent(request: Request) -> Response:
        form = await request.form()
        login_id, nonce, decision = (str(form.get(k, "")) for k in ("login", "consent", "decision"))
        login = await provider.store.end_oauth_login(login_id, nonce) if login_id and nonce else None
        if login is None:
            return refusal_page(_EXPIRED, 400)
        state = login["params"].get("state")
        if decision != "allow":
            return RedirectResponse(construct_redirect_uri(
                str(login["params"]["redirect_uri"]), error="access_denied",
                error_description="the user denied access", state=state), status_code=303)
        code, params = await provider.issue_code(login)
        return RedirectResponse(construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state),
                                status_code=303)

    return [Route(CALLBACK_PATH, callback, methods=["GET"]), Route(CONSENT_PATH, consent, methods=["POST"])]
