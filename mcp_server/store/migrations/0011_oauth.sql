-- The platform as OAuth 2.1 authorization server for its own MCP endpoint (mcp_server/oauth/). Like
-- api_tokens, codes and tokens are kept as their SHA-256 only.

-- Clients registered dynamically (RFC 7591): the SDK's client information, as registered.
CREATE TABLE oauth_clients (
    client_id   text PRIMARY KEY,
    info        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- An /authorize request while its user signs in at GitHub and then consents; `state` at GitHub is its id.
CREATE TABLE oauth_logins (
    id_hash     bytea PRIMARY KEY,
    client_id   text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    params      jsonb NOT NULL,            -- the SDK's AuthorizationParams
    tenant      text,                      -- set once GitHub said who the user is and a rule matched
    subject     text,
    scopes      text[],
    consent_hash bytea,                    -- the nonce of the consent page shown to that user: only their
                                           -- browser can post the consent (the login id travels via GitHub)
    expires_at  timestamptz NOT NULL
);

-- What one user consented to for one client: every code and token descends from it, and revoking it (RFC 7009,
-- or a code or refresh token used twice) ends them all.
CREATE TABLE oauth_grants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id   text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    subject     text NOT NULL,
    scopes      text[] NOT NULL,
    resource    text,                      -- RFC 8707: the audience its tokens are bound to
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE oauth_codes (
    code_hash       bytea PRIMARY KEY,
    grant_id        uuid NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    code_challenge  text NOT NULL,          -- PKCE S256
    redirect_uri    text NOT NULL,
    redirect_uri_explicit boolean NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);

CREATE TABLE oauth_tokens (
    token_hash  bytea PRIMARY KEY,
    grant_id    uuid NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('access', 'refresh')),
    scopes      text[] NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,               -- a refresh token, rotated: using it again revokes the grant
    revoked_at  timestamptz
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);
-- the sweep of what expired (PgOAuth.start_oauth_login)
CREATE INDEX oauth_logins_expires ON oauth_logins (expires_at);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);
