"""Which tenant and scopes a GitHub user gets: the first `oauth.rules` entry they match."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from mcp_server.settings import OAuthRule


@dataclass(frozen=True)
class GitHubUser:
    login: str
    orgs: frozenset[str]  # lower-cased logins of the organizations GitHub lists for the user


TeamCheck = Callable[[str, str, str], Awaitable[bool]]
"""(org, team, login) -> is the user an active member of the team."""


async def match_rule(rules: Sequence[OAuthRule], user: GitHubUser, in_team: TeamCheck) -> OAuthRule | None:
    """GitHub logins and organization names are case-insensitive; compare them so."""
    login = user.login.lower()
    for rule in rules:
        if rule.users:
            if login in {u.lower() for u in rule.users}:
                return rule
            continue
        assert rule.org is not None
        if rule.org.lower() not in user.orgs:
            continue
        if rule.team is None or await in_team(rule.org, rule.team, user.login):
            return rule
    return None


def refusal_reason(rules: Sequence[OAuthRule], user: GitHubUser) -> str:
    """What the refusal page tells a user no rule let in (names only, never tenants' scopes)."""
    if not rules:
        return "This platform has no sign-in rules yet (oauth.rules is empty); ask its operator to add one."
    ways = []
    for rule in rules:
        if rule.users:
            ways.append("a listed GitHub user")
        elif rule.team:
            ways.append(f"a member of team {rule.org}/{rule.team}")
        else:
            ways.append(f"a member of organization {rule.org}")
    return (f"GitHub user {user.login} matches no sign-in rule of this platform. It admits "
            + ", ".join(sorted(set(ways))) + ". Ask its operator to add you, or sign in as another user. "
            "(Organization membership must be visible to the platform's OAuth app: grant it access to the "
            "organization on GitHub if it is restricted.)")
