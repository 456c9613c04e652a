-- The storage's own name of a volume backup (a Longhorn backup's `bak://<volume>/<backup>` snapshot handle), kept
-- so the backup can be imported into a cluster that never saw it: after a rebuild the VolumeSnapshot objects are
-- gone, while the backups live on in Longhorn's off-cluster backup target.
ALTER TABLE volume_snapshots ADD COLUMN handle text;
