-- Scaling (tools/scaling.py, docs/decisions/0015-autoscaling.md). `apps.scale` is what `scale` recorded:
-- {"replicas": n} (a fixed count) or {"autoscale": {"min", "max", "cpu_percent", "memory_percent"}}; null for
-- an app never scaled (each release runs its own configured count). The next release and a rollback start
-- from it, and the reconciler holds the serving release to it. A release that becomes serving with a fixed
-- count records its count here (a deploy with `replicas` changes the app's count).
ALTER TABLE apps ADD COLUMN scale jsonb;
-- The autoscaler as the reconciler last saw it (current/desired replicas, conditions), for get_app.
ALTER TABLE app_observations ADD COLUMN autoscaler jsonb;
