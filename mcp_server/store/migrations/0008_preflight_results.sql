-- The latest preflight of each worker host (`deploy-mcp worker` runs it at start): what `whoami` shows operators.
CREATE TABLE preflight_results (
    host       text PRIMARY KEY,
    checked_at timestamptz NOT NULL DEFAULT now(),
    ok         boolean NOT NULL,
    missing    integer NOT NULL,
    warnings   integer NOT NULL,
    results    jsonb NOT NULL
);
