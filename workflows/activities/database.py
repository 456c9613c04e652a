"""The database workflow's activities: a database's objects on the cluster (applied, then waited for until the
database is Ready), the password rotation Job, on-demand dumps, deletion, and the database's row.

Passwords never cross workflow history: each activity reads the sealed password from the store by the
database's id and opens it here with the worker's SecretBox. Idempotent under Temporal's retries: objects are
applied under fixed names, the rotation works whether or not an earlier attempt's ALTER ROLE took, a dump
Job keeps its name."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.activities.kube_call import kube_call
from workflows.activities.stores import DatabaseStore
from workflows.adapters.kube import Kube, KubeError, ref
from workflows.domain.database_contract import DatabaseOp, DatabaseOutcome, DatabaseResult
from workflows.domain.database_spec import DatabaseSpec
from workflows.domain.secretbox import SecretBox
from workflows.domain.specs import ClusterCaps
from workflows.render.database import (
    CNPG_API,
    backup_credentials,
    backup_cronjob,
    backup_job,
    backup_name,
    database_objects,
    database_secret,
    restore_job,
    rotate_job,
    rotate_secret,
    rotate_secret_name,
)

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class DatabaseConfig:
    """The worker's settings the database activities render with."""

    platform_namespace: str = "deploy-mcp-system"
    platform_image: str = "ghcr.io/deploy-mcp/deploy-mcp:0.1.0"
    engine: str = "auto"  # auto | statefulset | cloudnative-pg
    backup_schedule: str = "17 3 * * *"
    backup_keep: int = 7
    backup_max_age_days: int = 30


def statefulset_ready(sts: dict[str, Any] | None) -> bool:
    """The controller has seen the current spec and its one pod is Ready."""
    if not sts:
        return False
    status = sts.get("status") or {}
    generation = (sts.get("metadata") or {}).get("generation", 0)
    return status.get("observedGeneration", 0) >= generation and int(status.get("readyReplicas") or 0) >= 1


def cluster_ready(cluster: dict[str, Any] | None) -> bool:
    """A CloudNativePG Cluster with its instance Ready (`status.readyInstances`)."""
    return bool(cluster) and int(((cluster or {}).get("status") or {}).get("readyInstances") or 0) >= 1


def job_outcome(job: dict[str, Any] | None) -> str | None:
    """"succeeded", "failed" (the Job gave up) or None while it runs."""
    status = (job or {}).get("status") or {}
    if int(status.get("succeeded") or 0) >= 1:
        return "succeeded"
    if any(c.get("type") == "Failed" and c.get("status") == "True" for c in status.get("conditions") or []):
        return "failed"
    return None


def short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


