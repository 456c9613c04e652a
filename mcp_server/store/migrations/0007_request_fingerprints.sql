-- Idempotency keys refuse a retry whose arguments differ from the first call's (as Stripe's API does): each
-- keyed row keeps a fingerprint of the request that made it, {"tool": ..., "args": {name: digest}} (digests
-- only: secret arguments are keyed HMACs, never their values). Rows written before this have none, and a retry
-- with their key returns them as before.
ALTER TABLE deployments ADD COLUMN request_fingerprint jsonb;

-- Volume operations take a key too: create and restore per project (among live volumes), snapshots and
-- backups per volume.
ALTER TABLE volumes ADD COLUMN idempotency_key text;
ALTER TABLE volumes ADD COLUMN request_fingerprint jsonb;
CREATE UNIQUE INDEX volumes_idempotency_key ON volumes (project_id, idempotency_key)
    WHERE deleted_at IS NULL AND idempotency_key IS NOT NULL;

ALTER TABLE volume_snapshots ADD COLUMN idempotency_key text;
ALTER TABLE volume_snapshots ADD COLUMN request_fingerprint jsonb;
CREATE UNIQUE INDEX volume_snapshots_idempotency_key ON volume_snapshots (volume_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
