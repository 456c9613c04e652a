"""An external OpenID Connect issuer (Keycloak, Dex, Authentik) as the MCP endpoint's authorization server
(`oauth.oidc`, docs/decisions/0018-oidc.md): this server is then only the resource server, and checks each
bearer JWT itself, with joserfc (the JOSE library that replaced `authlib.jose`, by authlib's author):

- the signature, RS256 or ES256 only, with the issuer's published key the header's `kid` names
  (`jwks.IssuerKeys`); `none`, HS* (a public key used as an HMAC secret) and everything else are refused before
  any key is looked at;
- `iss` exactly the issuer; `aud` this MCP endpoint's URL (RFC 8707) or `oauth.oidc.audience`;
- `exp` (required), `nbf`, `iat` with `leeway_seconds`;
- the claims mapped to a tenant and scopes by `oauth.oidc.rules` (`map_claims`).

API tokens (`dmcp_...`) are verified beside these, as without OIDC. A refusal is noted (`note_refusal`) so the
401 says why and the `auth_refusals` row records it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, ClaimError, ExpiredTokenError, JoseError
from mcp.server.auth.provider import AccessToken

from mcp_server.auth import TOKEN_PREFIX, ApiTokenVerifier, TokenRefusal, note_refusal
from mcp_server.oauth.jwks import KEY_TYPES, IssuerKeys, KeysUnavailable
from mcp_server.settings import ALL_SCOPES, OPERATOR_SCOPES, OidcSettings

MAX_TOKEN = 16 * 1024
_TENANT = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class Refused(Exception):
    def __init__(self, reason: str, description: str, tenant: str | None = None) -> None:
        super().__init__(description)
        self.refusal = TokenRefusal(reason, description, tenant)


@dataclass(frozen=True)
class Mapped:
    tenant: str
    scopes: list[str]


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path (`realm_access.roles`); a claim whose own name has dots is found first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _holds(value: Any, wanted: str) -> bool:
    return value == wanted or (isinstance(value, list) and wanted in value)


def token_scopes(value: Any) -> set[str]:
    """A scope claim: RFC 9068's space-separated `scope`, or a list (`scp`, Authentik's and Entra's form)."""
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {s for s in value if isinstance(s, str)}
    return set()


def map_claims(settings: OidcSettings, claims: Mapping[str, Any]) -> Mapped:
    """The tenant and scopes of a verified token: the first rule it matches; the tenant is the rule's or the
    `tenant_claim`'s; the scopes are the token's (`scopes_claim`) within the rule's, or the rule's when there
    is no scopes claim to read."""
    rule = next((r for r in settings.rules
                 if r.claim is None or (r.value is not None and _holds(claim_at(claims, r.claim), r.value))), None)
    if rule is None:
        raise Refused("no_rule", "the token matches no rule of oauth.oidc.rules (its claims admit no tenant)")
    tenant = rule.tenant
    if tenant is None:
        value = claim_at(claims, settings.tenant_claim)
        if value is None:
            raise Refused("no_tenant", f"the token has no `{settings.tenant_claim}` claim naming its tenant")
        if not isinstance(value, str) or not _TENANT.fullmatch(value):
            raise Refused("no_tenant", f"the token's `{settings.tenant_claim}` claim is not a tenant name "
                          "(a lowercase DNS label)")
        tenant = value
    allowed = set(rule.scopes) & {*ALL_SCOPES, *OPERATOR_SCOPES}
    if settings.scopes_claim is None:
        return Mapped(tenant, sorted(allowed))
    return Mapped(tenant, sorted(token_scopes(claim_at(claims, settings.scopes_claim)) & allowed))


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or len(token) > MAX_TOKEN:
        raise Refused("malformed", "the token is neither a platform token nor a signed JWT (header.payload.sig)")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError as e:
        raise Refused("malformed", "the JWT's header is not base64url JSON") from e
    if not isinstance(header, dict):
        raise Refused("malformed", "the JWT's header is not a JSON object")
    return header


