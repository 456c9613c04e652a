-- The Harbor robot account of each tenant (per Harbor instance): Harbor shows a robot's secret only when it
-- creates or refreshes it, so the worker keeps it here as Fernet ciphertext (the SecretBox) and later deploys
-- reuse it for the project namespaces' pull Secrets.
CREATE TABLE harbor_robots (
    tenant_id   uuid NOT NULL REFERENCES tenants(id),
    harbor_url  text NOT NULL,
    project     text NOT NULL,            -- the Harbor project (the tenant's name)
    robot_name  text NOT NULL,            -- as Harbor names it, e.g. robot$acme+deploy-mcp
    ciphertext  bytea NOT NULL,           -- SecretBox of {"secret": ...}
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, harbor_url)
);
