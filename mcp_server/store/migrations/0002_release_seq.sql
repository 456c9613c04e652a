-- A rollback is a deployment row of its own (who, when, why) that runs an earlier release's Kubernetes
-- Deployment: `release_seq` names the release object a row runs (its own seq for a deploy, the target's
-- for a rollback).
ALTER TABLE deployments ADD COLUMN release_seq integer;
UPDATE deployments SET release_seq = seq;
ALTER TABLE deployments ALTER COLUMN release_seq SET NOT NULL;