class DatabaseActivities:
    def __init__(self, kube: Kube, store: DatabaseStore, secretbox: SecretBox, config: DatabaseConfig) -> None:
        self.kube = kube
        self.store = store
        self.secretbox = secretbox
        self.config = config

    async def _password(self, ciphertext: bytes | None) -> str:
        if not ciphertext:
            raise ApplicationError("the database has no password recorded", type="DatabaseRecord",
                                   non_retryable=True)
        return str(self.secretbox.open(bytes(ciphertext))["password"])

    async def _record(self, op: DatabaseOp) -> Any:
        row = await self.store.get_database_by_id(op.database_id)
        if row is None:
            raise ApplicationError(f"database {op.database_id} is not recorded", type="DatabaseRecord",
                                   non_retryable=True)
        return row

    async def _wait(self, what: str, check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await kube_call(check)
            if found:
                return found
            activity.heartbeat(what)
            await asyncio.sleep(POLL_SECONDS)
        raise ApplicationError(f"{what} after {timeout:.0f} s", type="DatabaseTimeout", non_retryable=True)

    async def _engine(self, spec: DatabaseSpec) -> DatabaseSpec:
        """auto: a CloudNativePG Cluster when the cluster serves postgresql.cnpg.io/v1, else the StatefulSet."""
        if self.config.engine == "auto":
            served = await kube_call(self.kube.served_api_versions)
            engine = "cloudnative-pg" if CNPG_API in served else "statefulset"
        else:
            engine = self.config.engine
        return spec if spec.engine == engine else spec.model_copy(update={"engine": engine})

    def _backup_objects(self, spec: DatabaseSpec, op: DatabaseOp, password: str, caps: ClusterCaps
                        ) -> list[dict[str, Any]]:
        cfg = self.config
        return [backup_credentials(spec, cfg.platform_namespace, password),
                backup_cronjob(spec, str(op.database_id), cfg.platform_namespace, cfg.platform_image,
                               cfg.backup_schedule, cfg.backup_keep, cfg.backup_max_age_days, caps)]

    @activity.defn
    async def database_apply(self, op: DatabaseOp) -> DatabaseResult:
        """Apply every object of the database (and its backup schedule), then wait until it is Ready."""
        row = await self._record(op)
        password = await self._password(row.ciphertext)
        caps = await kube_call(self.kube.caps)
        spec = await self._engine(op.spec)
        objects = database_objects(spec, caps, password)
        for obj in objects:
            await kube_call(lambda o=obj: self.kube.apply(o))  # type: ignore[misc]
        ns, name = spec.namespace, spec.object_name

        async def ready() -> bool:
            if spec.engine == "cloudnative-pg":
                return cluster_ready(await self.kube.get(CNPG_API, "Cluster", ns, name))
            return statefulset_ready(await self.kube.get("apps/v1", "StatefulSet", ns, name))

        await self._wait(f"database {ns}/{name} not Ready", ready, op.timeout_seconds)
        # the schedule last, and not fatal: a database that runs is worth more than its failure to schedule
        # dumps, which its status then says (a platform namespace missing, say, on a bare test cluster)
        schedule = self._backup_objects(spec, op, password, caps)
        try:
            for obj in schedule:
                await self.kube.apply(obj)
        except KubeError as e:
            return DatabaseResult(status="ready", refs=[ref(o) for o in objects], engine=spec.engine,
                                  message=f"no backup schedule: {e}"[:300])
        return DatabaseResult(status="ready", refs=[ref(o) for o in [*objects, *schedule]], engine=spec.engine)

    @activity.defn
    async def database_rotate(self, op: DatabaseOp) -> DatabaseResult:
        """Set the pending password in the running database (a Job), then in its Secrets, then in the store."""
        row = await self._record(op)
        if not row.pending_ciphertext:
            return DatabaseResult(status="rotated", message="no rotation pending")
        new = await self._password(row.pending_ciphertext)
        spec = await self._engine(op.spec)
        ns = spec.namespace
        job_name = f"{spec.object_name}-rotate-{short_hash(bytes(row.pending_ciphertext))}"
        job = rotate_job(spec, job_name)
        await kube_call(lambda: self.kube.apply(rotate_secret(spec, new)))
        await kube_call(lambda: self.kube.apply(job))

        async def done() -> str | None:
            return job_outcome(await self.kube.get("batch/v1", "Job", ns, job_name))

        outcome = await self._wait(f"password rotation job {ns}/{job_name} not finished", done, op.timeout_seconds)
        if outcome == "failed":
            raise ApplicationError(f"the rotation job {ns}/{job_name} failed: the database kept its password "
                                   "(see the job's log)", type="DatabaseRotation", non_retryable=True)
        caps = await kube_call(self.kube.caps)
        for obj in (database_secret(spec, new), *self._backup_objects(spec, op, new, caps)):
            await kube_call(lambda o=obj: self.kube.apply(o))  # type: ignore[misc]
        await self.store.promote_pending_password(op.database_id)
        await kube_call(lambda: self.kube.delete("batch/v1", "Job", ns, job_name))
        await kube_call(lambda: self.kube.delete("v1", "Secret", ns, rotate_secret_name(spec)))
        return DatabaseResult(status="rotated", refs=[f"Job/{ns}/{job_name}", f"Secret/{ns}/{spec.secret}"])

    @activity.defn
    async def database_backup(self, op: DatabaseOp) -> DatabaseResult:
        """One dump under `op.backup_name`, by a Job in the platform namespace; `db-dump` records its size and
        outcome. A Job that fails before it could record (say its image would not pull) is recorded here."""
        return await self._dump(op, op.backup_kind)

    @activity.defn
    async def database_restore(self, op: DatabaseOp) -> DatabaseResult:
        """A safety dump of the database as it is (named `op.backup_name`), then `op.restore_from` restored into
        it in one transaction by a Job; a failed safety dump restores nothing."""
        assert op.restore_from
        if op.backup_name:
            await self._dump(op, "safety")
        spec = await self._engine(op.spec)
        cfg = self.config
        ns = cfg.platform_namespace
        job_name = f"{backup_name(spec)[:38]}-r-{short_hash(op.restore_from.encode())}"
        source = str(op.source_database_id) if op.source_database_id else None
        restore_from = op.restore_from
        await kube_call(lambda: self.kube.apply(restore_job(spec, str(op.database_id), ns, cfg.platform_image,
                                                            job_name, restore_from, source)))

        async def done() -> str | None:
            return job_outcome(await self.kube.get("batch/v1", "Job", ns, job_name))

        outcome = await self._wait(f"restore job {ns}/{job_name} not finished", done, op.timeout_seconds)
        if outcome == "failed":
            raise ApplicationError(f"restoring {op.restore_from} failed, the database is as it was: see the log of "
                                   f"job {ns}/{job_name}", type="DatabaseRestore", non_retryable=True)
        return DatabaseResult(status="restored", refs=[f"Job/{ns}/{job_name}"], message=op.restore_from)

    async def _dump(self, op: DatabaseOp, kind: str) -> DatabaseResult:
        assert op.backup_name
        dump = op.backup_name
        row = await self._record(op)
        password = await self._password(row.ciphertext)
        spec = await self._engine(op.spec)
        cfg = self.config
        ns = cfg.platform_namespace
        job_name = f"{backup_name(spec)[:40]}-{short_hash(dump.encode())}"
        await kube_call(lambda: self.kube.apply(backup_credentials(spec, ns, password)))
        await self.store.start_database_backup(op.database_id, kind, dump)
        await kube_call(lambda: self.kube.apply(backup_job(
            spec, str(op.database_id), ns, cfg.platform_image, job_name, kind, dump,
            cfg.backup_keep, cfg.backup_max_age_days)))

        async def done() -> str | None:
            return job_outcome(await self.kube.get("batch/v1", "Job", ns, job_name))

        outcome = await self._wait(f"backup job {ns}/{job_name} not finished", done, op.timeout_seconds)
        if outcome == "failed":
            await self.store.finish_database_backup(op.database_id, dump, "failed", None,
                                                    f"backup job {ns}/{job_name} failed (see its log)")
            raise ApplicationError(f"{kind} backup {dump} failed: see the log of job {ns}/{job_name}",
                                   type="DatabaseBackup", non_retryable=True)
        return DatabaseResult(status="backed-up", refs=[f"Job/{ns}/{job_name}"], message=dump)

    @activity.defn
    async def database_delete(self, op: DatabaseOp) -> DatabaseResult:
        """Every object of the database, its backup schedule and (unless kept) its claim. Dumps at the backup
        target stay: they are the way back."""
        spec = await self._engine(op.spec)
        ns, name = spec.namespace, spec.object_name
        caps = await kube_call(self.kube.caps)
        targets: list[tuple[str, str, str, str]] = [
            ("apps/v1", "StatefulSet", ns, name), ("v1", "Service", ns, name),
            ("networking.k8s.io/v1", "NetworkPolicy", ns, name), ("v1", "Secret", ns, spec.secret),
            # in the version it was applied in: a 1.20 cluster's batch/v1 has no CronJob, so deleting that one
            # is "not found" and the schedule would go on dumping a database that is gone
            (caps.cronjob_api, "CronJob", self.config.platform_namespace, backup_name(spec)),
            ("v1", "Secret", self.config.platform_namespace, backup_name(spec)),
            (caps.pdb_api, "PodDisruptionBudget", ns, name),
        ]
        if spec.engine == "cloudnative-pg":
            targets.append((CNPG_API, "Cluster", ns, name))
        if not op.keep_volume:
            targets.append(("v1", "PersistentVolumeClaim", ns, spec.claim))
        deleted = []
        for api_version, kind, namespace, obj_name in targets:
            try:
                if await self.kube.delete(api_version, kind, namespace, obj_name):
                    deleted.append(f"{kind}/{namespace}/{obj_name}")
            except KubeError as e:
                if e.failure.status != 404:  # a kind the cluster does not serve (no CloudNativePG) is fine
                    raise ApplicationError(str(e), type=e.failure.type,
                                           non_retryable=not e.failure.retryable) from e
        return DatabaseResult(status="deleted", refs=deleted)

    @activity.defn
    async def database_record(self, out: DatabaseOutcome) -> None:
        op, result = out.op, out.result
        failed = result.status == "failed"
        if op.op == "delete" and not failed:
            await self.store.delete_database_row(op.database_id)
        elif op.op in ("create", "rotate", "restore"):
            # a warning of a create (no backup schedule) is its reason too
            reason = result.message if failed or (op.op == "create" and result.message) else None
            await self.store.set_database_status(op.database_id, "failed" if failed else "ready", reason)
            if result.engine:
                await self.store.set_database_engine(op.database_id, result.engine)

    def all(self) -> list[Callable[..., Any]]:
        return [self.database_apply, self.database_rotate, self.database_backup, self.database_restore,
                self.database_delete, self.database_record]
