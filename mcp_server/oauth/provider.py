"""The SDK's `OAuthAuthorizationServerProvider` over Postgres. The SDK's handlers check what the protocol
fixes (PKCE S256 against the verifier, the redirect URI registered and repeated, code expiry, refresh scopes);
this module decides what is ours: a login at GitHub before any code, the `resource` (RFC 8707) bound into the
grant and so into every token's audience, codes and refresh tokens good once (a second use revokes the whole
grant: it means one of them leaked), and tokens stored as hashes only.

`load_access_token` also answers for the platform's API tokens (`dmcp_...` from `deploy-mcp token create`),
so one verifier serves both kinds: the SDK accepts one provider or one verifier, not both."""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit
from uuid import UUID

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    OAuthAuthorizationServerProvider,
    RefreshToken,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

from mcp_server.auth import TOKEN_PREFIX, ApiTokenVerifier, TokenStore
from mcp_server.oauth.client_metadata import ClientMetadataError, fetch_client_metadata, is_metadata_url
from mcp_server.oauth.github import GitHubLogin
from mcp_server.settings import ALL_SCOPES, OPERATOR_SCOPES, OAuthSettings

log = logging.getLogger(__name__)
ACCESS_PREFIX = TOKEN_PREFIX + "oa_"  # still `dmcp_`: redaction and secret scanners know it
REFRESH_PREFIX = TOKEN_PREFIX + "or_"
CODE_PREFIX = TOKEN_PREFIX + "oc_"


class OAuthStore(TokenStore, Protocol):
    """The queries of `mcp_server.store.oauth.PgOAuth` the provider needs."""

    async def save_oauth_client(self, client_id: str, info: dict[str, Any]) -> None: ...
    async def sweep_oauth_clients(self) -> int: ...
    async def oauth_client(self, client_id: str) -> dict[str, Any] | None: ...
    async def start_oauth_login(self, login_id: str, client_id: str, params: dict[str, Any],
                                expires_at: datetime) -> None: ...
    async def identify_oauth_login(self, login_id: str, tenant: str, subject: str, scopes: list[str],
                                   consent: str) -> bool: ...
    async def oauth_login(self, login_id: str) -> dict[str, Any] | None: ...
    async def end_oauth_login(self, login_id: str, consent: str | None) -> dict[str, Any] | None: ...
    async def create_oauth_grant(
        self, client_id: str, tenant: str, subject: str, scopes: list[str], resource: str | None, *,
        code: str, code_challenge: str, redirect_uri: str, redirect_uri_explicit: bool, expires_at: datetime,
    ) -> UUID: ...
    async def oauth_code(self, code: str) -> dict[str, Any] | None: ...
    async def use_oauth_code(self, code: str) -> bool: ...
    async def revoke_oauth_grant(self, grant_id: UUID) -> None: ...
    async def add_oauth_token(self, grant_id: UUID, kind: str, token: str, scopes: list[str],
                              expires_at: datetime) -> None: ...
    async def oauth_token(self, token: str, kind: str) -> dict[str, Any] | None: ...
    async def use_oauth_refresh_token(self, token: str) -> bool: ...


class GrantCode(AuthorizationCode):
    grant_id: UUID


class GrantRefreshToken(RefreshToken):
    grant_id: UUID


def issuer_for(settings: OAuthSettings, resource_url: str) -> str:
    """The issuer: `oauth.issuer_url`, or the origin of the MCP endpoint's public URL. https, except on a
    loopback address (RFC 8414; the SDK refuses to start otherwise: say here what to set)."""
    parts = urlsplit(resource_url)
    issuer = (settings.issuer_url or f"{parts.scheme}://{parts.netloc}").rstrip("/")
    url = urlsplit(issuer)
    if url.scheme != "https" and url.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError(f"oauth.enabled needs an https issuer, and {issuer} is not one: set http.public_url "
                         "(DEPLOY_MCP_HTTP__PUBLIC_URL) to the https URL clients reach the MCP endpoint at, or "
                         "oauth.issuer_url")
    return issuer


def _at(seconds_from_now: float) -> datetime:
    return datetime.fromtimestamp(time.time() + seconds_from_now, UTC)


