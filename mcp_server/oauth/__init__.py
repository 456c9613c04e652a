"""The platform as OAuth 2.1 authorization server for its own MCP endpoint (docs/decisions/0012-oauth.md).

The mcp SDK serves the protocol (metadata, /authorize, /token, /register, /revoke, PKCE S256, redirect URI
checks); `provider.py` implements its `OAuthAuthorizationServerProvider` over Postgres (`store/oauth.py`);
`github.py` signs the user in at GitHub, `rules.py` maps them to a tenant, `pages.py` renders the consent and
refusal pages, `routes.py` serves GitHub's callback and the consent form.
"""
