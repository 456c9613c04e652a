"""The deploy workflow: one release of one app, from namespace guardrails to the blue/green switch.

Deterministic: no I/O imports; activities are called by name so this module never imports their clients.
Workflow id = `deploy/<tenant>/<project>/<app>/r<seq>` (a release number is the business key), started
with USE_EXISTING, so a retried tool call never starts a second run. A rollback runs the same workflow
(`kind="rollback"`) on an earlier release: just the Service switch when that release is still warm,
otherwise scale it up again from its own digest, config and secrets version first; it never rebuilds.

Steps: namespace + guardrails -> (Harbor configured: the registry pull Secret) -> (recreate: stop the old
release) -> Secret + Deployment (+PDB) -> wait Ready -> switch the Service -> record success -> scale down
releases outside the rollback window -> after the window, scale down the previous release unless a rollback
made it serving again. On failure the new release is scaled to zero, the previous one keeps serving, and the
first real error is recorded.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows.domain.build_contract import BuildOutput
    from workflows.domain.deploy_contract import (
        ApplyRelease,
        DeployInput,
        DeployResult,
        EnsureNamespace,
        EnsurePullSecret,
        ImageUpdate,
        PhaseUpdate,
        PruneReleases,
        RecordOutcome,
        ReleaseState,
        RetiredRelease,
        RetireReleases,
        ScaleRelease,
        Switched,
        SwitchService,
        WaitClosed,
        WaitReady,
    )
    from workflows.domain.diagnosis import Failure
    from workflows.domain.specs import ReleaseSpec

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=20), maximum_attempts=8)
QUICK = timedelta(seconds=60)

_HINTS = {
    "K8sForbidden": "The platform's worker was refused by the cluster (RBAC or admission); tell the operator.",
    "K8sInvalid": "The cluster rejected an object the platform rendered; report it with the deployment id.",
    "K8sUnreachable": "The cluster API could not be reached; the operator should check the control plane.",
    "SecretsMissing": "Set the app's secrets again with `set_secrets`, then deploy.",
    "HarborAuth": "Harbor refused the platform's credentials; tell the operator (the message names the setting).",
    "HarborUnavailable": "Harbor could not be reached; deploy again in a moment, tell the operator if it persists.",
    "HarborError": "Harbor refused a request of the platform; report it to the operator with the deployment id.",
    "HarborNotConfigured": "The worker has no Harbor configured although the server has; tell the operator.",
}


def deploy_workflow_id(tenant: str, project: str, app: str, seq: int) -> str:
    return f"deploy/{tenant}/{project}/{app}/r{seq}"


def release_spec(inp: DeployInput, image: str) -> ReleaseSpec:
    """What the release's objects are rendered from: the input's pins, the image to run, and (Harbor
    configured) the name of the namespace's pull Secret."""
    return ReleaseSpec(
        tenant=inp.tenant, project=inp.project, app=inp.app, namespace=inp.namespace, seq=inp.seq,
        deployment_id=str(inp.deployment_id), image=image, commit_sha=inp.commit_sha, config=inp.config,
        runtime_class=inp.runtime_class, image_pull_secret=inp.image_pull_secret,
    )