class OidcVerifier:
    """`mcp.server.auth.provider.TokenVerifier` for the external issuer's JWTs and the platform's API tokens."""

    def __init__(self, settings: OidcSettings, resource_url: str, api_tokens: ApiTokenVerifier,
                 keys: IssuerKeys | None = None) -> None:
        assert settings.issuer is not None
        self.settings, self.issuer = settings, settings.issuer
        self.resource_url = resource_url
        self.api_tokens = api_tokens
        self.keys = keys or IssuerKeys(settings.issuer, settings.jwks_cache_seconds, settings.jwks_refetch_seconds)
        self.audiences = {resource_url, resource_url.rstrip("/"), resource_url.rstrip("/") + "/"}
        if settings.audience:
            self.audiences.add(settings.audience)

    async def verify_token(self, token: str) -> AccessToken | None:
        if token.startswith(TOKEN_PREFIX):
            api = await self.api_tokens.verify_token(token)
            # minted by this server for itself: its audience is this resource
            return api.model_copy(update={"resource": self.resource_url}) if api is not None else None
        try:
            return await self._verify(token)
        except Refused as e:
            note_refusal(e.refusal)
            return None

    async def _verify(self, token: str) -> AccessToken:
        header = _header(token)
        alg = header.get("alg")
        if alg not in KEY_TYPES:
            raise Refused("algorithm", f"the JWT is signed with alg {str(alg)[:16]!r}; only RS256 and ES256 are "
                          "accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Refused("malformed", "the JWT's kid is not a string")
        try:
            key = await self.keys.key(kid, alg)
        except KeysUnavailable as e:
            raise Refused("keys_unavailable", "the issuer's signing keys cannot be read just now") from e
        if key is None:
            raise Refused("unknown_key", f"the JWT is signed with a key (kid {str(kid)[:64]!r}, {alg}) the issuer "
                          f"{self.issuer} does not publish")
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except BadSignatureError as e:
            raise Refused("bad_signature", "the JWT's signature does not verify with the issuer's key") from e
        except JoseError as e:
            raise Refused("malformed", f"the JWT cannot be read ({e.error})") from e
        if claims.get("iss") != self.issuer:
            raise Refused("wrong_issuer", f"the JWT's issuer (iss) is not {self.issuer}")
        # mapped first, refused last: a token refused for its audience or expiry still names its tenant in the row
        try:
            mapped: Mapped | Refused = map_claims(self.settings, claims)
        except Refused as e:
            mapped = e
        tenant = mapped.tenant if isinstance(mapped, Mapped) else None
        aud = claims.get("aud")
        if not any(_holds(aud, a) for a in self.audiences):
            raise Refused("wrong_audience", f"the JWT's audience (aud) is not this endpoint ({self.resource_url})"
                          + (f" nor {self.settings.audience}" if self.settings.audience else ""), tenant)
        try:
            jwt.JWTClaimsRegistry(leeway=self.settings.leeway_seconds, exp={"essential": True},
                                  sub={"essential": True}).validate(claims)
        except ExpiredTokenError as e:
            raise Refused("expired", "the JWT has expired (exp)", tenant) from e
        except ClaimError as e:
            raise Refused("invalid_claims", f"the JWT's claim {e.claim!r} is missing or invalid: {e.description}",
                          tenant) from e
        if isinstance(mapped, Refused):
            raise mapped
        subject = str(claims["sub"])
        return AccessToken(
            token=token, client_id=str(claims.get("azp") or claims.get("client_id") or "oidc"),
            scopes=mapped.scopes, expires_at=int(claims["exp"]) + self.settings.leeway_seconds,
            resource=self.resource_url, subject=f"oidc:{subject}",
            claims={"tenant": mapped.tenant, "via": "http-oidc", "iss": self.issuer})
