-- Every Plane A backup run and restore (`deploy-mcp backup create|restore`), so a failed or missing backup is
-- visible (`backup list`, the operator's `whoami`) instead of silent. A row is written `running` before the
-- dump starts and finished `ok` or `failed`; one left `running` is a run that was killed. `target` names the
-- place without credentials; `error` is the failure's text, never a secret.
CREATE TABLE backup_runs (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL DEFAULT 'create' CHECK (kind IN ('create', 'restore')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    target       text NOT NULL,
    name         text,                         -- the archive's name at the target
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    size_bytes   bigint,
    error        text
);
CREATE INDEX backup_runs_started ON backup_runs (started_at DESC);
