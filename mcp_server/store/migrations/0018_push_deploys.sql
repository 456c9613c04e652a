-- Deploy on push and previews (decision 0020). An app connected to a branch of its repository: the hook id
-- in its webhook URL, and the webhook's signing secret as a SecretBox token of {"secret": ...} (rotated with
-- the other ciphertexts).
CREATE TABLE push_connections (
    app_id            uuid PRIMARY KEY REFERENCES apps(id),
    hook_id           text NOT NULL UNIQUE,
    branch            text NOT NULL,
    previews          boolean NOT NULL DEFAULT true,
    previews_secrets  boolean NOT NULL DEFAULT false,
    ciphertext        bytea NOT NULL,
    created_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Every signed delivery a hook received, by the provider's delivery id: a second one with the same id is a
-- replay and refused, unless the first failed on the platform's side (then a redelivery is processed).
CREATE TABLE webhook_deliveries (
    hook_id      text NOT NULL,
    delivery_id  text NOT NULL CHECK (length(delivery_id) BETWEEN 1 AND 200),
    provider     text NOT NULL,
    event        text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('received', 'deployed', 'previewed', 'removed', 'ignored',
                                                  'failed')),
    detail       text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hook_id, delivery_id)
);

-- A pull request's preview: an app of its own in the parent's project.
CREATE TABLE preview_apps (
    parent_app_id  uuid NOT NULL REFERENCES apps(id),
    pr_number      integer NOT NULL CHECK (pr_number > 0),
    app_id         uuid NOT NULL REFERENCES apps(id),
    PRIMARY KEY (parent_app_id, pr_number)
);
