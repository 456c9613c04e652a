"""The production builder: one commit built by a Kubernetes Job on the build pool against BuildKit (the Job is
rendered by `workflows.render.build_job`); this module runs it and reads its outcome.

Safe to retry: the Job is named after the build id, so a retried activity finds the Job it started (applying
the same spec again is a no-op) and follows it to the end instead of starting a second build. The git
credentials (and, with Harbor, the tenant's registry robot) live in Secrets that exist only while the build
runs: deleted when the build is over, and owned by the Job so the garbage collector removes them with the Job
should the worker die first.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

from workflows.adapters.kube import Kube, KubeError
from workflows.domain.build_contract import BuildInput
from workflows.domain.build_spec import BuildImages, BuildSpec
from workflows.domain.credentials import GitCredentials, RobotCredentials
from workflows.domain.labels import LABEL_MANAGED_BY, MANAGED_BY
from workflows.render.build_job import build_job, build_labels, build_secrets_body, digest_from_log, git_secret_body
from workflows.render.pull_secret import imagepull_secret

LineSink = Callable[[str], Awaitable[None]]
Heartbeat = Callable[[], None]

PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                         "CreateContainerConfigError", "CreateContainerError"})
"""Waiting reasons that never resolve on their own: the Job would only end at its deadline."""


@dataclass(frozen=True)
class JobBuilderSettings:
    namespace: str
    buildkit_addr: str
    images: BuildImages
    registry: str
    buildkit_tls_secret: str | None = None
    registry_secret: str | None = None
    cpu_millicores: int = 2000
    memory_mib: int = 4096
    pool: str = "build"
    schedule_timeout_seconds: float = 300
    poll_seconds: float = 1.0
    fast_poll_seconds: float = 0.2
    fast_poll_for_seconds: float = 15.0


@dataclass(frozen=True)
class JobOutcome:
    status: Literal["succeeded", "failed"]
    digest: str | None = None
    failed_step: str | None = None
    error: str | None = None
    last_lines: tuple[str, ...] = ()
    retryable: bool = False


class JobBuilder:
    def __init__(self, kube: Kube, settings: JobBuilderSettings) -> None:
        self.kube = kube
        self.settings = settings

    def spec(self, inp: BuildInput, build_id: str, builder: Literal["railpack", "dockerfile"],
             credentials: GitCredentials | None, robot: RobotCredentials | None = None,
             build_secret_names: tuple[str, ...] = ()) -> BuildSpec:
        """The Job's spec. With `robot` (the tenant's Harbor robot), the build pushes with it through a per-build
        Secret; without, through the operator's `registry_secret`, if any."""
        s = self.settings
        return BuildSpec(
            tenant=inp.tenant, project=inp.project, app=inp.app, build_id=build_id,
            deployment_id=str(inp.deployment_id) if inp.deployment_id else None, namespace=s.namespace,
            git_url=inp.git_url, commit_sha=inp.commit_sha, subdir=inp.subdir, builder=builder,
            image=f"{inp.image_repo}:{inp.commit_sha}", buildkit_addr=s.buildkit_addr,
            buildkit_tls_secret=s.buildkit_tls_secret, cache_ref=f"{s.registry}/{inp.tenant}/buildcache:{inp.app}",
            git_secret=f"build-{build_id}-git" if credentials else None,
            git_auth="ssh" if credentials and credentials.ssh_private_key else "token",
            registry_secret=f"build-{build_id}-registry" if robot else s.registry_secret,
            build_secrets_secret=f"build-{build_id}-secrets" if build_secret_names else None,
            build_secret_names=build_secret_names,
            cpu_millicores=s.cpu_millicores, memory_mib=s.memory_mib,
            deadline_seconds=max(60, min(inp.timeout_seconds, 6 * 3600)), images=s.images, pool=s.pool,
        )

    async def build(self, spec: BuildSpec, credentials: GitCredentials | None, on_line: LineSink,
                    heartbeat: Heartbeat = lambda: None, robot: RobotCredentials | None = None,
                    build_secrets: Mapping[str, str] | None = None) -> JobOutcome:
        """Run (or, on a retry, rejoin) the build Job of `spec`, streaming its containers' lines to `on_line`."""
        await self.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": spec.namespace, "labels": {LABEL_MANAGED_BY: MANAGED_BY}}})
        secrets = []
        if credentials and spec.git_secret:
            secrets.append(git_secret_body(spec, credentials))
        if spec.build_secrets_secret and build_secrets:
            secrets.append(build_secrets_body(spec, build_secrets))
        if robot is not None and spec.registry_secret:
            secrets.append(imagepull_secret(self.settings.registry, robot, name=spec.registry_secret,
                                            namespace=spec.namespace, labels=build_labels(spec)))
        try:
            job = await self.kube.get("batch/v1", "Job", spec.namespace, spec.job_name)
            if job is None:
                for secret in secrets:  # a retry may carry a fresh token: replace, never patch
                    await self.kube.delete("v1", "Secret", spec.namespace, secret["metadata"]["name"])
                    await self.kube.create(secret)
                job = await self.kube.apply(build_job(spec))
                for secret in secrets:
                    await self.kube.patch(secret, {"metadata": {"ownerReferences": [{
                        "apiVersion": "batch/v1", "kind": "Job", "name": spec.job_name,
                        "uid": job["metadata"]["uid"], "blockOwnerDeletion": False}]}})
            await on_line(f"deploy-mcp: build Job {spec.namespace}/{spec.job_name} on the build pool")
            return await self._follow(spec, on_line, heartbeat)
        finally:
            for secret in secrets:
                await self.kube.delete("v1", "Secret", spec.namespace, secret["metadata"]["name"])

    async def _follow(self, spec: BuildSpec, on_line: LineSink, heartbeat: Heartbeat) -> JobOutcome:
        order = ["clone", *(["plan"] if spec.builder == "railpack" else []), "build"]
        tails: dict[str, deque[str]] = {name: deque(maxlen=15) for name in order}
        build_log: list[str] = []
        streamed: set[str] = set()
        started = time.monotonic()
        while True:
            heartbeat()
            job = await self.kube.get("batch/v1", "Job", spec.namespace, spec.job_name)
            if job is None:
                return JobOutcome("failed", failed_step="job", retryable=True,
                                  error=f"the build Job {spec.job_name} disappeared before it finished")
            pods = await self.kube.list_objects("v1", "Pod", spec.namespace, label_selector=f"job-name={spec.job_name}")
            pod = pods[0] if pods else None
            if pod is not None:
                statuses = _container_statuses(pod)
                for name in order:
                    state = (statuses.get(name) or {}).get("state") or {}
                    if name in streamed or not ("running" in state or "terminated" in state):
                        continue
                    streamed.add(name)
                    await self._stream(spec, pod["metadata"]["name"], name, tails[name],
                                       build_log if name == "build" else None, on_line, heartbeat)
                    digest = digest_from_log("\n".join(build_log)) if name == "build" else None
                    if digest is not None:
                        # The build script prints the digest as its last line, once buildctl has pushed the
                        # image: the release can start now rather than when the Job controller marks it
                        # Complete (the kubelet's next status sync, then the controller's), a second later.
                        return JobOutcome("succeeded", digest=digest)
                stuck = _stuck(statuses)
                if stuck is not None:
                    name, message = stuck
                    await self.kube.delete("batch/v1", "Job", spec.namespace, spec.job_name, propagation="Background")
                    return JobOutcome("failed", failed_step=name, error=f"the {name} step cannot start: {message}")
                unschedulable = _unschedulable(pod)
                if unschedulable and time.monotonic() - started > self.settings.schedule_timeout_seconds:
                    await self.kube.delete("batch/v1", "Job", spec.namespace, spec.job_name, propagation="Background")
                    return JobOutcome("failed", failed_step="schedule", error=(
                        f"no build node took the build in {self.settings.schedule_timeout_seconds:.0f} s: "
                        f"{unschedulable}; the operator must add capacity to the nodes labelled "
                        f"pool={self.settings.pool}"))
            done = _finished(job)
            if done == "Complete" and (pod is None or all(n in streamed for n in order)):
                # A build log with the digest returned as soon as it ended, above: this one never printed it.
                return JobOutcome("failed", failed_step="build", last_lines=tuple(tails["build"]),
                                  error="the build finished without printing the pushed image's digest")
            if done == "Failed" and (pod is None or not _running(pod)):
                return _failure(job, pod, order, tails)  # every step that ran was streamed above
            # Quick reads while the pod starts and passes from one step to the next (a step's own run is
            # waited on by its log stream, not by polling); slow ones for a pod left pending for long.
            fast = time.monotonic() - started < self.settings.fast_poll_for_seconds
            await asyncio.sleep(self.settings.fast_poll_seconds if fast else self.settings.poll_seconds)

    async def _stream(self, spec: BuildSpec, pod: str, container: str, tail: deque[str], keep: list[str] | None,
                      on_line: LineSink, heartbeat: Heartbeat) -> None:
        await on_line(f"deploy-mcp: step {container}")
        try:
            async with aclosing(self.kube.follow_pod_log(spec.namespace, pod, container,
                                                         max_seconds=spec.deadline_seconds + 60)) as lines:
                async for line in lines:
                    tail.append(line)
                    if keep is not None:
                        keep.append(line)
                    await on_line(line)
                    heartbeat()
        except KubeError as e:  # the pod went away (deadline) or its log is gone: the Job status still tells
            await on_line(f"deploy-mcp: log of step {container} cut short: {e}")


