-- What the reconciler last saw of each app (workflows/reconcile.py): one row per app, replaced by every pass,
-- so the status tools report the cluster as observed rather than as remembered. `drift` and `repaired` are
-- the last pass's; `last_repair_at` / `last_repaired` keep the latest repair until a newer one (the audit
-- trail holds every repair).
CREATE TABLE app_observations (
    app_id                     uuid PRIMARY KEY REFERENCES apps(id),
    observed_at                timestamptz NOT NULL DEFAULT now(),
    release                    text,
    desired_replicas           integer NOT NULL DEFAULT 0,
    ready_replicas             integer NOT NULL DEFAULT 0,
    serving_ready              boolean NOT NULL DEFAULT false,
    service_points_at_serving  boolean NOT NULL DEFAULT false,
    drift                      jsonb NOT NULL DEFAULT '[]',
    repaired                   jsonb NOT NULL DEFAULT '[]',
    error                      text,
    last_repair_at             timestamptz,
    last_repaired              jsonb NOT NULL DEFAULT '[]'
);
