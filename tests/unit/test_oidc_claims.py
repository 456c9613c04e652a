"""How an external issuer's verified claims become a tenant and scopes (`mcp_server.oauth.oidc.map_claims`), the
settings that refuse a half-made configuration, and the registration budget's window."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mcp_server.auth_audit import OIDC_REASONS
from mcp_server.oauth.oidc import Mapped, Refused, claim_at, map_claims, token_scopes
from mcp_server.oauth.registration_limit import RegistrationBudget
from mcp_server.settings import ALL_SCOPES, OAuthSettings, OidcSettings


def settings(**kw: Any) -> OidcSettings:
    return OidcSettings(issuer="https://id.example/realms/deploy", **kw)


def refusal(s: OidcSettings, claims: dict[str, Any]) -> str:
    with pytest.raises(Refused) as e:
        map_claims(s, claims)
    return e.value.refusal.reason


def test_the_default_rule_takes_the_tenant_claim_and_the_tokens_scopes_within_all_scopes() -> None:
    mapped = map_claims(settings(), {"tenant": "acme", "scope": "openid profile apps:read logs:read platform:read"})
    # platform:read is an operator scope: the default rule (ALL_SCOPES) does not grant it
    assert mapped == Mapped("acme", ["apps:read", "logs:read"])


def test_scopes_are_read_from_a_space_separated_string_or_a_list() -> None:
    assert token_scopes("a b  c") == {"a", "b", "c"}
    assert token_scopes(["a", 3, "b"]) == {"a", "b"}
    assert token_scopes(None) == set() and token_scopes({"a": 1}) == set()


def test_without_a_scopes_claim_the_rule_grants_its_scopes() -> None:
    s = settings(scopes_claim="", rules=[{"scopes": ["apps:read", "logs:read"]}])  # "": none (TOML has no null)
    assert s.scopes_claim is None
    assert map_claims(s, {"tenant": "acme", "scope": "apps:write"}) == Mapped("acme", ["apps:read", "logs:read"])


def test_the_first_matching_rule_wins_over_list_and_nested_claims() -> None:
    s = settings(tenant_claim="org.slug", rules=[
        {"claim": "realm_access.roles", "value": "deployer", "tenant": "deployers", "scopes": ["apps:write"]},
        {"claim": "groups", "value": "/acme", "scopes": ["apps:read"]},
    ])
    claims: dict[str, Any] = {"realm_access": {"roles": ["offline", "deployer"]}, "groups": ["/acme"],
                              "org": {"slug": "acme"}, "scope": "apps:read apps:write"}
    assert map_claims(s, claims) == Mapped("deployers", ["apps:write"])
    claims["realm_access"]["roles"] = ["offline"]
    assert map_claims(s, claims) == Mapped("acme", ["apps:read"])  # the tenant from the nested claim
    claims["groups"] = "/acme"  # a string claim equal to the value matches too
    assert map_claims(s, claims).tenant == "acme"
    claims["groups"] = ["/other"]
    assert refusal(s, claims) == "no_rule"


def test_a_claim_whose_name_has_dots_is_found_before_a_path() -> None:
    assert claim_at({"https://example.com/tenant": "acme"}, "https://example.com/tenant") == "acme"
    assert claim_at({"a": {"b": 1}}, "a.b") == 1 and claim_at({"a": 1}, "a.b") is None


@pytest.mark.parametrize("tenant", [None, "", "Acme", "a_b", ["acme"], "x" * 64])
def test_a_tenant_claim_missing_or_not_a_tenant_name_is_refused(tenant: Any) -> None:
    claims = {"scope": "apps:read"} if tenant is None else {"tenant": tenant}
    assert refusal(settings(), claims) == "no_tenant"


def test_a_rules_own_tenant_needs_no_tenant_claim() -> None:
    s = settings(rules=[{"tenant": "solo", "scopes": list(ALL_SCOPES)}])
    assert map_claims(s, {"scope": "apps:read"}) == Mapped("solo", ["apps:read"])


def test_settings_refuse_half_rules_unknown_scopes_and_both_modes_at_once() -> None:
    with pytest.raises(ValidationError, match="both `claim` and `value`"):
        settings(rules=[{"claim": "groups"}])
    with pytest.raises(ValidationError, match="unknown scope"):
        settings(rules=[{"scopes": ["apps:everything"]}])
    with pytest.raises(ValidationError, match="must be an https URL"):
        OidcSettings(issuer="id.example")
    with pytest.raises(ValidationError, match="exclude each other"):
        OAuthSettings(enabled=True, client_id="x", client_secret="y",
                      oidc={"issuer": "https://id.example"})


def test_the_registration_budget_refuses_past_its_count_until_the_window_ends() -> None:
    now = [1000.0]
    budget = RegistrationBudget(2, period=3600, clock=lambda: now[0])
    assert budget.admit("10.0.0.1") is None and budget.admit("10.0.0.1") is None
    now[0] += 600
    assert budget.admit("10.0.0.1") == pytest.approx(3000)  # seconds until the window that began at 1000 ends
    assert budget.admit("10.0.0.2") is None  # per address
    now[0] += 3000
    assert budget.admit("10.0.0.1") is None


def test_every_reason_the_verifier_notes_is_one_auth_refusals_admits() -> None:
    root = Path(__file__).resolve().parents[2]
    noted = set(re.findall(r'Refused\("([a-z_]+)"', (root / "mcp_server/oauth/oidc.py").read_text()))
    assert noted <= {*OIDC_REASONS, "malformed", "expired"}, noted
    migration = (root / "mcp_server/store/migrations/0017_oidc_refusals.sql").read_text()
    assert all(f"'{r}'" in migration for r in OIDC_REASONS)