def _container_statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = pod.get("status") or {}
    return {c["name"]: c for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])}


def _running(pod: dict[str, Any]) -> bool:
    return any("running" in (c.get("state") or {}) for c in _container_statuses(pod).values())


def _stuck(statuses: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    for name, status in statuses.items():
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_ERRORS:
            return name, f"{waiting['reason']}: {waiting.get('message') or status.get('image')}"
    return None


def _unschedulable(pod: dict[str, Any]) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("message") or cond.get("reason") or "unschedulable")
    return None


def _finished(job: dict[str, Any]) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def _failure(job: dict[str, Any], pod: dict[str, Any] | None, order: list[str],
             tails: dict[str, deque[str]]) -> JobOutcome:
    cond = next(c for c in job["status"]["conditions"] if c.get("type") == "Failed")
    if cond.get("reason") == "DeadlineExceeded":
        return JobOutcome("failed", failed_step="deadline", error=(
            f"the build ran past its deadline of {job['spec'].get('activeDeadlineSeconds')} s and was stopped"))
    statuses = _container_statuses(pod) if pod else {}
    for name in order:
        term = (statuses.get(name) or {}).get("state", {}).get("terminated") or {}
        if term and term.get("exitCode", 0) != 0:
            return JobOutcome("failed", failed_step=name, last_lines=tuple(tails[name]),
                              error=f"the {name} step failed (exit code {term.get('exitCode')})")
    why = cond.get("message") or cond.get("reason")
    return JobOutcome("failed", failed_step="job", error=f"the build Job failed: {why}")