def failure_of(err: BaseException) -> Failure:
    """The Failure an activity error carries: the classified release failure, or the API error itself."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        if cause.type == "ReleaseFailed" and cause.details:
            return Failure.model_validate(cause.details[0])
        kind = cause.type or "Error"
        return Failure(reason=kind, message=cause.message, hint=_HINTS.get(kind))
    if isinstance(cause, TimeoutError):
        return Failure(reason="StepTimeout", message=f"a step timed out ({cause.type.name if cause.type else ''})",
                       hint="The worker or the cluster is overloaded; deploy again.")
    return Failure(reason=type(cause).__name__ if cause else "Error", message=str(cause or err))


@workflow.defn(name="deploy")
class DeployWorkflow:
    def __init__(self) -> None:
        self._phase = "pending"

    @workflow.query
    def phase(self) -> str:
        return self._phase

    async def _act(self, name: str, arg: Any, result_type: type | None = None,
                   timeout: timedelta = QUICK, **kw: Any) -> Any:
        return await workflow.execute_activity(name, arg, result_type=result_type, start_to_close_timeout=timeout,
                                               retry_policy=kw.pop("retry_policy", RETRY), **kw)

    async def _set_phase(self, inp: DeployInput, phase: str) -> None:
        self._phase = phase
        await self._act("set_phase", PhaseUpdate(deployment_id=inp.deployment_id, phase=phase))

    @workflow.run
    async def run(self, inp: DeployInput) -> DeployResult:
        release = f"{inp.app}-r{inp.seq}"
        switched: Switched | None = None
        stopped: list[RetiredRelease] = []
        finished = False
        try:
            if inp.wait_for:
                # superseded runs clean up first, so they never switch the Service after this one
                await self._set_phase(inp, "superseding")
                await self._act("wait_workflows_closed", WaitClosed(workflow_ids=inp.wait_for),
                                timeout=timedelta(minutes=11), heartbeat_timeout=timedelta(seconds=30))
            image = inp.image
            if inp.build is not None:
                # a git source: build the commit (or reuse its earlier build), then release that digest
                await self._set_phase(inp, "building")
                built: BuildOutput = await self._act(
                    "run_build", inp.build, BuildOutput, timeout=timedelta(seconds=inp.build.timeout_seconds + 900),
                    heartbeat_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=5)))
                if built.failure is not None or not built.digest or not built.image:
                    failure = built.failure or Failure(reason="BuildFailed", message="the build produced no image")
                    self._phase = "failed"
                    await self._act("record_outcome", RecordOutcome(
                        deployment_id=inp.deployment_id, app_id=inp.app_id, phase="failed", serving=False,
                        failure=failure))
                    return DeployResult(deployment_id=inp.deployment_id, phase="failed", release=release,
                                        failure=failure)
                image = built.image
                await self._act("set_image", ImageUpdate(deployment_id=inp.deployment_id,
                                                         image=built.image.split("@")[0], digest=built.digest))
            spec = release_spec(inp, image)
            warm = False
            if inp.kind == "rollback":
                # Inside the rollback window the target still runs: the rollback is just the switch.
                warm = await self._act("release_ready", ReleaseState(
                    namespace=inp.namespace, release=release, replicas=inp.config.replicas), bool)
            else:
                await self._set_phase(inp, "namespace")
                await self._act("ensure_namespace", EnsureNamespace(tenant=inp.tenant, project=inp.project,
                                                                    namespace=inp.namespace), list[str])
            if not warm:
                if inp.image_pull_secret:
                    # before anything stops: a Harbor that refuses leaves the serving release alone
                    await self._act("ensure_pull_secret", EnsurePullSecret(
                        tenant=inp.tenant, project=inp.project, namespace=inp.namespace,
                        secret=inp.image_pull_secret), list[str], timeout=timedelta(minutes=2))
                if inp.config.strategy == "recreate":
                    # A single-node volume has one writer at a time: stop every other release first.
                    await self._set_phase(inp, "stopping-previous")
                    stopped = await self._act(
                        "retire_releases",
                        RetireReleases(namespace=inp.namespace, app=inp.app, keep=[release],
                                       wait_gone_seconds=inp.config.shutdown_grace_seconds + 60),
                        list[RetiredRelease], timeout=timedelta(seconds=inp.config.shutdown_grace_seconds + 180),
                        heartbeat_timeout=timedelta(seconds=30))
                await self._set_phase(inp, "release")
                await self._act("apply_release", ApplyRelease(spec=spec, app_id=inp.app_id,
                                                              secrets_version=inp.secrets_version), list[str])
                await self._set_phase(inp, "waiting")
                await self._act(
                    "wait_ready",
                    WaitReady(namespace=inp.namespace, release=release, replicas=inp.config.replicas,
                              timeout_seconds=inp.ready_timeout_seconds, app_id=inp.app_id,
                              secrets_version=inp.secrets_version),
                    timeout=timedelta(seconds=inp.ready_timeout_seconds + 120),
                    heartbeat_timeout=timedelta(seconds=40),
                    retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2)),
                )
            await self._set_phase(inp, "switching")
            switched = await self._act("switch_service", SwitchService(
                namespace=inp.namespace, tenant=inp.tenant, project=inp.project, app=inp.app, release=release,
                hostname=inp.hostname, ingress_class=inp.ingress_class), Switched,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
            assert switched is not None
            self._phase = "succeeded"
            await self._act("record_outcome", RecordOutcome(deployment_id=inp.deployment_id, app_id=inp.app_id,
                                                            phase="succeeded", serving=True))
            finished = True
            keep = [release] + ([switched.previous_release] if switched.previous_release else [])
            await self._act("retire_releases", RetireReleases(namespace=inp.namespace, app=inp.app, keep=keep),
                            list[RetiredRelease])
            await self._act("prune_releases", PruneReleases(
                namespace=inp.namespace, app=inp.app, keep=keep, retain_count=inp.retain_releases,
                retain_days=inp.retain_days), list[str])
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # the workflow was cancelled while this activity ran: handled as a cancellation below
                await self._cancelled(inp, release, switched, stopped, finished)
                raise asyncio.CancelledError from err
            failure = failure_of(err)
            self._phase = "failed"
            await self._cleanup(inp, release, switched, stopped)
            await self._act("record_outcome", RecordOutcome(deployment_id=inp.deployment_id, app_id=inp.app_id,
                                                            phase="failed", serving=False, failure=failure))
            return DeployResult(deployment_id=inp.deployment_id, phase="failed", release=release, failure=failure)
        except asyncio.CancelledError:
            await self._cancelled(inp, release, switched, stopped, finished)
            raise
        if switched.previous_release:
            # The rollback window: the previous release stays scaled so `rollback` is a Service switch.
            await workflow.sleep(timedelta(seconds=inp.rollback_window_seconds))
            await self._act("scale_release", ScaleRelease(namespace=inp.namespace, release=switched.previous_release,
                                                          replicas=0, unless_serving_app=inp.app), bool)
        return DeployResult(deployment_id=inp.deployment_id, phase="succeeded", release=release)

    async def _cancelled(self, inp: DeployInput, release: str, switched: Switched | None,
                         stopped: list[RetiredRelease], finished: bool) -> None:
        """Superseded by a newer deploy or a rollback. Activities still run after the cancellation is caught;
        undo what this release half-did unless it had already succeeded."""
        if finished or self._phase == "cancelled":
            return
        self._phase = "cancelled"
        await self._cleanup(inp, release, switched, stopped)
        await self._act("record_outcome", RecordOutcome(
            deployment_id=inp.deployment_id, app_id=inp.app_id, phase="cancelled", serving=False,
            failure=Failure(reason="Cancelled", message="superseded by a newer deploy or a rollback")))

    async def _cleanup(self, inp: DeployInput, release: str, switched: Switched | None,
                       stopped: list[RetiredRelease]) -> None:
        if switched is not None or inp.kind == "rollback":
            return  # a rollback target is a release that served before: leave it as it is
        # Keep the object for diagnosis, free its resources; the Service never pointed at it.
        await self._act("scale_release", ScaleRelease(namespace=inp.namespace, release=release, replicas=0,
                                                      unless_serving_app=inp.app), bool)
        for old in stopped:  # recreate: bring back what was stopped for this release
            await self._act("scale_release", ScaleRelease(namespace=inp.namespace, release=old.name,
                                                          replicas=old.replicas), bool)
