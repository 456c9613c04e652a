-- Databases the platform runs for apps (issue 16), and their logical backups. The password is sealed with the
-- secrets key (SecretBox, like secret versions): `ciphertext` is what the database runs with,
-- `pending_ciphertext` a rotation's new password until the database has taken it. Status is the last outcome
-- of the database workflow; what the cluster shows (ready, disk, connections) is observed, not stored here.
CREATE TABLE databases (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id           uuid NOT NULL REFERENCES projects(id),
    name                 text NOT NULL,
    engine               text NOT NULL DEFAULT 'statefulset' CHECK (engine IN ('statefulset', 'cloudnative-pg')),
    version              integer NOT NULL,
    size_gib             integer NOT NULL CHECK (size_gib > 0),
    class                text NOT NULL,
    resources            jsonb NOT NULL DEFAULT '{}',
    status               text NOT NULL DEFAULT 'creating',
    status_reason        text,
    app_id               uuid REFERENCES apps(id),
    ciphertext           bytea NOT NULL,       -- the sealed password (secrets key rotation re-seals it)
    pending_ciphertext   bytea,
    created_by           text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE UNIQUE INDEX databases_live_name ON databases (project_id, name) WHERE deleted_at IS NULL;
-- one database per app: its DATABASE_URL names one
CREATE UNIQUE INDEX databases_one_per_app ON databases (app_id) WHERE deleted_at IS NULL AND app_id IS NOT NULL;

CREATE TABLE database_backups (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    database_id  uuid NOT NULL REFERENCES databases(id),
    kind         text NOT NULL CHECK (kind IN ('scheduled', 'manual', 'safety', 'final')),
    name         text NOT NULL,              -- the dump's name at the backup target
    status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    size_bytes   bigint,
    error        text,                       -- the failure's text, never a secret
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (database_id, name)
);
CREATE INDEX database_backups_recent ON database_backups (database_id, started_at DESC);
