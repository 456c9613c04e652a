"""The deploy workflow: one release of one app, from namespace guardrails to the blue/green switch.

Deterministic: activities are called by method reference (`DeployActivities.apply_release`), so their
argument and result types come from the activity's own signature; the activity classes are imported passed
through the sandbox, and this module imports no I/O library itself. Each step it enters is recorded as the
release's `Phase` (`workflows/domain/phases.py`, in this order), which the waiting tools report as progress.

Workflow id = `deploy/<tenant>/<project>/<app>/r<seq>` (`workflows.domain.workflow_ids`; a release number is
the business key), started with USE_EXISTING, so a retried tool call never starts a second run. A rollback
runs the same workflow (`kind="rollback"`) on an earlier release: just the Service switch when that release
is still warm, otherwise scale it up again from its own digest, config and secrets version first; it never
rebuilds.

Steps: namespace + guardrails -> (Harbor configured: the registry pull Secret) -> (recreate: stop the old
release) -> Secret + Deployment (+PDB) -> wait Ready -> switch the Service (autoscaled: at the serving count,
then the autoscaler retargeted) -> record success -> scale down
releases outside the rollback window -> after the window, scale down the previous release unless a rollback
made it serving again. On failure the new release is scaled to zero, the previous one keeps serving, and the
first real error is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows.activities.deploy import DeployActivities
    from workflows.activities.harbor import HarborActivities
    from workflows.activities.scaling import ScaleActivities
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
        SwitchIfReady,
        SwitchService,
        WaitClosed,
        WaitReady,
    )
    from workflows.domain.diagnosis import Failure
    from workflows.domain.phases import Phase
    from workflows.domain.scaling import scaled_config
    from workflows.domain.scaling_contract import RetargetAutoscaler, StartReplicas
    from workflows.domain.specs import ReleaseSpec

Arg = TypeVar("Arg")
Result = TypeVar("Result")

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=20), maximum_attempts=8)
QUICK = timedelta(seconds=60)
# Local activities hold the workflow task while they run: only steps that take milliseconds.
LOCAL_TIMEOUT = timedelta(seconds=10)
LOCAL_STEPS = "local-steps"
# The Service switch runs in the workflow task too: a warm rollback is then one workflow task from start to
# switched, without the activity's task-queue round trip and the workflow task after it (~20 ms on loopback).
LOCAL_SWITCH = "local-switch"
SWITCH_TIMEOUT = timedelta(seconds=60)  # two applies and the endpoints wait (at most 30 s)
# The `switching` phase is written by the switch itself, beside its patch, and a warm rollback's readiness check
# is the switch's first read: one local activity from start to switched, not three.
WARM_SWITCH = "warm-switch"

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


def release_spec(inp: DeployInput, image: str) -> ReleaseSpec:
    """What the release's objects are rendered from: the input's pins, the image to run, and (Harbor
    configured) the name of the namespace's pull Secret."""
    return ReleaseSpec(
        tenant=inp.tenant, project=inp.project, app=inp.app, namespace=inp.namespace, seq=inp.seq,
        deployment_id=str(inp.deployment_id), image=image, commit_sha=inp.commit_sha, config=inp.config,
        runtime_class=inp.runtime_class, image_pull_secret=inp.image_pull_secret,
        node_failure_seconds=inp.node_failure_seconds,
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
        self._phase = Phase.PENDING

    @workflow.query
    def phase(self) -> Phase:
        return self._phase

    async def _act(self, activity: Callable[[Any, Arg], Awaitable[Result]], arg: Arg, *,
                   timeout: timedelta = QUICK, retry_policy: RetryPolicy = RETRY,
                   heartbeat_timeout: timedelta | None = None,
                   cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL) -> Result:
        return await workflow.execute_activity_method(
            activity, arg, start_to_close_timeout=timeout, retry_policy=retry_policy,
            heartbeat_timeout=heartbeat_timeout, cancellation_type=cancellation_type)

    async def _local(self, activity: Callable[[Any, Arg], Awaitable[Result]], arg: Arg, *,
                     timeout: timedelta = LOCAL_TIMEOUT,
                     cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL) -> Result:
        """A short step (one row, one read) run as a local activity: inside the workflow task, recorded as a
        marker, without the task-queue round trip and the extra workflow task a regular activity costs (the warm
        rollback had two of them before its switch). Histories from before this change replay as they ran
        (the LOCAL_STEPS patch)."""
        if not workflow.patched(LOCAL_STEPS):
            return await self._act(activity, arg, cancellation_type=cancellation_type)
        try:
            return await workflow.execute_local_activity_method(
                activity, arg, start_to_close_timeout=timeout, retry_policy=RETRY, cancellation_type=cancellation_type)
        except (ApplicationError, TimeoutError) as err:
            # a local activity's failure arrives bare; the run handles every step's failure as an ActivityError
            raise ActivityError(f"{getattr(activity, '__name__', 'step')} failed", scheduled_event_id=0,
                                started_event_id=0, identity="", activity_type=getattr(activity, "__name__", ""),
                                activity_id="", retry_state=None) from err

    async def _set_phase(self, inp: DeployInput, phase: Phase) -> None:
        self._phase = phase
        await self._local(DeployActivities.set_phase, PhaseUpdate(deployment_id=inp.deployment_id, phase=phase))

    @workflow.run
    async def run(self, inp: DeployInput) -> DeployResult:
        release = f"{inp.app}-r{inp.seq}"
        switched: Switched | None = None
        stopped: list[RetiredRelease] = []
        finished = False
        try:
            if inp.wait_for:
                # superseded runs clean up first, so they never switch the Service after this one
                await self._set_phase(inp, Phase.SUPERSEDING)
                await self._act(DeployActivities.wait_workflows_closed, WaitClosed(workflow_ids=inp.wait_for),
                                timeout=timedelta(minutes=11), heartbeat_timeout=timedelta(seconds=30))
            image = inp.image
            if inp.build is not None:
                # a git source: build the commit (or reuse its earlier build), then release that digest
                await self._set_phase(inp, Phase.BUILDING)
                built = await self._act(
                    DeployActivities.run_build, inp.build, timeout=timedelta(seconds=inp.build.timeout_seconds + 900),
                    heartbeat_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=5)))
                if built.failure is not None or not built.digest or not built.image:
                    failure = built.failure or Failure(reason="BuildFailed", message="the build produced no image")
                    self._phase = Phase.FAILED
                    await self._local(DeployActivities.record_outcome, RecordOutcome(
                        deployment_id=inp.deployment_id, app_id=inp.app_id, phase=Phase.FAILED, serving=False,
                        failure=failure))
                    return DeployResult(deployment_id=inp.deployment_id, phase=Phase.FAILED, release=release,
                                        failure=failure)
                image = built.image
                await self._act(DeployActivities.set_image, ImageUpdate(
                    deployment_id=inp.deployment_id, image=built.image.split("@")[0], digest=built.digest))
            spec = release_spec(inp, image)
            replicas = inp.config.replicas
            if inp.autoscale is not None:
                # autoscaled: start at what serves now, so the switch never drops replicas the autoscaler added
                replicas = await self._act(ScaleActivities.start_replicas, StartReplicas(
                    namespace=inp.namespace, app=inp.app, autoscale=inp.autoscale))
                spec = spec.model_copy(update={"config": scaled_config(inp.config, replicas)})
            warm = False
            switch = SwitchService(namespace=inp.namespace, tenant=inp.tenant, project=inp.project, app=inp.app,
                                   release=release, hostname=inp.hostname, ingress_class=inp.ingress_class)
            if inp.kind == "rollback":
                # Inside the rollback window the target still runs (at the count needed): just the switch.
                if workflow.patched(WARM_SWITCH):
                    switched = await self._local(
                        DeployActivities.switch_if_ready,
                        SwitchIfReady(switch=switch.model_copy(update={"deployment_id": inp.deployment_id}),
                                      replicas=replicas),
                        timeout=SWITCH_TIMEOUT, cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
                    warm = switched is not None
                    if warm:
                        self._phase = Phase.SWITCHING
                else:
                    warm = await self._local(DeployActivities.release_ready, ReleaseState(
                        namespace=inp.namespace, release=release, replicas=replicas))
            else:
                await self._set_phase(inp, Phase.NAMESPACE)
                await self._act(DeployActivities.ensure_namespace, EnsureNamespace(
                    tenant=inp.tenant, project=inp.project, namespace=inp.namespace))
            if not warm:
                if inp.image_pull_secret:
                    # before anything stops: a Harbor that refuses leaves the serving release alone
                    await self._act(HarborActivities.ensure_pull_secret, EnsurePullSecret(
                        tenant=inp.tenant, project=inp.project, namespace=inp.namespace,
                        secret=inp.image_pull_secret), timeout=timedelta(minutes=2))
                if inp.config.strategy == "recreate":
                    # A single-node volume has one writer at a time: stop every other release first.
                    await self._set_phase(inp, Phase.STOPPING_PREVIOUS)
                    stopped = await self._act(
                        DeployActivities.retire_releases,
                        RetireReleases(namespace=inp.namespace, app=inp.app, keep=[release],
                                       wait_gone_seconds=inp.config.shutdown_grace_seconds + 60),
                        timeout=timedelta(seconds=inp.config.shutdown_grace_seconds + 180),
                        heartbeat_timeout=timedelta(seconds=30))
                await self._set_phase(inp, Phase.RELEASE)
                await self._act(DeployActivities.apply_release, ApplyRelease(
                    spec=spec, app_id=inp.app_id, secrets_version=inp.secrets_version))
                await self._set_phase(inp, Phase.WAITING)
                await self._act(
                    DeployActivities.wait_ready,
                    WaitReady(namespace=inp.namespace, release=release, replicas=replicas,
                              timeout_seconds=inp.ready_timeout_seconds, app_id=inp.app_id,
                              secrets_version=inp.secrets_version),
                    timeout=timedelta(seconds=inp.ready_timeout_seconds + 120),
                    heartbeat_timeout=timedelta(seconds=40),
                    # the activity rides out an unreachable API server itself; these retries are for a lost
                    # worker or a check that failed on its way (events, logs) while the API server restarted
                    retry_policy=RetryPolicy(maximum_attempts=6, initial_interval=timedelta(seconds=2),
                                             maximum_interval=timedelta(seconds=15)),
                )
            if switched is None:
                if workflow.patched(WARM_SWITCH):
                    self._phase = Phase.SWITCHING
                    switch = switch.model_copy(update={"deployment_id": inp.deployment_id})
                else:
                    await self._set_phase(inp, Phase.SWITCHING)
                switched = await self._switch(switch)
            if inp.autoscale is not None:
                await self._retarget(inp, release)
            self._phase = Phase.SUCCEEDED
            await self._local(DeployActivities.record_outcome, RecordOutcome(
                deployment_id=inp.deployment_id, app_id=inp.app_id, phase=Phase.SUCCEEDED, serving=True))
            finished = True
            keep = [release] + ([switched.previous_release] if switched.previous_release else [])
            await self._act(DeployActivities.retire_releases,
                            RetireReleases(namespace=inp.namespace, app=inp.app, keep=keep))
            await self._act(DeployActivities.prune_releases, PruneReleases(
                namespace=inp.namespace, app=inp.app, keep=keep, retain_count=inp.retain_releases,
                retain_days=inp.retain_days))
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # the workflow was cancelled while this activity ran: handled as a cancellation below
                await self._cancelled(inp, release, switched, stopped, finished)
                raise asyncio.CancelledError from err
            failure = failure_of(err)
            self._phase = Phase.FAILED
            await self._cleanup_best_effort(inp, release, switched, stopped)
            await self._local(DeployActivities.record_outcome, RecordOutcome(
                deployment_id=inp.deployment_id, app_id=inp.app_id, phase=Phase.FAILED, serving=False,
                failure=failure))
            return DeployResult(deployment_id=inp.deployment_id, phase=Phase.FAILED, release=release,
                                failure=failure)
        except asyncio.CancelledError:
            await self._cancelled(inp, release, switched, stopped, finished)
            raise
        if switched.previous_release:
            # The rollback window: the previous release stays scaled so `rollback` is a Service switch.
            await workflow.sleep(timedelta(seconds=inp.rollback_window_seconds))
            await self._act(DeployActivities.scale_release, ScaleRelease(
                namespace=inp.namespace, release=switched.previous_release, replicas=0, unless_serving_app=inp.app))
        return DeployResult(deployment_id=inp.deployment_id, phase=Phase.SUCCEEDED, release=release)

    async def _switch(self, arg: SwitchService) -> Switched:
        # a cancellation waits for the switch to finish rather than abandoning it half-applied
        wait = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
        if not workflow.patched(LOCAL_SWITCH):
            return await self._act(DeployActivities.switch_service, arg, cancellation_type=wait)
        return await self._local(DeployActivities.switch_service, arg, timeout=SWITCH_TIMEOUT, cancellation_type=wait)

    async def _retarget(self, inp: DeployInput, release: str) -> None:
        """The autoscaler follows the Service to `release`. Best effort: the switch has happened and stands;
        an autoscaler left on the previous release is the reconciler's to retarget at its next pass."""
        assert inp.autoscale is not None
        try:
            await self._act(ScaleActivities.retarget_autoscaler, RetargetAutoscaler(
                namespace=inp.namespace, tenant=inp.tenant, project=inp.project, app=inp.app, release=release,
                autoscale=inp.autoscale), retry_policy=RetryPolicy(maximum_attempts=3))
        except ActivityError as e:
            if isinstance(e.cause, CancelledError):
                raise
            workflow.logger.warning("autoscaler of %s not retargeted to %s: %s", inp.app, release, e.cause)

    async def _cancelled(self, inp: DeployInput, release: str, switched: Switched | None,
                         stopped: list[RetiredRelease], finished: bool) -> None:
        """Superseded by a newer deploy or a rollback. Activities still run after the cancellation is caught;
        undo what this release half-did unless it had already succeeded."""
        if finished or self._phase == Phase.CANCELLED:
            return
        self._phase = Phase.CANCELLED
        await self._cleanup_best_effort(inp, release, switched, stopped)
        await self._local(DeployActivities.record_outcome, RecordOutcome(
            deployment_id=inp.deployment_id, app_id=inp.app_id, phase=Phase.CANCELLED, serving=False,
            failure=Failure(reason="Cancelled", message="superseded by a newer deploy or a rollback")))

    async def _cleanup_best_effort(self, inp: DeployInput, release: str, switched: Switched | None,
                                   stopped: list[RetiredRelease]) -> None:
        """Clean up as far as the cluster lets us: a cleanup that fails (the API server refusing or gone for
        longer than the retries) must not keep the outcome from being recorded, or the release would say
        `waiting` forever. What it left scaled up is the reconciler's to converge."""
        try:
            await self._cleanup(inp, release, switched, stopped)
        except ActivityError as e:
            workflow.logger.warning("cleanup of %s failed, recording the outcome anyway: %s", release, e.cause)

    async def _cleanup(self, inp: DeployInput, release: str, switched: Switched | None,
                       stopped: list[RetiredRelease]) -> None:
        if switched is not None or inp.kind == "rollback":
            return  # a rollback target is a release that served before: leave it as it is
        # Keep the object for diagnosis, free its resources; the Service never pointed at it.
        await self._act(DeployActivities.scale_release, ScaleRelease(
            namespace=inp.namespace, release=release, replicas=0, unless_serving_app=inp.app))
        for old in stopped:  # recreate: bring back what was stopped for this release
            await self._act(DeployActivities.scale_release, ScaleRelease(
                namespace=inp.namespace, release=old.name, replicas=old.replicas))
