"""The scaling activities: `scale_app` (the scale workflow's one step) and the deploy workflow's two autoscaler
steps, `start_replicas` and `retarget_autoscaler` (docs/decisions/0015-autoscaling.md).

`scale_app` changes the serving release in place: the `scale` subresource of its Deployment (no new release,
no other release touched) and the app's HorizontalPodAutoscaler, all under the app's row lock, the lock the
reconciler's passes and the recording of a release take, so it never interleaves with either. While a release
of the app is in progress it refuses (that release's count was fixed when it started; scaling after it
finishes is exact). The record (`apps.scale`) is written in the lock's transaction, so a scale whose cluster
change failed is not recorded either, and the activity's retry does it all again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from workflows.activities.kube_call import kube_call
from workflows.activities.stores import ScaleStore
from workflows.adapters.kube import Kube, ref
from workflows.domain.labels import LABEL_RELEASE
from workflows.domain.names import release_name
from workflows.domain.scaling import AppScale, scale_refusal
from workflows.domain.scaling_contract import RetargetAutoscaler, ScaleInput, ScaleResult, StartReplicas
from workflows.domain.specs import AppConfig
from workflows.render.autoscaler import app_autoscaler


class ScaleActivities:
    def __init__(self, kube: Kube, store: ScaleStore, temporal: Client | None = None) -> None:
        self.kube = kube
        self.store = store
        self.temporal = temporal

    async def _running(self, workflow_id: str) -> bool:
        """A release recorded as in progress holds the app only while its workflow runs (as the reconciler
        judges it: a row whose workflow Temporal lost must not block scaling forever)."""
        if self.temporal is None:
            return True
        try:
            desc = await self.temporal.get_workflow_handle(workflow_id).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return desc.status == WorkflowExecutionStatus.RUNNING

    @activity.defn
    async def scale_app(self, inp: ScaleInput) -> ScaleResult:
        async with self.store.scale_lock(inp.app_id) as t:
            if t.state == "gone":
                return ScaleResult(outcome="refused", reason="the app is deleted (or being deleted)",
                                   fix="call list_apps for the apps you have")
            running = [w for w in t.in_flight if await self._running(w)]
            if running:
                return ScaleResult(outcome="refused", reason=f"a release of the app is in progress ({running[0]})",
                                   fix="call scale again once it has finished (get_app shows its phase)")
            if t.serving is None:
                return ScaleResult(outcome="refused", reason="no release of the app serves yet",
                                   fix="deploy it (or wait for its first release), then scale")
            config = AppConfig.model_validate(t.serving.config)
            refusal = scale_refusal(config, inp.replicas, inp.autoscale)
            if refusal is not None:
                return ScaleResult(outcome="refused", reason=refusal[0], fix=refusal[1])
            ns, release = t.namespace, release_name(t.app, t.serving.release_seq)
            dep = await kube_call(lambda: self.kube.get("apps/v1", "Deployment", ns, release))
            if dep is None:
                return ScaleResult(outcome="refused", reason=f"the serving release's Deployment {release} is missing",
                                   fix="the platform re-creates it within a minute; call scale again then")
            live = int((dep.get("spec") or {}).get("replicas") or 0)
            if inp.autoscale is not None:
                replicas, scale = inp.autoscale.clamp(live), AppScale(autoscale=inp.autoscale)
            else:
                # neither given: the autoscaler goes, the count it reached stays as a fixed count
                replicas = inp.replicas or live or config.replicas
                scale = AppScale(replicas=replicas)
            await self.store.record_scale(inp.app_id, scale)
            refs = [f"Deployment/{ns}/{release}"]
            if replicas != live:
                await kube_call(lambda: self.kube.scale(ns, release, replicas))
            caps = await kube_call(self.kube.caps)
            if inp.autoscale is not None:
                hpa = app_autoscaler(ns, t.tenant, t.project, t.app, release, inp.autoscale, caps)
                await kube_call(lambda: self.kube.apply(hpa))
                refs.append(ref(hpa))
            elif await kube_call(lambda: self.kube.delete(caps.hpa_api, "HorizontalPodAutoscaler", ns, t.app)):
                refs.append(f"HorizontalPodAutoscaler/{ns}/{t.app} (deleted)")
        return ScaleResult(outcome="scaled", release=release, replicas=replicas, autoscale=inp.autoscale, refs=refs)

    @activity.defn
    async def start_replicas(self, inp: StartReplicas) -> int:
        """The count a new release of an autoscaled app starts at: what the release the Service selects runs
        now (the autoscaler's latest choice), kept inside the range; the floor when nothing serves."""
        svc = await kube_call(lambda: self.kube.get("v1", "Service", inp.namespace, inp.app))
        serving = ((svc or {}).get("spec") or {}).get("selector", {}).get(LABEL_RELEASE)
        live = None
        if serving:
            dep = await kube_call(lambda: self.kube.get("apps/v1", "Deployment", inp.namespace, serving))
            if dep is not None:
                live = int((dep.get("spec") or {}).get("replicas") or 0) or None
        return inp.autoscale.clamp(live if live is not None else inp.autoscale.min)

    @activity.defn
    async def retarget_autoscaler(self, inp: RetargetAutoscaler) -> str:
        """Apply the app's autoscaler with `scaleTargetRef` on `release`: the switch from the previous release
        is one field of one object, so no moment has two autoscalers or none."""
        caps = await kube_call(self.kube.caps)
        hpa = app_autoscaler(inp.namespace, inp.tenant, inp.project, inp.app, inp.release, inp.autoscale, caps)
        await kube_call(lambda: self.kube.apply(hpa))
        return ref(hpa)

    def all(self) -> list[Callable[..., Any]]:
        return [self.scale_app, self.start_replicas, self.retarget_autoscaler]
