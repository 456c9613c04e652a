-- Refused authentications (HTTP 401), apart from audit_events (one row per tool call): no tool ran, and the
-- caller may be nobody. Never the token: its first characters only when it has the platform's format, as
-- api_tokens.prefix keeps them. The server caps the rows per remote address and minute; past the cap, one
-- row with reason 'dropped' counts the refusals it did not write (mcp_server/auth_audit.py).
CREATE TABLE auth_refusals (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    remote_addr   text,
    reason        text NOT NULL CHECK (reason IN ('missing', 'malformed', 'unknown', 'revoked', 'expired',
                                                  'dropped')),
    token_prefix  text,
    tenant        text,                     -- a revoked or expired token's tenant; NULL when nobody is known
    dropped       integer NOT NULL DEFAULT 0 CHECK (dropped >= 0)
);
CREATE INDEX auth_refusals_at ON auth_refusals (at);
CREATE INDEX auth_refusals_remote ON auth_refusals (remote_addr, at);

-- A token's own budgets, over the server's `rate_limits` settings; NULL: the settings' value.
ALTER TABLE api_tokens
    ADD COLUMN calls_per_minute integer CHECK (calls_per_minute >= 1),
    ADD COLUMN concurrent_waits integer CHECK (concurrent_waits >= 1);
