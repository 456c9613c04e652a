-- Git credentials per tenant and host (write-only: Fernet ciphertext of the token or key), and build log
-- lines (the log store for builds when no Loki is configured; paged by seq).
CREATE TABLE git_credentials (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    host        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('token', 'ssh_key')),
    username    text NOT NULL,
    ciphertext  bytea NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, host)
);

ALTER TABLE builds ADD COLUMN subdir text NOT NULL DEFAULT '';
ALTER TABLE builds ADD COLUMN source_url text;
CREATE INDEX builds_commit ON builds (app_id, commit_sha, subdir);

CREATE TABLE build_log_lines (
    build_id  uuid NOT NULL REFERENCES builds(id),
    seq       integer NOT NULL,
    ts        timestamptz NOT NULL DEFAULT now(),
    line      text NOT NULL,
    PRIMARY KEY (build_id, seq)
);
