"""The reconciler's activities: one level-based pass over one app, and the sweep that keeps a reconcile loop
running for every recorded app and reports objects no recorded app owns.

A pass renders, with the deploy's own renderers, exactly the objects the app's serving release needs
(namespace + guardrails, pull Secret, env Secret, volume claims, the attached database's objects, Deployment at
the count `scale` recorded, PDB, Service, Ingress, the autoscaler of an autoscaled app), compares
each with the cluster (`workflows.domain.drift`: only the fields the platform renders), and applies again
what is missing or changed, by server-side apply under the platform's field manager. It never touches other
releases (the deploy workflow scales and prunes those) nor fields the platform does not render. It runs
under the app's row lock and skips the app while one of its releases is in progress, so it never fights a
deploy or a rollback. Kubernetes failures become the typed `ApplicationError`s of `kube_call`; Temporal's
retries and the workflow's back-off handle them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from workflows.activities.kube_call import _k8s, kube_call
from workflows.activities.metrics import RECONCILE_PASSES, RECONCILE_REPAIRS, repaired_kind
from workflows.activities.stores import ReconcileStore
from workflows.adapters.kube import Kube, KubeError
from workflows.domain.database_spec import DatabaseResources, DatabaseSpec
from workflows.domain.deploy_contract import EnsurePullSecret
from workflows.domain.drift import object_drift, orphans, ready_pods, ref, service_points_at
from workflows.domain.labels import (
    LABEL_DATABASE,
    LABEL_DEPLOYMENT_ID,
    LABEL_MANAGED_BY,
    LABEL_RELEASE,
    LABEL_TENANT,
    MANAGED_BY,
)
from workflows.domain.names import release_name
from workflows.domain.reconcile_contract import (
    Observation,
    PassResult,
    ReconcileInput,
    ReconcilePass,
    ReconcileTarget,
    SweepInput,
    SweepResult,
    TargetVolume,
)
from workflows.domain.scaling import AutoscalerStatus, autoscaler_status, desired_replicas, scaled_config
from workflows.domain.secretbox import SecretBox, SecretBoxError
from workflows.domain.specs import NODE_FAILURE_SECONDS, AppConfig, ClusterCaps, Guardrails, ReleaseSpec, VolumeSpec
from workflows.domain.workflow_ids import reconcile_workflow_id
from workflows.render.autoscaler import app_autoscaler
from workflows.render.database import database_objects
from workflows.render.domains import domain_objects
from workflows.render.namespace import namespace_objects
from workflows.render.release import app_ingress, app_service, release_deployment, release_pdb, release_secret
from workflows.render.volume import imported_backup, volume_pvc

MAX_REPORTED = 100
PullSecrets = Callable[[EnsurePullSecret], Awaitable[list[str]]]


@dataclass(frozen=True)
class ReconcileConfig:
    """The worker's settings a pass renders with (the same the server hands the deploy workflow) and its pace."""

    period_seconds: float = 30.0
    max_backoff_seconds: float = 300.0
    sweep_seconds: float = 60.0
    remove_orphans: bool = False
    concurrent_passes: int = 2
    runtime_class: str | None = None
    ingress_class: str | None = None
    node_failure_seconds: int = NODE_FAILURE_SECONDS
    image_pull_secret: str | None = None
    storage_classes: dict[str, str] = field(default_factory=lambda: {"fast": "fast", "standard": "standard"})
    database_images: dict[int, str] = field(default_factory=dict)
    domain_issuer: str = "deploy-mcp-http01"  # the ClusterIssuer of custom domains' Certificates
    external_dns: bool = False  # custom domains' Ingresses carry ExternalDNS's hostname annotation