class PlatformAuthProvider(OAuthAuthorizationServerProvider[GrantCode, GrantRefreshToken, AccessToken]):
    def __init__(self, store: OAuthStore, settings: OAuthSettings, resource_url: str, github: GitHubLogin) -> None:
        self.store = store
        self.settings = settings
        self.resource_url = resource_url
        self.github = github
        self.api_tokens = ApiTokenVerifier(store)

    # clients (RFC 7591)
    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        if self.settings.client_metadata_documents and is_metadata_url(client_id):
            try:
                client = await fetch_client_metadata(client_id, " ".join((*ALL_SCOPES, *OPERATOR_SCOPES)),
                                                     self.settings.client_metadata_allowed_hosts)
            except ClientMetadataError as e:
                log.warning("refused the client metadata document: %s", e)
                return None
            # kept as a registered client is (logins and grants refer to it), refreshed on every fetch
            await self.store.save_oauth_client(client_id, client.model_dump(mode="json"))
            return client
        info = await self.store.oauth_client(client_id)
        return OAuthClientInformationFull.model_validate(info) if info is not None else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None  # the SDK's registration handler assigns it
        # each registration sweeps the clients registered a day ago and never used (registration_limit.py)
        await self.store.sweep_oauth_clients()
        await self.store.save_oauth_client(client_info.client_id, client_info.model_dump(mode="json"))

    # authorization: off to GitHub; routes.py comes back with the code
    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and params.resource.rstrip("/") != self.resource_url.rstrip("/"):
            raise AuthorizeError("invalid_target", f"this server issues tokens for {self.resource_url} only, "
                                 f"not for resource {params.resource!r}")
        assert client.client_id is not None
        login_id = secrets.token_urlsafe(32)
        await self.store.start_oauth_login(login_id, client.client_id, params.model_dump(mode="json"),
                                           _at(self.settings.code_seconds))
        return self.github.authorize_url(state=login_id)

    async def issue_code(self, login: dict[str, Any]) -> tuple[str, AuthorizationParams]:
        """After consent: a code for the login's client, bound to its grant (tenant, subject, scopes, and the
        resource the token will be for; none asked: this server's only resource)."""
        params = AuthorizationParams.model_validate(login["params"])
        code = CODE_PREFIX + secrets.token_urlsafe(32)
        await self.store.create_oauth_grant(
            login["client_id"], login["tenant"], login["subject"], list(login["scopes"]),
            params.resource or self.resource_url, code=code, code_challenge=params.code_challenge,
            redirect_uri=str(params.redirect_uri), redirect_uri_explicit=params.redirect_uri_provided_explicitly,
            expires_at=_at(self.settings.code_seconds))
        return code, params

    async def load_authorization_code(self, client: OAuthClientInformationFull,
                                      authorization_code: str) -> GrantCode | None:
        row = await self.store.oauth_code(authorization_code)
        if row is None or row["client_id"] != client.client_id or row["revoked"]:
            return None
        if row["used"]:
            # RFC 6749 §4.1.2 / OAuth 2.1: a code presented twice revokes what it was exchanged for
            await self.store.revoke_oauth_grant(row["grant_id"])
            return None
        return GrantCode(
            code=authorization_code, scopes=list(row["scopes"]), expires_at=row["expires_at"].timestamp(),
            client_id=row["client_id"], code_challenge=row["code_challenge"], redirect_uri=row["redirect_uri"],
            redirect_uri_provided_explicitly=row["redirect_uri_explicit"], resource=row["resource"],
            subject=row["subject"], grant_id=row["grant_id"])

    async def exchange_authorization_code(self, client: OAuthClientInformationFull,
                                          authorization_code: GrantCode) -> OAuthToken:
        if not await self.store.use_oauth_code(authorization_code.code):  # a racing exchange won
            await self.store.revoke_oauth_grant(authorization_code.grant_id)
            raise TokenError("invalid_grant", "the authorization code was used already or has expired")
        return await self._issue(authorization_code.grant_id, authorization_code.scopes)

    # refresh: rotated on every use
    async def load_refresh_token(self, client: OAuthClientInformationFull,
                                 refresh_token: str) -> GrantRefreshToken | None:
        if not refresh_token.startswith(REFRESH_PREFIX):
            return None
        row = await self.store.oauth_token(refresh_token, "refresh")
        if row is None or row["client_id"] != client.client_id or row["revoked"] or row["expired"]:
            return None
        if row["used"]:
            # a rotated refresh token came back: it was copied; end the grant for whoever holds it now
            await self.store.revoke_oauth_grant(row["grant_id"])
            return None
        return GrantRefreshToken(
            token=refresh_token, client_id=row["client_id"], scopes=list(row["scopes"]),
            expires_at=int(row["expires_at"].timestamp()), resource=row["resource"], subject=row["subject"],
            grant_id=row["grant_id"])

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: GrantRefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        if not await self.store.use_oauth_refresh_token(refresh_token.token):
            await self.store.revoke_oauth_grant(refresh_token.grant_id)
            raise TokenError("invalid_grant", "the refresh token was used already, revoked or expired")
        return await self._issue(refresh_token.grant_id, scopes)

    async def _issue(self, grant_id: UUID, scopes: list[str]) -> OAuthToken:
        access = ACCESS_PREFIX + secrets.token_urlsafe(32)
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        await self.store.add_oauth_token(grant_id, "access", access, scopes, _at(self.settings.access_token_seconds))
        await self.store.add_oauth_token(grant_id, "refresh", refresh, scopes,
                                         _at(self.settings.refresh_token_seconds))
        return OAuthToken(access_token=access, token_type="Bearer",  # noqa: S106 (a type, not a secret)
                          expires_in=self.settings.access_token_seconds, scope=" ".join(scopes) or None,
                          refresh_token=refresh)

    # every request
    async def load_access_token(self, token: str) -> AccessToken | None:
        if not token.startswith(ACCESS_PREFIX):
            api = await self.api_tokens.verify_token(token)
            # an API token is minted by this server for itself: its audience is this resource
            return api.model_copy(update={"resource": self.resource_url}) if api is not None else None
        row = await self.store.oauth_token(token, "access")
        if row is None or row["revoked"] or row["expired"]:
            return None
        return AccessToken(
            token=token, client_id=row["client_id"], scopes=list(row["scopes"]),
            expires_at=int(row["expires_at"].timestamp()), resource=row["resource"], subject=row["subject"],
            claims={"tenant": row["tenant"], "grant_id": str(row["grant_id"]), "via": "http-oauth"})

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        """RFC 7009: the access or refresh token, and with it every token of its grant."""
        if isinstance(token, GrantRefreshToken):
            await self.store.revoke_oauth_grant(token.grant_id)
        elif isinstance(token, AccessToken) and token.claims and "grant_id" in token.claims:
            await self.store.revoke_oauth_grant(UUID(str(token.claims["grant_id"])))
        # an API token is revoked with `deploy-mcp token revoke`, not by an OAuth client
