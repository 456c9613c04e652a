"""The deploy workflow's decisions, on Temporal's time-skipping test server (real server, time that jumps),
with fake activities that record their calls: the order of steps, the rollback window's scale-down after
the default 15 minutes (skipped, not waited), failure cleanup, rollback shortcuts, cancellation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mcp_server.devenv.embedded import temporal_test_server
from workflows.deploy import DeployWorkflow
from workflows.domain.deploy_contract import DeployInput, DeployResult, RetiredRelease, Switched
from workflows.domain.specs import AppConfig


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    e = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server()), data_converter=pydantic_data_converter)
    try:
        yield e
    finally:
        await e.shutdown()


class FakeActivities:
    """Stand-ins for the cluster activities: record each call; `fail_wait` / `warm` steer the workflow."""

    def __init__(self, fail_wait: bool = False, warm: bool = False, previous: str | None = "web-r1",
                 registry_errors: list[ApplicationError] | None = None, fail_scale: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_wait, self.warm, self.previous, self.fail_scale = fail_wait, warm, previous, fail_scale
        self.registry_errors = list(registry_errors or [])  # raised by ensure_pull_secret, one per attempt
        self.waiting = asyncio.Event()

    def _rec(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg.model_dump(mode="json") if hasattr(arg, "model_dump") else arg))

    def all(self) -> list[Any]:
        fa = self

        @activity.defn(name="set_phase")
        async def set_phase(inp: Any) -> None:
            fa._rec("set_phase", inp)

        @activity.defn(name="ensure_namespace")
        async def ensure_namespace(inp: Any) -> list[str]:
            fa._rec("ensure_namespace", inp)
            return []

        @activity.defn(name="apply_release")
        async def apply_release(inp: Any) -> list[str]:
            fa._rec("apply_release", inp)
            return []

        @activity.defn(name="ensure_pull_secret")
        async def ensure_pull_secret(inp: Any) -> list[str]:
            fa._rec("ensure_pull_secret", inp)
            if fa.registry_errors:
                raise fa.registry_errors.pop(0)
            return [f"Secret/{inp['namespace']}/{inp['secret']}"]

        @activity.defn(name="wait_ready")
        async def wait_ready(inp: Any) -> None:
            fa._rec("wait_ready", inp)
            fa.waiting.set()
            if fa.fail_wait:
                raise ApplicationError("CrashLoop: boom", {"reason": "CrashLoop", "message": "boom",
                                                           "evidence": ["log: boom"]},
                                       type="ReleaseFailed", non_retryable=True)

        @activity.defn(name="switch_service")
        async def switch_service(inp: Any) -> Switched:
            fa._rec("switch_service", inp)
            return Switched(previous_release=fa.previous, refs=[])

        @activity.defn(name="retire_releases")
        async def retire_releases(inp: Any) -> list[RetiredRelease]:
            fa._rec("retire_releases", inp)
            return []

        @activity.defn(name="prune_releases")
        async def prune_releases(inp: Any) -> list[str]:
            fa._rec("prune_releases", inp)
            return []

        @activity.defn(name="scale_release")
        async def scale_release(inp: Any) -> bool:
            fa._rec("scale_release", inp)
            if fa.fail_scale:
                raise ApplicationError("K8sForbidden: deployments/scale", type="K8sForbidden", non_retryable=True)
            return True

        @activity.defn(name="record_outcome")
        async def record_outcome(inp: Any) -> None:
            fa._rec("record_outcome", inp)

        @activity.defn(name="switch_if_ready")
        async def switch_if_ready(inp: Any) -> Switched | None:
            fa._rec("switch_if_ready", inp)
            return Switched(previous_release=fa.previous, refs=[]) if fa.warm else None

        @activity.defn(name="wait_workflows_closed")
        async def wait_workflows_closed(inp: Any) -> None:
            fa._rec("wait_workflows_closed", inp)

        return [set_phase, ensure_namespace, apply_release, wait_ready, switch_service, retire_releases,
                prune_releases, scale_release, record_outcome, switch_if_ready, wait_workflows_closed,
                ensure_pull_secret]

    def names(self) -> list[str]:
        return [n for n, _ in self.calls if n != "set_phase"]


def deploy_input(**kw: Any) -> DeployInput:
    base: dict[str, Any] = dict(
        deployment_id=uuid.uuid4(), app_id=uuid.uuid4(), tenant="acme", project="shop", app="web",
        namespace="dm-acme-shop-x", seq=2, hostname="web-shop-acme.apps.test", image="r/web@sha256:" + "a" * 64,
        image_digest="sha256:" + "a" * 64, config=AppConfig(port=8080),
    )
    return DeployInput(**(base | kw))


async def run(env: WorkflowEnvironment, fa: FakeActivities, inp: DeployInput) -> DeployResult:
    queue = f"q-{uuid.uuid4().hex[:6]}"
    async with Worker(env.client, task_queue=queue, workflows=[DeployWorkflow], activities=fa.all()):
        result: DeployResult = await env.client.execute_workflow(
            DeployWorkflow.run, inp, id=f"deploy-{uuid.uuid4()}", task_queue=queue)
        return result


async def test_success_switches_then_scales_the_previous_down_after_the_window(env: WorkflowEnvironment) -> None:
    fa = FakeActivities()
    result = await run(env, fa, deploy_input(rollback_window_seconds=900, retain_releases=7))
    assert result.phase == "succeeded" and result.release == "web-r2"
    assert fa.names() == ["ensure_namespace", "apply_release", "wait_ready", "switch_service", "record_outcome",
                          "retire_releases", "prune_releases", "scale_release"]
    prune = dict(fa.calls)["prune_releases"]
    assert prune["keep"] == ["web-r2", "web-r1"] and prune["retain_count"] == 7  # never the serving or warm one
    scale = dict(fa.calls)["scale_release"]
    assert scale == {"namespace": "dm-acme-shop-x", "release": "web-r1", "replicas": 0, "unless_serving_app": "web"}
    assert dict(fa.calls)["record_outcome"]["phase"] == "succeeded"
    assert dict(fa.calls)["apply_release"]["spec"]["image_pull_secret"] is None  # no Harbor: no pull secret


async def test_with_harbor_the_pull_secret_is_ensured_before_the_release_names_it(env: WorkflowEnvironment) -> None:
    fa = FakeActivities()
    result = await run(env, fa, deploy_input(image_pull_secret="deploy-mcp-registry"))
    assert result.phase == "succeeded"
    assert fa.names()[:4] == ["ensure_namespace", "ensure_pull_secret", "apply_release", "wait_ready"]
    assert dict(fa.calls)["ensure_pull_secret"] == {  # names only: the robot's secret stays in the activity
        "tenant": "acme", "project": "shop", "namespace": "dm-acme-shop-x", "secret": "deploy-mcp-registry"}
    assert dict(fa.calls)["apply_release"]["spec"]["image_pull_secret"] == "deploy-mcp-registry"


async def test_with_harbor_recreate_ensures_the_pull_secret_before_stopping_anything(
    env: WorkflowEnvironment,
) -> None:
    fa = FakeActivities()
    await run(env, fa, deploy_input(image_pull_secret="deploy-mcp-registry",
                                    config=AppConfig(port=8080, strategy="recreate")))
    assert fa.names()[:4] == ["ensure_namespace", "ensure_pull_secret", "retire_releases", "apply_release"]


async def test_harbor_refusing_the_credentials_fails_at_once_and_touches_no_release(env: WorkflowEnvironment) -> None:
    refused = ApplicationError("Harbor refused to read project acme ... Fix the settings harbor_username and "
                               "harbor_password", type="HarborAuth", non_retryable=True)
    fa = FakeActivities(registry_errors=[refused, refused])
    result = await run(env, fa, deploy_input(image_pull_secret="deploy-mcp-registry",
                                             config=AppConfig(port=8080, strategy="recreate")))
    assert result.phase == "failed" and result.failure is not None
    assert result.failure.reason == "HarborAuth" and "harbor_password" in result.failure.message
    assert result.failure.hint is not None and "operator" in result.failure.hint
    assert fa.names().count("ensure_pull_secret") == 1, "not retried"
    assert "retire_releases" not in fa.names() and "apply_release" not in fa.names()
    assert dict(fa.calls)["record_outcome"]["phase"] == "failed"


async def test_harbor_unreachable_is_retried(env: WorkflowEnvironment) -> None:
    down = ApplicationError("Harbor (https://harbor.example.com) could not be reached: ConnectError",
                            type="HarborUnavailable")
    fa = FakeActivities(registry_errors=[down, down])
    result = await run(env, fa, deploy_input(image_pull_secret="deploy-mcp-registry"))
    assert result.phase == "succeeded"
    assert fa.names().count("ensure_pull_secret") == 3 and "apply_release" in fa.names()


async def test_failed_release_is_scaled_to_zero_and_never_switched(env: WorkflowEnvironment) -> None:
    fa = FakeActivities(fail_wait=True)
    result = await run(env, fa, deploy_input())
    assert result.phase == "failed" and result.failure is not None
    assert result.failure.reason == "CrashLoop" and result.failure.evidence == ["log: boom"]
    assert "switch_service" not in fa.names()
    assert fa.names()[-2:] == ["scale_release", "record_outcome"]
    assert dict(fa.calls)["scale_release"]["release"] == "web-r2"


async def test_a_cleanup_the_cluster_refuses_still_records_the_failure(env: WorkflowEnvironment) -> None:
    """Scaling the failed release down is refused: the outcome is recorded all the same (the release must not
    stay `waiting` forever) and the workflow returns the release's own failure, not the cleanup's."""
    fa = FakeActivities(fail_wait=True, fail_scale=True)
    result = await run(env, fa, deploy_input())
    assert result.phase == "failed" and result.failure is not None and result.failure.reason == "CrashLoop"
    assert fa.names()[-2:] == ["scale_release", "record_outcome"]
    assert dict(fa.calls)["record_outcome"]["phase"] == "failed"


async def test_rollback_inside_the_window_is_only_the_switch(env: WorkflowEnvironment) -> None:
    fa = FakeActivities(warm=True, previous="web-r3")
    result = await run(env, fa, deploy_input(kind="rollback", seq=1, rollback_window_seconds=60))
    assert result.phase == "succeeded" and result.release == "web-r1"
    assert fa.names()[:2] == ["switch_if_ready", "record_outcome"]  # the readiness check and the switch: one step
    check = dict(fa.calls)["switch_if_ready"]
    assert check["replicas"] == 1 and check["switch"]["release"] == "web-r1"
    assert check["switch"]["deployment_id"] is not None, "the switch records its own phase"
    assert "apply_release" not in fa.names() and "ensure_namespace" not in fa.names()
    assert [c["phase"] for n, c in fa.calls if n == "set_phase"] == []


async def test_rollback_after_the_window_with_harbor_ensures_the_pull_secret_first(env: WorkflowEnvironment) -> None:
    warm = FakeActivities(warm=True, previous="web-r3")
    await run(env, warm, deploy_input(kind="rollback", seq=1, image_pull_secret="deploy-mcp-registry"))
    assert "ensure_pull_secret" not in warm.names(), "a warm target runs already: only the switch"
    cold = FakeActivities(warm=False)
    await run(env, cold, deploy_input(kind="rollback", seq=1, image_pull_secret="deploy-mcp-registry",
                                      rollback_window_seconds=60))
    assert cold.names()[:3] == ["switch_if_ready", "ensure_pull_secret", "apply_release"]


async def test_rollback_after_the_window_scales_the_target_up_first(env: WorkflowEnvironment) -> None:
    fa = FakeActivities(warm=False)
    await run(env, fa, deploy_input(kind="rollback", seq=1, rollback_window_seconds=60))
    assert fa.names()[:4] == ["switch_if_ready", "apply_release", "wait_ready", "switch_service"]
    assert dict(fa.calls)["switch_service"]["deployment_id"] is not None


async def test_superseded_runs_are_waited_for_before_anything_else(env: WorkflowEnvironment) -> None:
    fa = FakeActivities()
    await run(env, fa, deploy_input(wait_for=["deploy/acme/shop/web/r1"]))
    assert fa.names()[0] == "wait_workflows_closed"


async def test_cancel_during_the_wait_cleans_up_and_records_cancelled(env: WorkflowEnvironment) -> None:
    fa = FakeActivities()
    queue = f"q-{uuid.uuid4().hex[:6]}"
    slow = fa.all()

    @activity.defn(name="wait_ready")
    async def wait_forever(inp: Any) -> None:
        fa._rec("wait_ready", inp)
        fa.waiting.set()
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.05)

    acts = [a for a in slow if getattr(a, "__temporal_activity_definition").name != "wait_ready"] + [wait_forever]
    async with Worker(env.client, task_queue=queue, workflows=[DeployWorkflow], activities=acts):
        handle = await env.client.start_workflow(DeployWorkflow.run, deploy_input(), id=f"d-{uuid.uuid4()}",
                                                 task_queue=queue)
        await asyncio.wait_for(fa.waiting.wait(), 30)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    outcome = dict(fa.calls)["record_outcome"]
    assert outcome["phase"] == "cancelled" and outcome["serving"] is False
    assert "switch_service" not in fa.names()
    assert dict(fa.calls)["scale_release"]["release"] == "web-r2"