class ReconcileActivities:
    def __init__(self, kube: Kube, store: ReconcileStore, secretbox: SecretBox, config: ReconcileConfig, *,
                 temporal: Client | None = None, pull_secrets: PullSecrets | None = None,
                 guardrails: Guardrails | None = None) -> None:
        self.kube = kube
        self.store = store
        self.secretbox = secretbox
        self.config = config
        self.temporal = temporal
        self.pull_secrets = pull_secrets
        self.guardrails = guardrails or Guardrails()
        # A pass holds one pooled database connection (the app's row lock) while it talks to the API server: a
        # few at once, so the deploy activities always find a free connection in the worker's pool.
        self._passes = asyncio.Semaphore(config.concurrent_passes)

    def _result(self, **fields: Any) -> PassResult:
        return PassResult(period_seconds=self.config.period_seconds,
                          max_backoff_seconds=self.config.max_backoff_seconds, **fields)

    async def _recreate_claim(self, spec: VolumeSpec, v: TargetVolume, drift: list[str]) -> list[str]:
        """A lost claim comes back with the data of the volume's latest backup when one is recorded (a Longhorn
        backup lives in the off-cluster backup target, so it outlives a rebuilt cluster), else empty."""
        claim = volume_pvc(spec)
        if not (v.backup and v.backup_handle):
            drift.append(f"{ref(claim)} is missing (re-created empty: no backup of volume {v.name} is recorded)")
            return [await self._apply(claim)]
        repaired = []
        content, snapshot = imported_backup(spec, v.backup, v.backup_handle)
        if await self._get(snapshot) is None:  # a rebuilt cluster: the backup is imported by its handle
            if await self._get(content) is None:
                repaired.append(await self._apply(content))
            repaired.append(await self._apply(snapshot))
        drift.append(f"{ref(claim)} is missing (re-created from backup {v.backup} of {v.backup_at})")
        repaired.append(await self._apply(volume_pvc(spec, data_source=v.backup)))
        return repaired

    @activity.defn
    async def reconcile_app(self, inp: ReconcilePass) -> PassResult:
        """One pass over one app; records what it found (`app_observations`) and, when it re-applied
        anything, an audit row naming the objects and why."""
        async with self._passes:
            try:
                result = await self._reconcile(inp)
            except Exception:
                RECONCILE_PASSES.labels(state="error").inc()
                raise
        RECONCILE_PASSES.labels(state=result.state).inc()
        return result

    async def _reconcile(self, inp: ReconcilePass) -> PassResult:
        started = time.monotonic()
        failed: KubeError | ApplicationError | None = None
        async with self.store.reconcile_lock(inp.app_id) as target:
            if target.state == "gone":
                return self._result(state="gone", reason="the app is deleted")
            if target.state == "busy":
                return self._result(state="busy", reason="a release of the app is being recorded")
            running = [w for w in target.in_flight if await self._running(w)]
            if running:
                return self._result(state="busy", reason=f"release workflow {running[0]} is in progress")
            obs = Observation(app_id=inp.app_id)
            drift: list[str] = []
            repaired: list[str] = []
            if target.serving is not None:
                try:
                    obs = await self._pass(target, drift, repaired)
                except (KubeError, ApplicationError) as e:
                    failed = e
                    # what it re-applied before the failure is recorded (and audited) all the same
                    obs = Observation(app_id=inp.app_id, release=release_name(target.app, target.serving.release_seq),
                                      drift=drift, repaired=repaired, error=str(e)[:300])
        # after the lock: a failed pass must still leave its observation (the transaction would roll it back)
        await self.store.record_observation(obs)
        for repaired_ref in obs.repaired:
            RECONCILE_REPAIRS.labels(kind=repaired_kind(repaired_ref)).inc()
        if obs.repaired:
            await self.store.record_platform_audit(
                target.tenant, "reconcile", {"project": target.project, "app": target.app, "drift": obs.drift},
                obs.repaired, workflow_id=reconcile_workflow_id(inp.app_id), outcome="error" if obs.error else "ok",
                error=obs.error, duration_ms=int((time.monotonic() - started) * 1000))
            activity.logger.info("reconciled %s/%s/%s: %s", target.tenant, target.project, target.app,
                                 "; ".join(obs.drift), extra={"release": obs.release, "tenant": target.tenant})
        if isinstance(failed, KubeError):
            raise _k8s(failed) from failed
        if failed is not None:
            raise failed
        return self._result(state="observed", reason=obs.reason() or "", drift=obs.drift, repaired=obs.repaired,
                            healthy=obs.healthy)

    async def _running(self, workflow_id: str) -> bool:
        """A release recorded as in progress holds the app only while its workflow runs: a row whose workflow
        is gone (a Temporal that lost its state) must not block repairs forever."""
        if self.temporal is None:
            return True
        try:
            desc = await self.temporal.get_workflow_handle(workflow_id).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def _pass(self, t: ReconcileTarget, drift: list[str], repaired: list[str]) -> Observation:
        """Compare and converge; `drift` and `repaired` fill as it goes, so a pass the API server interrupts
        still tells what it did."""
        assert t.serving is not None
        s = t.serving
        caps = await self.kube.caps()
        config = AppConfig.model_validate(s.config)
        release = release_name(t.app, s.release_seq)
        ns = t.namespace
        live_dep = await self.kube.get("apps/v1", "Deployment", ns, release)
        # the count `scale` recorded (autoscaled: the autoscaler's current choice, inside its range)
        live_replicas = ((live_dep or {}).get("spec") or {}).get("replicas")
        config = scaled_config(config, desired_replicas(t.scale, live_replicas, config.replicas))
        # a warm rollback serves a Deployment labelled with the deployment that created it: keep that label,
        # or re-applying would restart every pod of the serving release for a label
        dep_label = ((live_dep or {}).get("metadata") or {}).get("labels", {}).get(LABEL_DEPLOYMENT_ID)
        spec = ReleaseSpec(
            tenant=t.tenant, project=t.project, app=t.app, namespace=ns, seq=s.release_seq,
            deployment_id=dep_label or str(s.deployment_id), image=f"{s.image}@{s.image_digest}",
            commit_sha=s.commit_sha, config=config, runtime_class=self.config.runtime_class,
            image_pull_secret=self.config.image_pull_secret, node_failure_seconds=self.config.node_failure_seconds)

        live_ns = await self.kube.get("v1", "Namespace", None, ns)
        if live_ns is not None and (live_ns.get("metadata") or {}).get("deletionTimestamp"):
            # nothing can be created in a namespace being deleted: wait for it to go, the next pass re-creates it
            return Observation(app_id=t.app_id, release=release, desired_replicas=config.replicas,
                               drift=[f"Namespace/{ns} is being deleted"])
        for obj in namespace_objects(t.tenant, t.project, ns, self.guardrails, caps):
            live = live_ns if obj["kind"] == "Namespace" else await self._get(obj)
            await self._converge(obj, live, drift, repaired)

        secrets = {str(x["metadata"]["name"]) for x in await self.kube.list_objects(
            "v1", "Secret", ns, label_selector=f"{LABEL_MANAGED_BY}={MANAGED_BY}")}
        if self.config.image_pull_secret and self.config.image_pull_secret not in secrets:
            drift.append(f"Secret/{ns}/{self.config.image_pull_secret} is missing")
            if self.pull_secrets is not None:
                repaired += await self.pull_secrets(EnsurePullSecret(
                    tenant=t.tenant, project=t.project, namespace=ns, secret=self.config.image_pull_secret))
        if spec.env_secret not in secrets:
            if s.secrets_version > 0 and t.secrets_ciphertext is None:
                drift.append(f"Secret/{ns}/{spec.env_secret} is missing, and secrets version {s.secrets_version} "
                             "is not recorded: deploy again after `set_secrets`")
            else:
                drift.append(f"Secret/{ns}/{spec.env_secret} is missing")
                try:
                    repaired.append(await self._apply_env_secret(t, spec))
                except SecretBoxError:
                    drift.append(f"secrets version {s.secrets_version} cannot be opened with the worker's secrets "
                                 "key: give the worker the key the server seals with (secrets_key)")

        for v in t.volumes:
            vspec = VolumeSpec(
                tenant=t.tenant, project=t.project, namespace=ns, name=v.name, claim=v.claim, size_gib=v.size_gib,
                storage_class=self.config.storage_classes.get(v.volume_class, v.volume_class), access=v.access)
            if await self._get(volume_pvc(vspec)) is None:
                repaired += await self._recreate_claim(vspec, v, drift)

        if t.database is not None:
            await self._converge_database(t, drift, repaired, caps)

        await self._converge(release_deployment(spec), live_dep, drift, repaired)
        pdb = release_pdb(spec, caps)
        if pdb is not None:
            await self._converge(pdb, await self._get(pdb), drift, repaired)
        service = app_service(ns, t.tenant, t.project, t.app, release)
        live_svc = await self._get(service)
        if t.in_flight and object_drift(service, live_svc) is not None and any(
                [await self._running(w) for w in t.in_flight]):
            # a release recorded just before this pass has started meanwhile and may be switching the Service
            # right now (a warm rollback does within a second): it is the release's to point, not ours
            drift.append(f"Service/{ns}/{t.app}: left to the release starting now")
        else:
            await self._converge(service, live_svc, drift, repaired)
        ingress = app_ingress(ns, t.tenant, t.project, t.app, t.hostname, self.config.ingress_class, None)
        await self._converge(ingress, await self._get(ingress), drift, repaired)
        autoscaler = await self._autoscaler(t, release, caps, drift, repaired)
        for host in t.domains:  # verified custom domains: their Certificate and Ingress (cert-manager owns the Secret)
            for obj in domain_objects(ns, t.tenant, t.project, t.app, host, self.config.domain_issuer,
                                      self.config.ingress_class, self.config.external_dns):
                await self._converge(obj, await self._get(obj), drift, repaired)

        # what traffic meets: as found, before the repairs above take effect (the next pass sees those)
        pods = [] if live_ns is None else await self.kube.list_objects(
            "v1", "Pod", ns, label_selector=f"{LABEL_RELEASE}={release}")
        ready = ready_pods(pods, release)
        endpoints = await self.kube.get("v1", "Endpoints", ns, t.app) if live_svc is not None else None
        return Observation(
            app_id=t.app_id, release=release, desired_replicas=config.replicas, ready_replicas=len(ready),
            serving_ready=live_dep is not None and len(ready) >= config.replicas,
            service_points_at_serving=service_points_at(live_svc, endpoints, t.app, release, ready),
            drift=drift, repaired=repaired, autoscaler=autoscaler)

    async def _autoscaler(self, t: ReconcileTarget, release: str, caps: ClusterCaps, drift: list[str],
                          repaired: list[str]) -> AutoscalerStatus | None:
        """Autoscaled: the app's HPA exists and targets the serving release (a deploy that could not retarget
        it leaves that here); its status as found. Not autoscaled: an HPA the platform left is deleted, or it
        would scale a release whose count `scale` fixed."""
        auto = t.scale.autoscale if t.scale is not None else None
        if auto is None:
            live = await self.kube.get(caps.hpa_api, "HorizontalPodAutoscaler", t.namespace, t.app)
            if live is not None and (live["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY:
                drift.append(f"HorizontalPodAutoscaler/{t.namespace}/{t.app}: the app is not autoscaled")
                await self.kube.delete(caps.hpa_api, "HorizontalPodAutoscaler", t.namespace, t.app)
                repaired.append(f"HorizontalPodAutoscaler/{t.namespace}/{t.app} (deleted)")
            return None
        hpa = app_autoscaler(t.namespace, t.tenant, t.project, t.app, release, auto, caps)
        live = await self._get(hpa)
        await self._converge(hpa, live, drift, repaired)
        return autoscaler_status(auto, live, await self.kube.metrics_api_served())

    async def _converge_database(self, t: ReconcileTarget, drift: list[str], repaired: list[str],
                                 caps: ClusterCaps) -> None:
        """The attached database's objects, rendered as the database workflow renders them (its Secret and
        claim by presence only: the password is never compared, a claim's size is the database's to grow).
        The backup CronJob in the platform namespace is the database workflow's."""
        db = t.database
        assert db is not None
        spec = DatabaseSpec(
            tenant=t.tenant, project=t.project, namespace=t.namespace, name=db.name, version=db.version,
            image=self.config.database_images.get(db.version, ""), size_gib=db.size_gib,
            storage_class=self.config.storage_classes.get(db.volume_class, db.volume_class),
            resources=DatabaseResources.model_validate(db.resources), app=t.app, engine=db.engine,
            image_pull_secret=self.config.image_pull_secret)
        try:
            password = self.secretbox.open(db.ciphertext)["password"]
        except SecretBoxError:
            drift.append(f"database {db.name}: its password cannot be opened with the worker's secrets key")
            return
        for obj in database_objects(spec, caps, password):
            live = await self._present_secret(obj, db.name) if obj["kind"] == "Secret" else await self._get(obj)
            await self._converge(obj, live, drift, repaired)

    async def _present_secret(self, obj: dict[str, Any], database: str) -> dict[str, Any] | None:
        """A database's Secret, found among the Secrets its label selects: the worker may list Secrets, never read
        one by name (manifests/base/rbac.yaml), and a Secret is converged by presence only."""
        md = obj["metadata"]
        found = await self.kube.list_objects("v1", "Secret", md["namespace"],
                                             label_selector=f"{LABEL_DATABASE}={database}")
        return next((s for s in found if s["metadata"]["name"] == md["name"]), None)

    async def _get(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        md = obj["metadata"]
        return await self.kube.get(obj["apiVersion"], obj["kind"], md.get("namespace"), md["name"])

    async def _apply(self, obj: dict[str, Any]) -> str:
        await self.kube.apply(obj)
        return ref(obj)

    async def _converge(self, obj: dict[str, Any], live: dict[str, Any] | None, drift: list[str],
                        repaired: list[str]) -> None:
        why = object_drift(obj, live)
        if why is not None:
            drift.append(why)
            repaired.append(await self._apply(obj))

    async def _apply_env_secret(self, t: ReconcileTarget, spec: ReleaseSpec) -> str:
        """The release's immutable env Secret again, from the secrets version it pins (decrypted here only,
        never passed through workflow history)."""
        values = dict(spec.config.env)
        if t.secrets_ciphertext is not None:
            values.update(self.secretbox.open(t.secrets_ciphertext))
        return await self._apply(release_secret(spec, values))

    @activity.defn
    async def ensure_reconcilers(self, inp: SweepInput) -> SweepResult:
        """Start the reconcile loop of every recorded app that has none running (the loops of deleted apps end
        by themselves), and report (by setting, remove) Deployments and Services carrying the platform's
        labels whose app no record owns."""
        apps = await self.store.reconcilable_apps()
        started = 0
        if self.temporal is not None:
            for a in apps:
                if not a.deleting and await self.ensure_loop(a.app_id):
                    started += 1
                activity.heartbeat(started)
        owned = {(a.namespace, a.app) for a in apps}
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
        found: list[dict[str, Any]] = []
        for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service")):
            found += await kube_call(lambda av=api_version, k=kind: self.kube.list_objects(  # type: ignore[misc]
                av, k, None, label_selector=selector))
        stray = orphans(found, owned)
        removed: list[str] = []
        if stray:
            activity.logger.warning("objects with the platform's labels that no recorded app owns: %s", stray[:20])
        if stray and self.config.remove_orphans:
            for obj in found:
                r = ref(obj)
                if r in stray:
                    md = obj["metadata"]
                    if await kube_call(lambda o=obj, m=md: self.kube.delete(  # type: ignore[misc]
                            o["apiVersion"], o["kind"], m["namespace"], m["name"])):
                        removed.append(r)
                        await self.store.record_platform_audit(
                            (md.get("labels") or {}).get(LABEL_TENANT), "reconcile-orphans",
                            {"reason": "no recorded app owns it"}, [r])
        # capped: the result lands in the sweep's workflow history every sweep (the log names the first 20)
        return SweepResult(sweep_seconds=self.config.sweep_seconds, apps=len(apps), started=started,
                           orphans=stray[:MAX_REPORTED], removed=removed[:MAX_REPORTED])

    async def ensure_loop(self, app_id: UUID) -> bool:
        """Start the app's reconcile loop unless it runs; True when it had to be started. Called from inside an
        activity (the sweep, a deploy's recorded outcome): the loop runs on that activity's task queue."""
        assert self.temporal is not None
        wf = reconcile_workflow_id(app_id)
        try:
            if (await self.temporal.get_workflow_handle(wf).describe()).status == WorkflowExecutionStatus.RUNNING:
                return False
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
        await self.temporal.start_workflow(
            "reconcile", ReconcileInput(app_id=app_id), id=wf, task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
        return True

    def all(self) -> list[Callable[..., Any]]:
        return [self.reconcile_app, self.ensure_reconcilers]
