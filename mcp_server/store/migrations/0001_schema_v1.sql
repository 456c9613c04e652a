-- Schema v1: the platform's state. Applied once, in order, by `deploy-mcp migrate` (see mcp_server/store.py).
-- Names follow the platform's words: tenant > project > app > deployment (a release), build, volume, domain.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(name) <= 20),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    name        text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(name) <= 20),
    namespace   text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE apps (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id             uuid NOT NULL REFERENCES projects(id),
    name                   text NOT NULL CHECK (name ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' AND length(name) <= 20),
    spec                   jsonb NOT NULL,            -- port, env, replicas, resources, health check, strategy
    hostname               text NOT NULL UNIQUE,
    serving_deployment_id  uuid,                      -- the release the stable Service selects
    status                 text NOT NULL DEFAULT 'creating',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz
);
-- A deleted app's name can be used again; the old row stays for the audit trail.
CREATE UNIQUE INDEX apps_live_name ON apps (project_id, name) WHERE deleted_at IS NULL;

-- Secret values: one immutable, encrypted snapshot per version; a release pins a version.
-- Only names are readable; `ciphertext` is a Fernet token of the JSON {name: value} map.
CREATE TABLE secret_versions (
    app_id      uuid NOT NULL REFERENCES apps(id),
    version     integer NOT NULL CHECK (version >= 0),
    names       text[] NOT NULL,
    ciphertext  bytea NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, version)
);

CREATE TABLE deployments (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id             uuid NOT NULL REFERENCES apps(id),
    seq                integer NOT NULL,               -- release number within the app: r1, r2, ...
    kind               text NOT NULL CHECK (kind IN ('deploy', 'rollback')),
    phase              text NOT NULL DEFAULT 'pending',
    source             jsonb NOT NULL,                 -- {"image": ...} or {"git": {...}}
    image              text,                           -- repository the digest belongs to
    image_digest       text,                           -- sha256:..., pinned once resolved
    commit_sha         text,
    config             jsonb NOT NULL,                 -- the app spec snapshot this release runs with
    secrets_version    integer NOT NULL DEFAULT 0,
    rollback_of        uuid REFERENCES deployments(id), -- for kind=rollback: the release restored
    workflow_id        text NOT NULL,
    idempotency_key    text,
    error              jsonb,                          -- {"reason", "message", "hint", "evidence"}
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    healthy_at         timestamptz,                    -- set once the release was Ready and served
    UNIQUE (app_id, seq),
    UNIQUE (app_id, idempotency_key)
);
CREATE INDEX deployments_app ON deployments (app_id, created_at DESC);

CREATE TABLE builds (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id         uuid NOT NULL REFERENCES apps(id),
    deployment_id  uuid REFERENCES deployments(id),
    commit_sha     text NOT NULL,
    builder        text NOT NULL,                      -- railpack | dockerfile | local-buildah
    status         text NOT NULL DEFAULT 'pending',
    image          text,
    image_digest   text,
    failed_step    text,
    error          text,
    workflow_id    text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX builds_app ON builds (app_id, created_at DESC);

CREATE TABLE volumes (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid NOT NULL REFERENCES projects(id),
    name         text NOT NULL,
    size_gib     integer NOT NULL CHECK (size_gib BETWEEN 1 AND 16384),
    class        text NOT NULL CHECK (class IN ('fast', 'standard')),
    access       text NOT NULL CHECK (access IN ('single_node', 'shared')),
    pvc_name     text NOT NULL,
    status       text NOT NULL DEFAULT 'pending',
    created_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE UNIQUE INDEX volumes_live_name ON volumes (project_id, name) WHERE deleted_at IS NULL;

CREATE TABLE volume_attachments (
    volume_id   uuid NOT NULL REFERENCES volumes(id),
    app_id      uuid NOT NULL REFERENCES apps(id),
    mount_path  text NOT NULL,
    read_only   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (volume_id, app_id)
);

CREATE TABLE domains (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_id              uuid NOT NULL REFERENCES apps(id),
    hostname            text NOT NULL UNIQUE,
    kind                text NOT NULL CHECK (kind IN ('platform', 'custom')),
    status              text NOT NULL DEFAULT 'pending',
    verification_token  text,
    tls_secret          text,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens for the HTTP transport. Only a SHA-256 of the token is kept: tokens are 256-bit random
-- strings, so a fast hash is enough (no dictionary to guess from) and lets lookups use an index.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    subject       text NOT NULL,
    scopes        text[] NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    prefix        text NOT NULL,                       -- first characters, to recognise a token in lists
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- One row per tool call, successful or not. Tenant and principal are copied as text, so the trail
-- outlives what it names. `arguments` has secret values redacted before it is written.
CREATE TABLE audit_events (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    tenant       text,
    principal    text NOT NULL,
    transport    text NOT NULL,
    tool         text NOT NULL,
    request_id   text,
    arguments    jsonb NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('ok', 'error', 'denied', 'invalid')),
    error        text,
    workflow_id  text,
    k8s_refs     jsonb NOT NULL DEFAULT '[]',
    duration_ms  integer NOT NULL
);
CREATE INDEX audit_events_tenant ON audit_events (tenant, id DESC);
