"""The deploy workflow's activities: every side effect on the cluster and the store happens here.

Each activity is idempotent (server-side apply, scale to a number, record a phase), so Temporal may retry
it safely. Kubernetes failures become `ApplicationError`s typed by `workflows.domain.k8s_errors`: non-retryable
ones stop the step at once, retryable ones back off (honouring `Retry-After`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any
from uuid import UUID

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from workflows.activities.kube_call import _k8s, kube_call
from workflows.activities.stores import ReleaseStore
from workflows.adapters.kube import Kube, KubeError, ref
from workflows.domain.build_contract import BuildInput, BuildOutput
from workflows.domain.delete_contract import DeleteAppInput
from workflows.domain.deploy_contract import (
    ApplyRelease,
    EnsureNamespace,
    ImageUpdate,
    PhaseUpdate,
    PruneReleases,
    RecordOutcome,
    ReleaseState,
    RetiredRelease,
    RetireReleases,
    ScaleRelease,
    Switched,
    SwitchIfReady,
    SwitchService,
    WaitClosed,
    WaitReady,
)
from workflows.domain.diagnose_contract import DiagnoseInput, Diagnosis
from workflows.domain.diagnosis import (
    Failure,
    deployment_failure,
    diagnose,
    has_stopped,
    is_ready,
    pod_failure,
    refine_with_events,
    timeout_failure,
)
from workflows.domain.labels import LABEL_APP, LABEL_RELEASE
from workflows.domain.masking import SecretMasker
from workflows.domain.phases import Phase
from workflows.domain.secretbox import SecretBox
from workflows.domain.specs import Guardrails
from workflows.domain.workflow_ids import build_workflow_id
from workflows.render.namespace import namespace_objects
from workflows.render.release import app_ingress, app_service, release_deployment, release_pdb, release_secret

RELEASE_FAILED = "ReleaseFailed"
ENDPOINTS_FIRST_PAUSE = 0.01
ENDPOINTS_MAX_PAUSE = 0.2


def _runs_ready(dep: dict[str, Any] | None, replicas: int) -> bool:
    if dep is None or (dep.get("spec") or {}).get("replicas", 0) < replicas:
        return False
    status = dep.get("status") or {}
    return int(status.get("readyReplicas") or 0) >= replicas and int(status.get("updatedReplicas") or 0) >= replicas


def _epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


KUBELET_NO_LOG = "unable to retrieve container logs for "
"""What the kubelet answers, with status 200 and as the log's only line, while a container's log file cannot be
read (just rotated or moved by a restart): no log yet, not the app's output."""


