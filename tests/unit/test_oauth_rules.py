"""Which tenant a GitHub user signs in to (`mcp_server.oauth.rules`), the `oauth` settings' checks, the issuer,
and which client metadata document URLs are fetched."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcp_server.oauth.client_metadata import ClientMetadataError, fetch_client_metadata, is_metadata_url
from mcp_server.oauth.provider import issuer_for
from mcp_server.oauth.rules import GitHubUser, TeamCheck, match_rule, refusal_reason
from mcp_server.settings import OAuthRule, OAuthSettings, load_settings

RULES = [
    OAuthRule(tenant="ops", org="Acme", team="sre", scopes=["apps:read", "logs:read"]),
    OAuthRule(tenant="acme", org="acme"),
    OAuthRule(tenant="solo", users=["Alice"], scopes=["apps:read"]),
]


def teams(*members: tuple[str, str, str]) -> TeamCheck:
    async def in_team(org: str, team: str, login: str) -> bool:
        return (org, team, login) in members
    return in_team


async def test_the_first_matching_rule_wins_and_names_compare_case_insensitively() -> None:
    sre = GitHubUser("bob", frozenset({"acme"}))
    rule = await match_rule(RULES, sre, teams(("Acme", "sre", "bob")))
    assert rule is not None and rule.tenant == "ops"
    member = await match_rule(RULES, sre, teams())
    assert member is not None and member.tenant == "acme"
    listed = await match_rule(RULES, GitHubUser("alice", frozenset()), teams())
    assert listed is not None and listed.tenant == "solo" and listed.scopes == ["apps:read"]


async def test_a_user_in_no_rule_matches_none_and_the_reason_says_what_would_admit_them() -> None:
    user = GitHubUser("mallory", frozenset({"elsewhere"}))
    assert await match_rule(RULES, user, teams()) is None
    reason = refusal_reason(RULES, user)
    assert "mallory" in reason and "team Acme/sre" in reason and "organization acme" in reason
    assert "ops" not in reason  # tenants are not disclosed to strangers
    assert "oauth.rules is empty" in refusal_reason([], user)


def test_rules_and_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="exactly one of `org` or `users`"):
        OAuthRule(tenant="t", org="o", users=["u"])
    with pytest.raises(ValidationError, match="exactly one of `org` or `users`"):
        OAuthRule(tenant="t")
    with pytest.raises(ValidationError, match="`team` needs `org`"):
        OAuthRule(tenant="t", users=["u"], team="x")
    with pytest.raises(ValidationError, match="unknown scope"):
        OAuthRule(tenant="t", org="o", scopes=["root"])
    with pytest.raises(ValidationError, match=r"oauth\.client_id and oauth\.client_secret"):
        OAuthSettings(enabled=True)
    with pytest.raises(ValidationError, match=r"oauth\.github_url must be an http"):
        OAuthSettings(github_url="github.com")


def test_the_rules_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_MCP_OAUTH__ENABLED", "true")
    monkeypatch.setenv("DEPLOY_MCP_OAUTH__CLIENT_ID", "Iv1.x")
    monkeypatch.setenv("DEPLOY_MCP_OAUTH__CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("DEPLOY_MCP_OAUTH__RULES", '[{"tenant": "acme", "org": "acme", "team": "deployers"}]')
    oauth = load_settings().oauth
    assert oauth.enabled and oauth.rules[0].team == "deployers" and "s3cret" not in repr(oauth)


def test_the_issuer_is_the_public_origin_and_must_be_https_off_loopback() -> None:
    oauth = OAuthSettings()
    assert issuer_for(oauth, "https://deploy.example.com/mcp") == "https://deploy.example.com"
    assert issuer_for(oauth, "http://127.0.0.1:8765/mcp") == "http://127.0.0.1:8765"
    assert issuer_for(OAuthSettings(issuer_url="https://auth.example.com/"), "https://x/mcp") == \
        "https://auth.example.com"
    with pytest.raises(ValueError, match=r"set http\.public_url"):
        issuer_for(oauth, "http://0.0.0.0:8765/mcp")


def test_only_https_urls_with_a_path_are_client_metadata_urls() -> None:
    assert is_metadata_url("https://agent.example/client.json")
    for not_one in ("http://agent.example/client.json", "https://agent.example/", "https://agent.example",
                    "https://u:p@agent.example/c.json", "https://agent.example/c.json#x", "0b8c2c4e-uuid"):
        assert not is_metadata_url(not_one), not_one


@pytest.mark.parametrize("url", ["https://127.0.0.1/c.json", "https://10.1.2.3/c.json", "https://169.254.169.254/c"])
async def test_client_metadata_is_never_fetched_from_a_private_address_unless_allowed(url: str) -> None:
    with pytest.raises(ClientMetadataError, match="client_metadata_allowed_hosts"):
        await fetch_client_metadata(url, "apps:read")
