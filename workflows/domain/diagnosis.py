"""The first real error of a release, read from what the cluster reports about its pods.

Pure functions over the API's JSON (pods, events, a Deployment's conditions), so each rule is tested on
its own and the activities only gather the evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field


class Failure(BaseModel):
    reason: str = Field(description="ImagePullFailed, CrashLoop, OOMKilled, ContainerConfigError, Unschedulable, "
                                    "QuotaExceeded, ProbeFailed, ReadyTimeout, BuildFailed, ...")
    message: str
    hint: str | None = None
    evidence: list[str] = Field(default_factory=list)
    pod: str | None = None

    def with_logs(self, lines: Iterable[str]) -> Failure:
        return self.model_copy(update={"evidence": [*self.evidence, *(f"log: {x}" for x in lines)]})


_PULL = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
_CONFIG = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreCreateHookError"}


def _name(pod: Mapping[str, Any]) -> str:
    return str(pod.get("metadata", {}).get("name", "?"))


def pod_failure(pod: Mapping[str, Any], crash_restarts: int = 2) -> Failure | None:
    """The failure a single pod shows, or None while it looks healthy or merely starting."""
    status = pod.get("status") or {}
    name = _name(pod)
    for cond in status.get("conditions") or []:
        unschedulable = cond.get("reason") == "Unschedulable" and cond.get("status") == "False"
        if cond.get("type") == "PodScheduled" and unschedulable:
            return Failure(
                reason="Unschedulable", pod=name, message=str(cond.get("message") or "no node fits the pod"),
                hint="Lower `replicas` or `resources`, or ask the operator for capacity on nodes labelled pool=run.",
            )
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason")
        if reason in _PULL:
            return Failure(
                reason="ImagePullFailed", pod=name, message=f"{reason}: {waiting.get('message') or cs.get('image')}",
                hint="Check the image exists and the platform can pull it (registry credentials); deploy a "
                     "reference that `docker pull` accepts.",
            )
        if reason in _CONFIG:
            return Failure(reason="ContainerConfigError", pod=name, message=f"{reason}: {waiting.get('message', '')}",
                           hint="The container could not be created from its configuration; check command/args "
                                "and that the image runs as a non-root user with a read-only root filesystem.")
        terminated = state.get("terminated") or last
        restarts = int(cs.get("restartCount") or 0)
        if terminated.get("reason") == "OOMKilled":
            return Failure(reason="OOMKilled", pod=name,
                           message=f"the container used more than its memory limit (exit {terminated.get('exitCode')})",
                           hint="Raise `resources.memory_mib` or reduce the app's memory use.")
        if reason == "CrashLoopBackOff" or (terminated and restarts >= crash_restarts):
            code = terminated.get("exitCode")
            return Failure(reason="CrashLoop", pod=name,
                           message=f"the container keeps exiting (exit code {code}, {restarts} restarts)",
                           hint="Read the last log lines below; fix the start command or the app's startup error.")
    if status.get("phase") == "Failed":
        return Failure(reason="PodFailed", pod=name, message=str(status.get("message") or status.get("reason")))
    return None


def deployment_failure(deployment: Mapping[str, Any]) -> Failure | None:
    """Failures a Deployment reports itself: pods it cannot even create (quota, admission)."""
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            msg = str(cond.get("message") or "")
            if "exceeded quota" in msg or "forbidden: exceeded" in msg:
                return Failure(reason="QuotaExceeded", message=msg,
                               hint="The project's ResourceQuota is full: lower `replicas`/`resources`, delete unused "
                                    "apps, or ask the operator to raise the quota.")
            return Failure(reason="PodCreateFailed", message=msg,
                           hint="The cluster refused to create the pods (admission policy); see the message.")
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Failure(reason="ReadyTimeout", message=str(cond.get("message") or "progress deadline exceeded"))
    return None


def timeout_failure(pods: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]], seconds: float) -> Failure:
    """Nothing failed outright but the release never became Ready: probes are the usual cause."""
    unhealthy = [e for e in events if e.get("reason") == "Unhealthy"]
    if unhealthy:
        last = unhealthy[-1]
        return Failure(
            reason="ProbeFailed",
            message=f"not Ready after {seconds:.0f} s: {last.get('message')}",
            hint="The health check never passed: check `health_check.path` and `port` match what the app serves, "
                 "or give it more `initial_delay_seconds`.",
            evidence=[str(e.get("message")) for e in unhealthy[-3:]],
            pod=str((last.get("involvedObject") or {}).get("name") or "") or None,
        )
    if not pods:
        return Failure(reason="ReadyTimeout", message=f"no pod was created within {seconds:.0f} s",
                       hint="Check `diagnose_deployment` for quota or admission problems.")
    return Failure(reason="ReadyTimeout", message=f"{len(pods)} pod(s) not Ready after {seconds:.0f} s",
                   hint="The app may be slow to start: raise `health_check.initial_delay_seconds`.",
                   evidence=[f"{_name(p)}: {(p.get('status') or {}).get('phase')}" for p in pods[:3]])


def has_stopped(pod: Mapping[str, Any]) -> bool:
    """No process of the pod runs or can run again: it finished (Succeeded, Failed), or it is being deleted and
    every container its spec names reports `terminated` (the kubelet starts nothing in a pod being deleted).
    The pod object itself may stay a while longer, until the kubelet has torn its volumes down and its next
    status sync deletes it (seconds to tens of seconds). A pod being deleted whose containers never all
    reported, or whose init container still runs, has not stopped."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if any("running" in (c.get("state") or {}) for c in status.get("initContainerStatuses") or []):
        return False
    states = {c.get("name"): c.get("state") or {} for c in status.get("containerStatuses") or []}
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    return bool(names) and all("terminated" in states.get(n, {}) for n in names)