class DeployActivities:
    """Activities bound to the worker's clients (Temporal's recommended shape for injected dependencies)."""

    def __init__(self, kube: Kube, store: ReleaseStore, secretbox: SecretBox,
                 guardrails: Guardrails | None = None, temporal: Client | None = None,
                 on_serving: Callable[[UUID], Awaitable[object]] | None = None) -> None:
        self.kube = kube
        self.on_serving = on_serving  # the reconciler: make sure the app's reconcile loop runs
        self.store = store
        self.secretbox = secretbox
        self.guardrails = guardrails or Guardrails()
        self.temporal = temporal

    @activity.defn
    async def wait_workflows_closed(self, inp: WaitClosed) -> None:
        """Wait until superseded workflows have finished their own cleanup (cancellation is asynchronous)."""
        if self.temporal is None or not inp.workflow_ids:
            return
        deadline = time.monotonic() + inp.timeout_seconds
        for wf in inp.workflow_ids:
            handle = self.temporal.get_workflow_handle(wf)
            while time.monotonic() < deadline:
                desc = await handle.describe()
                if desc.status != WorkflowExecutionStatus.RUNNING:
                    break
                activity.heartbeat(wf)
                await asyncio.sleep(0.1)

    @activity.defn
    async def run_build(self, inp: BuildInput) -> BuildOutput:
        """Start (or join) the build workflow of this commit and wait for it: its id is the commit's business
        key, so two deploys of one commit share one build."""
        assert self.temporal is not None, "the worker passes its Temporal client"
        handle = await self.temporal.start_workflow(
            "build", inp, id=build_workflow_id(inp.tenant, inp.project, inp.app, inp.commit_sha, inp.subdir),
            task_queue=activity.info().task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            result_type=BuildOutput,
        )
        result = asyncio.ensure_future(handle.result())
        while not result.done():
            activity.heartbeat("building")
            await asyncio.wait({result}, timeout=10)
        out: BuildOutput = result.result()
        return out

    @activity.defn
    async def set_image(self, inp: ImageUpdate) -> None:
        await self.store.set_deployment_image(inp.deployment_id, inp.image, inp.digest)

    @activity.defn
    async def release_ready(self, inp: ReleaseState) -> bool:
        """True when the release's Deployment runs `replicas` Ready pods now (a rollback inside the window)."""
        dep = await kube_call(lambda: self.kube.get("apps/v1", "Deployment", inp.namespace, inp.release))
        return _runs_ready(dep, inp.replicas)

    @activity.defn
    async def prune_releases(self, inp: PruneReleases) -> list[str]:
        """Delete release objects (Deployment + Secret) beyond the retention count or age. The rows stay in
        the database, so a pruned release can still be rolled back to: it is re-created from its snapshot."""
        deps = await kube_call(lambda: self.kube.list_objects(
            "apps/v1", "Deployment", inp.namespace, label_selector=f"{LABEL_APP}={inp.app}"))
        deps.sort(key=lambda d: str(d["metadata"].get("creationTimestamp", "")), reverse=True)
        cutoff = time.time() - inp.retain_days * 86400
        pruned = []
        for i, d in enumerate(deps):
            name = d["metadata"]["name"]
            if name in inp.keep:
                continue
            created = d["metadata"].get("creationTimestamp")
            old = bool(created) and _epoch(created) < cutoff
            if i >= inp.retain_count or old:
                await kube_call(lambda n=name: self.kube.delete("apps/v1", "Deployment", inp.namespace, n))  # type: ignore[misc]
                await kube_call(lambda n=name: self.kube.delete("v1", "Secret", inp.namespace, f"{n}-env"))  # type: ignore[misc]
                pruned.append(name)
        return pruned

    @activity.defn
    async def set_phase(self, inp: PhaseUpdate) -> None:
        await self.store.set_deployment_phase(inp.deployment_id, inp.phase)

    @activity.defn
    async def ensure_namespace(self, inp: EnsureNamespace) -> list[str]:
        caps = await kube_call(self.kube.caps)
        refs = []
        for obj in namespace_objects(inp.tenant, inp.project, inp.namespace, self.guardrails, caps):
            await kube_call(lambda o=obj: self.kube.apply(o))  # type: ignore[misc]
            refs.append(ref(obj))
        return refs

    @activity.defn
    async def apply_release(self, inp: ApplyRelease) -> list[str]:
        """The release's Secret (env + decrypted secrets, never passed through workflow history), its
        Deployment and, with several replicas, its PodDisruptionBudget."""
        values = dict(inp.spec.config.env)
        if inp.secrets_version > 0:
            token = await self.store.secret_ciphertext(inp.app_id, inp.secrets_version)
            if token is None:
                raise ApplicationError(f"secrets version {inp.secrets_version} is missing", type="SecretsMissing",
                                       non_retryable=True)
            values.update(self.secretbox.open(token))
        caps = await kube_call(self.kube.caps)
        objs = [release_secret(inp.spec, values), release_deployment(inp.spec, inp.replicas)]
        pdb = release_pdb(inp.spec, caps)
        if pdb:
            objs.append(pdb)
        refs = []
        for obj in objs:
            try:
                await self.kube.apply(obj)
            except KubeError as e:
                # An immutable Secret applied again with the same data is a no-op; with other data (a retried
                # activity never changes it) the API refuses, and the existing one is the release's own.
                if obj["kind"] == "Secret" and e.failure.status == 422 and "immutable" in str(e):
                    pass
                else:
                    raise _k8s(e) from e
            refs.append(ref(obj))
        return refs

    @activity.defn
    async def wait_ready(self, inp: WaitReady) -> None:
        """Watch the release's pods until `replicas` are Ready; fail fast on the first real error."""
        selector = f"{LABEL_RELEASE}={inp.release}"
        deadline = time.monotonic() + inp.timeout_seconds
        pods: dict[str, dict[str, Any]] = {}
        rv: str | None = None
        unreachable_backoff = 0.5
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                if rv is None:
                    listed = await self.kube.list_objects("v1", "Pod", inp.namespace, label_selector=selector)
                    pods = {p["metadata"]["name"]: p for p in listed}
                    rv = None
                    await self._check(inp, pods)
                # aclosing: a return from inside the watch closes its connection now, not when the GC finds it
                async with aclosing(self.kube.watch("v1", "Pod", inp.namespace, label_selector=selector,
                                                    timeout_seconds=int(min(max(remaining, 1), 10)),
                                                    resource_version=rv)) as stream:
                    async for kind, pod in stream:
                        activity.heartbeat(kind)
                        rv = pod.get("metadata", {}).get("resourceVersion", rv)
                        if kind == "BOOKMARK":
                            continue
                        name = pod["metadata"]["name"]
                        if kind == "DELETED":
                            pods.pop(name, None)
                        else:
                            pods[name] = pod
                        if await self._check(inp, pods):
                            return
            except KubeError as e:
                if e.failure.status == 410:  # resourceVersion too old: list again
                    rv = None
                    continue
                if not e.failure.retryable:
                    raise _k8s(e) from e
                # The API server is restarting or overloaded; the pods it was asked about go on without it,
                # so the wait goes on within its own deadline instead of failing the release.
                activity.heartbeat(f"{e.failure.type}: retrying")
                rv = None
                await asyncio.sleep(min(unreachable_backoff, max(deadline - time.monotonic(), 0)))
                unreachable_backoff = min(unreachable_backoff * 2, 8.0)
                continue
            unreachable_backoff = 0.5
            activity.heartbeat("window")
            if await self._check(inp, pods, with_deployment=True):
                return
        events = await kube_call(lambda: self.kube.events_for(inp.namespace, set(pods) | {inp.release}))
        raise self._failed(timeout_failure(list(pods.values()), events, inp.timeout_seconds))

    async def _check(self, inp: WaitReady, pods: dict[str, dict[str, Any]], with_deployment: bool = False) -> bool:
        for pod in pods.values():
            failure = pod_failure(pod)
            if failure is not None:
                if failure.reason in ("CrashLoop", "OOMKilled") and failure.pod:
                    events = await kube_call(lambda f=failure: self.kube.events_for(  # type: ignore[misc]
                        inp.namespace, {f.pod or ""}))
                    failure = refine_with_events(failure, events)
                    masker = await self._masker(inp.app_id, inp.secrets_version)
                    failure = failure.with_logs(masker.mask(x) for x in await self._last_logs(
                        inp.namespace, failure.pod or ""))
                raise self._failed(failure)
        ready = sum(1 for p in pods.values() if is_ready(p))
        if ready >= inp.replicas:
            return True
        if with_deployment:
            dep = await kube_call(lambda: self.kube.get("apps/v1", "Deployment", inp.namespace, inp.release))
            if dep is None:
                raise self._failed(Failure(reason="ReleaseMissing", message=f"Deployment {inp.release} is gone"))
            failure = deployment_failure(dep)
            if failure is not None and failure.reason != "ReadyTimeout":
                raise self._failed(failure)
        return False

    async def _masker(self, app_id: UUID | None, version: int) -> SecretMasker:
        """Log lines become part of the recorded error: the release's secret values must not."""
        token = await self.store.secret_ciphertext(app_id, version) if app_id and version else None
        return SecretMasker(self.secretbox.open(token) if token else {})

    async def _last_logs(self, namespace: str, pod: str, lines: int = 15, attempts: int = 6) -> list[str]:
        # Asked only once a container failed: its lines exist, but right after a restart the kubelet may not
        # serve them yet (neither as the previous container's nor as the new one's), so ask again briefly.
        for attempt in range(attempts):
            for previous in (True, False):
                try:
                    out = await self.kube.pod_logs(namespace, pod, container="app", tail_lines=lines,
                                                   previous=previous)
                except KubeError as e:
                    activity.logger.warning("last lines of %s/%s (previous=%s): %s", namespace, pod, previous, e)
                    continue
                if out and not out[0].startswith(KUBELET_NO_LOG):
                    return [x[:300] for x in out[-lines:]]
            if attempt + 1 < attempts:
                # the failed release is scaled to zero right after: these lines are the last chance to read them
                await asyncio.sleep(1.5)
        return []

    @staticmethod
    def _failed(failure: Failure) -> ApplicationError:
        return ApplicationError(f"{failure.reason}: {failure.message}", failure.model_dump(mode="json"),
                                type=RELEASE_FAILED, non_retryable=True)

    @activity.defn
    async def switch_service(self, inp: SwitchService) -> Switched:
        """Point the app's stable Service at `release` (blue/green switch) and make sure its Ingress exists.
        Returns the release the Service selected before, so the workflow knows what to keep warm."""
        current = await kube_call(lambda: self.kube.get("v1", "Service", inp.namespace, inp.app))
        return await self._switch(inp, current)

    @activity.defn
    async def switch_if_ready(self, inp: SwitchIfReady) -> Switched | None:
        """A rollback inside its window: the switch, when the target still runs `replicas` Ready pods; None
        when it does not (the workflow scales it up first). Its two reads go out together: on a warm rollback
        they are the only step before the switch."""
        sw = inp.switch
        dep, current = await asyncio.gather(
            kube_call(lambda: self.kube.get("apps/v1", "Deployment", sw.namespace, sw.release)),
            kube_call(lambda: self.kube.get("v1", "Service", sw.namespace, sw.app)))
        if not _runs_ready(dep, inp.replicas):
            return None
        return await self._switch(sw, current)

    async def _switch(self, inp: SwitchService, current: dict[str, Any] | None) -> Switched:
        previous = ((current or {}).get("spec") or {}).get("selector", {}).get(LABEL_RELEASE)
        svc = app_service(inp.namespace, inp.tenant, inp.project, inp.app, inp.release)
        ing = app_ingress(inp.namespace, inp.tenant, inp.project, inp.app, inp.hostname, inp.ingress_class, None)
        # The phase is progress for the waiting tool, not a condition of the switch: written beside the patch.
        phase = asyncio.create_task(self._mark_switching(inp.deployment_id)) if inp.deployment_id else None
        try:
            await kube_call(lambda: self.kube.apply(svc))
            # The switch is the Service; the Ingress (unchanged on a rollback) need not hold it up.
            endpoints = asyncio.create_task(self._wait_endpoints(inp.namespace, inp.app, inp.release))
            try:
                await kube_call(lambda: self.kube.apply(ing))
                await endpoints
            finally:
                endpoints.cancel()  # a refused Ingress fails the switch; its wait must not outlive the activity
        finally:
            if phase is not None:
                await phase  # written before the outcome is: `succeeded` never comes before `switching`
        return Switched(previous_release=previous if previous != inp.release else None,
                        refs=[ref(svc), ref(ing)])

    async def _mark_switching(self, deployment_id: UUID) -> None:
        try:
            await self.store.set_deployment_phase(deployment_id, Phase.SWITCHING)
        except Exception as e:  # the outcome recorded next says more; a switch that happened stands
            activity.logger.warning("phase of %s not recorded as switching: %s", deployment_id, e)

    async def _wait_endpoints(self, namespace: str, app: str, release: str, timeout: float = 30.0) -> None:
        """"Switched" means traffic reaches the new release: wait until the Service's endpoints are its pods
        (the endpoints controller lags the selector change by a moment)."""
        deadline, pause = time.monotonic() + timeout, ENDPOINTS_FIRST_PAUSE
        while time.monotonic() < deadline:
            ep = await kube_call(lambda: self.kube.get("v1", "Endpoints", namespace, app))
            targets = [a.get("targetRef", {}).get("name", "") for s in (ep or {}).get("subsets") or []
                       for a in s.get("addresses") or []]
            if targets and all(t.startswith(f"{release}-") for t in targets):
                return
            if not activity.info().is_local:  # a local activity holds its workflow task, which core keeps alive
                activity.heartbeat("endpoints")
            await asyncio.sleep(pause)
            # The controller usually follows within milliseconds (warm pods); a release still starting takes
            # seconds, so the reads back off rather than hammer the API server.
            pause = min(pause * 2, ENDPOINTS_MAX_PAUSE)
        activity.logger.warning("Service %s/%s endpoints not yet on %s after %.0f s", namespace, app, release, timeout)

    @activity.defn
    async def scale_release(self, inp: ScaleRelease) -> bool:
        if inp.unless_serving_app:
            svc = await kube_call(lambda: self.kube.get("v1", "Service", inp.namespace, inp.unless_serving_app or ""))
            if ((svc or {}).get("spec") or {}).get("selector", {}).get(LABEL_RELEASE) == inp.release:
                return False
        exists = await kube_call(lambda: self.kube.get("apps/v1", "Deployment", inp.namespace, inp.release))
        if exists is None:
            return False
        await kube_call(lambda: self.kube.scale(inp.namespace, inp.release, inp.replicas))
        return True

    @activity.defn
    async def retire_releases(self, inp: RetireReleases) -> list[RetiredRelease]:
        """Scale to zero every release of the app outside `keep` (kept as objects: rollback scales them up).
        Returns what was scaled down and from how many replicas, so a failed recreate can restore it."""
        deps = await kube_call(lambda: self.kube.list_objects(
            "apps/v1", "Deployment", inp.namespace, label_selector=f"{LABEL_APP}={inp.app}"))
        retired = []
        for d in deps:
            name = d["metadata"]["name"]
            replicas = int((d.get("spec") or {}).get("replicas", 0))
            if name not in inp.keep and replicas > 0:
                await kube_call(lambda n=name: self.kube.scale(inp.namespace, n, 0))  # type: ignore[misc]
                retired.append(RetiredRelease(name=name, replicas=replicas))
        if inp.wait_gone_seconds:
            deadline = time.monotonic() + inp.wait_gone_seconds
            while True:
                pods = await kube_call(lambda: self.kube.list_objects(
                    "v1", "Pod", inp.namespace, label_selector=f"{LABEL_APP}={inp.app}"))
                # Stopped is enough for one writer at a time; waiting for the objects to be gone cost 4-45 s
                # more on the testbed (the kubelet deletes a pod at a status sync after its volumes are torn
                # down), and a volume another node needs is detached for a stopped pod all the same.
                left = [p["metadata"]["name"] for p in pods
                        if p["metadata"].get("labels", {}).get(LABEL_RELEASE) not in inp.keep and not has_stopped(p)]
                if not left:
                    break
                if time.monotonic() > deadline:
                    raise ApplicationError(f"pods of the previous release still run: {left[:3]}",
                                           type="PreviousNotStopped")
                activity.heartbeat(left[:3])
                await asyncio.sleep(0.5)
        return retired

    @activity.defn
    async def record_outcome(self, inp: RecordOutcome) -> None:
        await self.store.finish_deployment(
            inp.deployment_id, inp.app_id, inp.phase, inp.serving,
            inp.failure.model_dump(mode="json") if inp.failure else None,
        )
        if inp.serving and self.on_serving is not None:
            try:
                await self.on_serving(inp.app_id)
            except Exception as e:  # the sweeper starts the loop later; the release's outcome stands
                activity.logger.warning("reconcile loop of app %s not started: %s", inp.app_id, e)

    @activity.defn
    async def diagnose_release(self, inp: DiagnoseInput) -> Diagnosis:
        """Read-only: the release's Deployment, pods, events, container states and last log lines."""
        dep = await kube_call(lambda: self.kube.get("apps/v1", "Deployment", inp.namespace, inp.release))
        pods = await kube_call(lambda: self.kube.list_objects(
            "v1", "Pod", inp.namespace, label_selector=f"{LABEL_RELEASE}={inp.release}"))
        names = {p["metadata"]["name"] for p in pods} | {inp.release}
        events = await kube_call(lambda: self.kube.events_for(inp.namespace, names, prefix=inp.release))
        failure = diagnose(dep, pods, events)
        logs: list[str] = []
        if failure is not None and failure.pod:
            logs = await self._last_logs(inp.namespace, failure.pod)
        containers = []
        for p in pods:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                state = cs.get("state") or {}
                kind = next(iter(state), "unknown")
                detail = state.get(kind) or {}
                last = (cs.get("lastState") or {}).get("terminated") or {}
                code = detail.get("exitCode", last.get("exitCode"))
                containers.append(f"{p['metadata']['name']}/{cs.get('name')}: {kind} {detail.get('reason') or ''}"
                                  f" (exit {code}, {cs.get('restartCount', 0)} restarts)".replace("  ", " "))
        status = (dep or {}).get("status") or {}
        return Diagnosis(
            healthy=failure is None and dep is not None, failure=failure,
            desired_replicas=int(((dep or {}).get("spec") or {}).get("replicas") or 0),
            ready_replicas=int(status.get("readyReplicas") or 0), containers=containers[:10],
            events=[f"{e.get('reason')}: {str(e.get('message'))[:300]}" for e in events[-10:]], logs=logs,
        )

    @activity.defn
    async def delete_app_objects(self, inp: DeleteAppInput) -> list[str]:
        """Idempotent: deleting what is already gone counts as done."""
        ns, selector = inp.namespace, f"{LABEL_APP}={inp.app}"
        deleted = []
        for api_version, kind in (("networking.k8s.io/v1", "Ingress"), ("v1", "Service")):
            if await kube_call(lambda av=api_version, k=kind: self.kube.delete(av, k, ns, inp.app)):  # type: ignore[misc]
                deleted.append(f"{kind}/{ns}/{inp.app}")
        caps = await kube_call(self.kube.caps)
        pdb_api = caps.pdb_api
        if await kube_call(lambda: self.kube.delete(caps.hpa_api, "HorizontalPodAutoscaler", ns, inp.app)):
            deleted.append(f"HorizontalPodAutoscaler/{ns}/{inp.app}")  # first: it would scale what is going
        for api_version, kind in (("apps/v1", "Deployment"), (pdb_api, "PodDisruptionBudget"), ("v1", "Secret")):
            objs = await kube_call(lambda av=api_version, k=kind: self.kube.list_objects(  # type: ignore[misc]
                av, k, ns, label_selector=selector))
            for obj in objs:
                name = obj["metadata"]["name"]
                if await kube_call(lambda av=api_version, k=kind, n=name: self.kube.delete(av, k, ns, n)):  # type: ignore[misc]
                    deleted.append(f"{kind}/{ns}/{name}")
        return deleted

    @activity.defn
    async def mark_app_deleted(self, inp: DeleteAppInput) -> None:
        await self.store.mark_app_deleted(inp.app_id)

    def all(self) -> list[Callable[..., Any]]:
        return [self.run_build, self.set_image, self.wait_workflows_closed, self.release_ready, self.prune_releases,
                self.set_phase,
                self.ensure_namespace, self.apply_release, self.wait_ready, self.switch_service, self.switch_if_ready,
                self.scale_release, self.retire_releases, self.record_outcome, self.diagnose_release,
                self.delete_app_objects,
                self.mark_app_deleted]
