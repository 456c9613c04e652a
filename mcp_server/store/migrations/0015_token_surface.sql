-- A token may offer less than its scopes allow (decision 0017): only read-only tools, only some toolsets
-- (NULL: every toolset the server offers). The server lists and allows only those tools for it.
ALTER TABLE api_tokens
    ADD COLUMN read_only boolean NOT NULL DEFAULT false,
    ADD COLUMN toolsets text[];
