-- Snapshots and backups of volumes, and each volume's backup policy.
ALTER TABLE volumes ADD COLUMN backup_schedule text;
ALTER TABLE volumes ADD COLUMN backup_retain integer;
ALTER TABLE volumes ADD COLUMN restored_from uuid;

CREATE TABLE volume_snapshots (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    volume_id   uuid NOT NULL REFERENCES volumes(id),
    kind        text NOT NULL CHECK (kind IN ('snapshot', 'backup')),
    k8s_name    text NOT NULL,            -- the VolumeSnapshot
    status      text NOT NULL DEFAULT 'pending',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ready_at    timestamptz,
    UNIQUE (volume_id, k8s_name)
);