def is_ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def refine_with_events(failure: Failure, events: Sequence[Mapping[str, Any]]) -> Failure:
    """A container killed by its liveness probe looks like a crash loop; the events say it was the probe."""
    probe = [e for e in events if e.get("reason") == "Unhealthy"
             and (not failure.pod or (e.get("involvedObject") or {}).get("name") == failure.pod)]
    if failure.reason == "CrashLoop" and any("Liveness probe failed" in str(e.get("message")) for e in probe):
        return Failure(
            reason="ProbeFailed", pod=failure.pod,
            message=f"the liveness probe keeps failing, so the container is restarted: {probe[-1].get('message')}",
            hint="Check `health_check.path`/`port` match what the app serves, or raise "
                 "`health_check.initial_delay_seconds` if it starts slowly.",
            evidence=[str(e.get("message")) for e in probe[-3:]] + failure.evidence,
        )
    return failure


def diagnose(deployment: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]],
             events: Sequence[Mapping[str, Any]]) -> Failure | None:
    """The first real cause of a release's trouble, or None when it looks healthy."""
    if deployment is None:
        return Failure(reason="ReleaseMissing", message="the release's Deployment does not exist (pruned or deleted)",
                       hint="Roll back to it to re-create it from its snapshot, or deploy again.")
    for pod in pods:
        failure = pod_failure(pod)
        if failure is not None:
            return refine_with_events(failure, events)
    failure = deployment_failure(deployment)
    if failure is not None:
        return failure
    quota = [e for e in events if e.get("reason") == "FailedCreate" and "exceeded quota" in str(e.get("message"))]
    if quota:
        return Failure(reason="QuotaExceeded", message=str(quota[-1].get("message")),
                       hint="The project's ResourceQuota is full: lower `replicas`/`resources` or delete unused apps.")
    want = int((deployment.get("spec") or {}).get("replicas") or 0)
    ready = sum(1 for p in pods if is_ready(p))
    if want and ready < want and any(e.get("reason") == "Unhealthy" for e in events):
        return timeout_failure(list(pods), list(events), 0).model_copy(
            update={"message": f"{ready}/{want} replicas Ready; " + str(
                [e for e in events if e.get("reason") == "Unhealthy"][-1].get("message"))})
    return None
