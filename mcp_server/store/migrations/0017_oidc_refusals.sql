-- An external OIDC issuer's JWTs (mcp_server/oauth/oidc.py) are refused for reasons of their own
-- (mcp_server/auth_audit.py OIDC_REASONS); auth_refusals admits them beside the API tokens'.
ALTER TABLE auth_refusals DROP CONSTRAINT auth_refusals_reason_check;
ALTER TABLE auth_refusals ADD CONSTRAINT auth_refusals_reason_check CHECK (reason IN (
    'missing', 'malformed', 'unknown', 'revoked', 'expired', 'dropped',
    'wrong_issuer', 'wrong_audience', 'bad_signature', 'unknown_key', 'algorithm', 'invalid_claims',
    'no_tenant', 'no_rule', 'keys_unavailable'));
