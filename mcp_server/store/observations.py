"""What the reconciler reads and writes: one app's desired state under the app's row lock (the lock a release
is recorded under), its observation of the cluster, and which apps there are to reconcile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from mcp_server.store.apps import APP_SELECT
from mcp_server.store.audit import PgAudit
from tools.records import AuditEvent, ObservationRecord, Outcome
from workflows.domain.phases import TERMINAL_PHASES
from workflows.domain.reconcile_contract import (
    AppKey,
    Observation,
    ReconcileTarget,
    ServingRelease,
    TargetDatabase,
    TargetVolume,
)
from workflows.domain.scaling import AppScale


class PgObservations(PgAudit):
    @asynccontextmanager
    async def reconcile_lock(self, app_id: UUID) -> AsyncIterator[ReconcileTarget]:
        """The app's desired state, with its row locked until the block ends: `create_release` waits meanwhile,
        so no release is recorded (and none starts) while a pass writes to the cluster. A row locked already
        (a release being recorded) is skipped, not waited for: the target is `busy`."""
        async with self._transaction():
            row = await self._one("SELECT id FROM apps WHERE id = %s AND deleted_at IS NULL AND status <> 'deleting' "
                                  "FOR UPDATE SKIP LOCKED", app_id)
            if row is None:
                live = await self._one("SELECT id FROM apps WHERE id = %s AND deleted_at IS NULL "
                                       "AND status <> 'deleting'", app_id)
                yield ReconcileTarget(state="busy" if live else "gone", app_id=app_id)
                return
            yield await self._target(app_id)

    async def _target(self, app_id: UUID) -> ReconcileTarget:
        app = await self._one(APP_SELECT + "WHERE a.id = %s", app_id)
        assert app is not None
        flying = await self._all("SELECT workflow_id FROM deployments WHERE app_id = %s AND phase <> ALL(%s) "
                                 "ORDER BY seq", app_id, list(TERMINAL_PHASES))
        serving = None
        volumes: list[TargetVolume] = []
        ciphertext = None
        d = await self._one("SELECT * FROM deployments WHERE id = %s", app["serving_deployment_id"]) \
            if app["serving_deployment_id"] else None
        if d is not None and d["image_digest"]:
            serving = ServingRelease(
                deployment_id=d["id"], release_seq=d["release_seq"], image=d["image"] or "",
                image_digest=d["image_digest"], commit_sha=d["commit_sha"], config=d["config"],
                secrets_version=d["secrets_version"])
            claims = [str(m.get("claim")) for m in d["config"].get("mounts") or []]
            rows = await self._all(
                "SELECT v.* FROM volumes v JOIN apps a ON a.project_id = v.project_id WHERE a.id = %s "
                "AND v.deleted_at IS NULL AND v.pvc_name = ANY(%s) ORDER BY v.name", app_id, claims) if claims else []
            backups = {b["volume_id"]: b for b in await self._all(
                "SELECT DISTINCT ON (volume_id) volume_id, k8s_name, handle, ready_at FROM volume_snapshots "
                "WHERE volume_id = ANY(%s) AND kind = 'backup' AND status = 'ready' AND handle IS NOT NULL "
                "ORDER BY volume_id, ready_at DESC", [v["id"] for v in rows])} if rows else {}
            volumes = [TargetVolume(
                name=v["name"], claim=v["pvc_name"], size_gib=v["size_gib"], volume_class=v["class"],
                access=v["access"], backup=(b := backups.get(v["id"], {})).get("k8s_name"),
                backup_handle=b.get("handle"),
                backup_at=b["ready_at"].isoformat() if b.get("ready_at") else None) for v in rows]
            if d["secrets_version"] > 0:
                sv = await self._one("SELECT ciphertext FROM secret_versions WHERE app_id = %s AND version = %s",
                                     app_id, d["secrets_version"])
                ciphertext = bytes(sv["ciphertext"]) if sv else None
        # a database being created, rotated or deleted is its workflow's; the reconciler keeps the settled ones
        db = await self._one("SELECT * FROM databases WHERE app_id = %s AND deleted_at IS NULL "
                             "AND status = 'ready' AND pending_ciphertext IS NULL", app_id)
        database = TargetDatabase(
            database_id=db["id"], name=db["name"], engine=db["engine"], version=db["version"],
            size_gib=db["size_gib"], volume_class=db["class"], resources=db["resources"] or {},
            ciphertext=bytes(db["ciphertext"])) if db else None
        domains = await self._all("SELECT hostname FROM domains WHERE app_id = %s AND kind = 'custom' "
                                  "AND verified_at IS NOT NULL ORDER BY hostname", app_id)
        return ReconcileTarget(
            state="ready", app_id=app_id, tenant=app["tenant"], project=app["project"], app=app["name"],
            namespace=app["namespace"], hostname=app["hostname"], serving=serving,
            in_flight=[r["workflow_id"] for r in flying], volumes=volumes, secrets_ciphertext=ciphertext,
            scale=AppScale.model_validate(app["scale"]) if app.get("scale") else None,
            database=database, domains=[r["hostname"] for r in domains])

    async def record_observation(self, obs: Observation) -> None:
        repaired = Jsonb(obs.repaired)
        await self._one(
            "INSERT INTO app_observations (app_id, observed_at, release, desired_replicas, ready_replicas, "
            "serving_ready, service_points_at_serving, drift, repaired, error, last_repair_at, last_repaired, "
            "autoscaler) VALUES (%s, now(), %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END, %s, %s) "
            "ON CONFLICT (app_id) DO UPDATE SET observed_at = now(), release = EXCLUDED.release, "
            "desired_replicas = EXCLUDED.desired_replicas, ready_replicas = EXCLUDED.ready_replicas, "
            "serving_ready = EXCLUDED.serving_ready, service_points_at_serving = EXCLUDED.service_points_at_serving, "
            "drift = EXCLUDED.drift, repaired = EXCLUDED.repaired, error = EXCLUDED.error, "
            "autoscaler = EXCLUDED.autoscaler, "
            "last_repair_at = coalesce(EXCLUDED.last_repair_at, app_observations.last_repair_at), "
            "last_repaired = CASE WHEN EXCLUDED.last_repair_at IS NULL THEN app_observations.last_repaired "
            "ELSE EXCLUDED.last_repaired END RETURNING app_id",
            obs.app_id, obs.release, obs.desired_replicas, obs.ready_replicas, obs.serving_ready,
            obs.service_points_at_serving, Jsonb(obs.drift), repaired, obs.error, bool(obs.repaired),
            repaired if obs.repaired else Jsonb([]),
            Jsonb(obs.autoscaler.model_dump(mode="json")) if obs.autoscaler is not None else None,
        )

    async def observations(self, app_ids: list[UUID]) -> dict[UUID, ObservationRecord]:
        """The latest observation of each app that has one."""
        if not app_ids:
            return {}
        rows = await self._all("SELECT * FROM app_observations WHERE app_id = ANY(%s)", app_ids)
        return {r["app_id"]: ObservationRecord.model_validate(r) for r in rows}

    async def releasing(self, app_ids: list[UUID]) -> set[UUID]:
        """Those of the apps with a release not finished yet (the reconciler stands aside for it)."""
        if not app_ids:
            return set()
        rows = await self._all("SELECT DISTINCT app_id FROM deployments WHERE app_id = ANY(%s) AND phase <> ALL(%s)",
                               app_ids, list(TERMINAL_PHASES))
        return {r["app_id"] for r in rows}

    async def reconcilable_apps(self) -> list[AppKey]:
        """Every app not deleted, of every tenant: the reconciler's work list (those being deleted are marked:
        they get no reconcile loop, but their objects are not orphans either)."""
        rows = await self._all(APP_SELECT + "WHERE a.deleted_at IS NULL ORDER BY t.name, p.name, a.name")
        return [AppKey(app_id=r["id"], tenant=r["tenant"], project=r["project"], app=r["name"],
                       namespace=r["namespace"], deleting=r["status"] == "deleting") for r in rows]

    async def record_platform_audit(self, tenant: str | None, tool: str, arguments: dict[str, Any],
                                    k8s_refs: list[str], *, workflow_id: str | None = None, outcome: Outcome = "ok",
                                    error: str | None = None, duration_ms: int = 0) -> None:
        """An audit row of something the platform did by itself (principal `platform`, transport `worker`):
        a reconcile repair, an orphan removed."""
        await self.record_audit(AuditEvent(
            tenant=tenant, principal="platform", transport="worker", tool=tool, request_id=None,
            arguments=arguments, outcome=outcome, error=error, workflow_id=workflow_id, k8s_refs=k8s_refs,
            duration_ms=duration_ms))
