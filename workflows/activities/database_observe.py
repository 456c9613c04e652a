"""`database_observe`: a database as it is now, for `databases` and `diagnose`. Its pod's readiness from the API,
the claim's disk use from the kubelet Summary API of the pod's node (the adapter `app_metrics` reads), and the
connections from a one-query Job's log (`workflows/render/database.py` `observe_job`). Read-only but for that
Job, which is deleted before returning. Anything unreadable becomes `unknown` with its reason, never an error
and never an older figure: the answer is what could be observed at this moment."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from workflows.activities.database import job_outcome
from workflows.adapters.kube import Kube, KubeError
from workflows.domain.database_observation import (
    Connections,
    DatabaseObservation,
    DiskUse,
    ObserveInput,
    parse_connections,
    volume_disk_use,
)
from workflows.domain.database_spec import DatabaseSpec
from workflows.render.database import observe_job, pod_selector

POLL_SECONDS = 1.0


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _why(e: KubeError) -> str:
    return str(e)[:160]


class DatabaseObserveActivities:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def _disk(self, spec: DatabaseSpec, pod: dict[str, Any]) -> DiskUse:
        node = (pod.get("spec") or {}).get("nodeName")
        name = str(pod["metadata"]["name"])
        if not node:
            return DiskUse(unknown=f"pod {name} is not on a node yet")
        try:
            summary = await self.kube.node_stats_summary(str(node))
        except KubeError as e:
            return DiskUse(unknown=f"the kubelet of node {node} is unreadable: {_why(e)}")
        # CloudNativePG names the claim after its instance pod; ours is the platform volume
        claim = name if spec.engine == "cloudnative-pg" else spec.claim
        return volume_disk_use(summary, spec.namespace, name, claim)

    async def _connections(self, spec: DatabaseSpec, timeout: float) -> Connections:
        ns = spec.namespace
        job_name = f"{spec.object_name[:40]}-observe-{uuid.uuid4().hex[:6]}"
        try:
            await self.kube.apply(observe_job(spec, job_name))
        except KubeError as e:
            return Connections(unknown=f"the query job could not be created: {_why(e)}")
        try:
            deadline = time.monotonic() + timeout
            outcome = None
            while outcome is None and time.monotonic() < deadline:
                outcome = job_outcome(await self.kube.get("batch/v1", "Job", ns, job_name))
                if outcome is None:
                    activity.heartbeat(job_name)
                    await asyncio.sleep(POLL_SECONDS)
            if outcome is None:
                return Connections(unknown=f"the query job {ns}/{job_name} did not finish in {timeout:.0f} s")
            when = datetime.now(UTC)
            pods = await self.kube.list_objects("v1", "Pod", ns, label_selector=f"job-name={job_name}")
            log = "".join([await self.kube.pod_log(ns, str(p["metadata"]["name"]), limit_bytes=4096)
                           for p in pods[:1]])
            answer = parse_connections(log) if outcome == "succeeded" else None
            if answer is None:
                last = (log.strip().splitlines() or ["no output"])[-1][:160]
                return Connections(unknown=f"the query job {ns}/{job_name} got no answer: {last}")
            return Connections(current=answer[0], max=answer[1], observed_at=when)
        except KubeError as e:
            return Connections(unknown=f"the query job's answer is unreadable: {_why(e)}")
        finally:
            try:  # the Job's own TTL removes it if this fails
                await self.kube.delete("batch/v1", "Job", ns, job_name)
            except KubeError as e:
                activity.logger.warning("observe job %s/%s not deleted: %s", ns, job_name, _why(e))

    @activity.defn
    async def database_observe(self, inp: ObserveInput) -> DatabaseObservation:
        spec = inp.spec
        try:
            pods = await self.kube.list_objects("v1", "Pod", spec.namespace,
                                                label_selector=_selector(pod_selector(spec)))
        except KubeError as e:
            why = f"the database's pods are unreadable: {_why(e)}"
            return DatabaseObservation(disk=DiskUse(unknown=why), connections=Connections(unknown=why))
        running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        if not running:
            why = "no database pod is running" + (f" ({len(pods)} not running)" if pods else "")
            return DatabaseObservation(ready=False if pods else None, disk=DiskUse(unknown=why),
                                       connections=Connections(unknown=why))
        pod = running[0]
        ready = _pod_ready(pod)
        disk = await self._disk(spec, pod)
        if ready:
            connections = await self._connections(spec, inp.query_timeout_seconds)
        else:
            connections = Connections(unknown=f"pod {pod['metadata']['name']} is not Ready: it takes no "
                                              "connections")
        return DatabaseObservation(ready=ready, pod=str(pod["metadata"]["name"]), disk=disk,
                                   connections=connections)

    def all(self) -> list[Callable[..., Any]]:
        return [self.database_observe]


