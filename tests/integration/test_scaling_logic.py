"""Scaling's decisions on Temporal's time-skipping test server and a real (embedded) Postgres, the cluster
played by the reconciler tests' in-memory stand-in (what the API server stores; no controllers):

- `scale-app` changes the serving release in place (its `scale` subresource; no new release, other releases
  untouched), records the count (the app's `replicas` too, which the next deploy starts from), and the
  reconciler then holds the serving release to it;
- autoscaling: the HPA (v2beta2, as the 1.20 testbed serves) targets the serving release, the reconciler leaves
  the autoscaler's count alone, retargets an HPA left on another release and reports "no metrics API";
  neither argument: the HPA goes and the count it reached stays;
- refusals: a release in progress, a single_node volume;
- a release becoming serving carries its count into a fixed scale;
- the deploy workflow (activities replaced): an autoscaled release starts at the serving count and the
  autoscaler is retargeted right after the Service switch; a failed retarget does not fail the release; a
  rollback checks its warm target at the serving count.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from cryptography.fernet import Fernet
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from mcp_server.devenv.embedded import temporal_test_server
from mcp_server.store import PgStore
from tests.integration.test_deploy_workflow_logic import FakeActivities, deploy_input
from tests.integration.test_deploy_workflow_logic import run as run_deploy
from tests.integration.test_reconcile_logic import MemoryCluster, ReleaseInProgress, record_app
from tools.records import NewRelease
from workflows.activities.reconcile import ReconcileActivities, ReconcileConfig
from workflows.activities.scaling import ScaleActivities
from workflows.domain.labels import LABEL_APP, LABEL_RELEASE
from workflows.domain.phases import Phase
from workflows.domain.reconcile_contract import PassResult, ReconcilePass
from workflows.domain.scaling import NO_METRICS, AppScale, Autoscale
from workflows.domain.scaling_contract import ScaleInput, ScaleResult
from workflows.domain.secretbox import SecretBox
from workflows.domain.specs import AppConfig, ClusterCaps
from workflows.scale import ScaleWorkflow


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    e = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server()), data_converter=pydantic_data_converter)
    try:
        yield e
    finally:
        await e.shutdown()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key().decode())


class ScalingCluster(MemoryCluster):
    """The stand-in with the `scale` subresource, the 1.20 testbed's versions and no metrics API."""

    def __init__(self) -> None:
        super().__init__()
        self.scaled: list[tuple[str, int]] = []

    async def caps(self) -> ClusterCaps:
        self._check()
        return ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False,
                           hpa_api="autoscaling/v2beta2")

    async def scale(self, namespace: str, deployment: str, replicas: int) -> dict[str, Any]:
        self._check()
        obj = self.objects[("Deployment", namespace, deployment)]
        obj["spec"]["replicas"] = replicas
        self.scaled.append((deployment, replicas))
        return obj

    async def metrics_api_served(self) -> bool:
        return False

    def deployment(self, ns: str, name: str, replicas: int = 1) -> None:
        self.put({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
            "name": name, "namespace": ns, "labels": {LABEL_APP: "web", LABEL_RELEASE: name}},
            "spec": {"replicas": replicas}})

    def replicas(self, ns: str, name: str) -> int:
        return int(self.objects[("Deployment", ns, name)]["spec"]["replicas"])


async def scale(env: WorkflowEnvironment, store: PgStore, cluster: ScalingCluster, inp: ScaleInput) -> ScaleResult:
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = ScaleActivities(cluster, store, temporal=env.client)  # type: ignore[arg-type]
    async with Worker(env.client, task_queue=queue, workflows=[ScaleWorkflow], activities=acts.all()):
        result: ScaleResult = await env.client.execute_workflow(
            ScaleWorkflow.run, inp, id=f"scale/{inp.app_id}/{uuid.uuid4().hex[:6]}", task_queue=queue)
    return result


async def reconcile(store: PgStore, cluster: ScalingCluster, box: SecretBox, app_id: UUID) -> PassResult:
    acts = ReconcileActivities(cluster, store, box, ReconcileConfig())  # type: ignore[arg-type]
    result: PassResult = await ActivityEnvironment().run(acts.reconcile_app, ReconcilePass(app_id=app_id))
    return result


async def _app(store: PgStore, app_id: UUID) -> Any:
    return await store.get_app_by_id(app_id)


async def test_scale_in_place_records_the_count_and_the_reconciler_holds_it(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, ns, _ = await record_app(store, box)
    cluster = ScalingCluster()
    await reconcile(store, cluster, box, app_id)  # the app's objects, as a first pass makes them
    cluster.deployment(ns, "web-r0", replicas=1)  # another release of the app, warm
    result = await scale(env, store, cluster, ScaleInput(app_id=app_id, replicas=3))
    assert result.outcome == "scaled" and result.release == "web-r1" and result.replicas == 3
    assert cluster.scaled == [("web-r1", 3)] and cluster.replicas(ns, "web-r0") == 1  # the others untouched
    app = await _app(store, app_id)
    assert app.scale == {"replicas": 3} and app.spec["replicas"] == 3  # the next deploy starts from it
    assert len(await store.list_deployments(app_id, limit=10)) == 1  # no new release

    cluster.objects[("Deployment", ns, "web-r1")]["spec"]["replicas"] = 1  # scaled down by hand
    passed = await reconcile(store, cluster, box, app_id)
    assert any("Deployment" in d and "spec.replicas is 1, want 3" in d for d in passed.drift), passed.drift
    assert cluster.replicas(ns, "web-r1") == 3
    assert (await store.observations([app_id]))[app_id].desired_replicas == 3
    assert ("PodDisruptionBudget", ns, "web-r1") in cluster.objects  # several replicas: drains take one at a time


async def test_autoscaling_follows_the_serving_release_and_is_left_its_count(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, ns, _ = await record_app(store, box)
    cluster = ScalingCluster()
    await reconcile(store, cluster, box, app_id)
    auto = Autoscale(min=2, max=5, cpu_percent=60)
    result = await scale(env, store, cluster, ScaleInput(app_id=app_id, autoscale=auto))
    assert result.outcome == "scaled" and result.replicas == 2  # 1 was below the floor
    hpa = cluster.objects[("HorizontalPodAutoscaler", ns, "web")]
    assert hpa["apiVersion"] == "autoscaling/v2beta2" and hpa["spec"]["scaleTargetRef"]["name"] == "web-r1"
    assert (await _app(store, app_id)).scale == {"autoscale": {"min": 2, "max": 5, "cpu_percent": 60}}

    cluster.objects[("Deployment", ns, "web-r1")]["spec"]["replicas"] = 4  # the autoscaler's choice
    hpa["spec"]["scaleTargetRef"]["name"] = "web-r0"  # as a deploy that could not retarget would leave it
    passed = await reconcile(store, cluster, box, app_id)
    assert cluster.replicas(ns, "web-r1") == 4, "the reconciler never fights the autoscaler"
    assert cluster.objects[("HorizontalPodAutoscaler", ns, "web")]["spec"]["scaleTargetRef"]["name"] == "web-r1"
    assert any(d.startswith(f"HorizontalPodAutoscaler/{ns}/web: spec.scaleTargetRef.name") for d in passed.drift)
    obs = (await store.observations([app_id]))[app_id]
    assert obs.desired_replicas == 4 and obs.autoscaler is not None
    assert obs.autoscaler["conditions"] == [NO_METRICS] and obs.autoscaler["target"] == "web-r0"  # as found

    stopped = await scale(env, store, cluster, ScaleInput(app_id=app_id))  # neither: stop autoscaling
    assert stopped.outcome == "scaled" and stopped.replicas == 4 and stopped.refs[-1].endswith("(deleted)")
    assert ("HorizontalPodAutoscaler", ns, "web") not in cluster.objects
    assert (await _app(store, app_id)).scale == {"replicas": 4}


async def test_an_hpa_left_on_an_app_not_autoscaled_is_deleted_by_the_reconciler(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, ns, _ = await record_app(store, box)
    cluster = ScalingCluster()
    await reconcile(store, cluster, box, app_id)
    await scale(env, store, cluster, ScaleInput(app_id=app_id, autoscale=Autoscale(max=3)))
    await store.record_scale(app_id, AppScale(replicas=1))  # as a scale(replicas=1) whose delete was lost
    passed = await reconcile(store, cluster, box, app_id)
    assert f"HorizontalPodAutoscaler/{ns}/web: the app is not autoscaled" in passed.drift
    assert ("HorizontalPodAutoscaler", ns, "web") not in cluster.objects


async def test_refused_while_a_release_runs_and_for_a_single_writer_volume(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, _, _ = await record_app(store, box)
    cluster = ScalingCluster()
    await reconcile(store, cluster, box, app_id)
    claim = await store.create_release(NewRelease(  # a second release, recorded and rolling out
        tenant="acme", project="shop", app="web", hostname="web-shop-acme.apps.test", create=False,
        config={"port": 8080, "env": {"COLOR": "green"}}, source={"image": "r/web:2"}, image="r/web",
        image_digest="sha256:" + "c" * 64, created_by="alice", workflow_id_prefix="deploy/acme/shop/web/r"))
    queue = f"q-{uuid.uuid4().hex[:6]}"
    async with Worker(env.client, task_queue=queue, workflows=[ReleaseInProgress]):
        rollout = await env.client.start_workflow("deploy", {}, id=claim.deployment.workflow_id, task_queue=queue)
        refused = await scale(env, store, cluster, ScaleInput(app_id=app_id, replicas=2))
        assert refused.outcome == "refused" and refused.reason is not None
        assert claim.deployment.workflow_id in refused.reason and refused.fix is not None
        assert cluster.scaled == [] and (await _app(store, app_id)).scale is None
        with contextlib.suppress(RPCError):  # the test server may have timed it out while skipping time
            await rollout.terminate("gone")  # a release whose workflow is gone does not hold the app
        assert (await scale(env, store, cluster, ScaleInput(app_id=app_id, replicas=2))).outcome == "scaled"
    await store.finish_deployment(claim.deployment.id, app_id, Phase.FAILED, False, None)

    single = await record_app(store, box, name="db")
    async with store._transaction() as conn:  # the serving release mounts a single_node volume
        await conn.execute("UPDATE deployments SET config = config || %s::jsonb WHERE id = %s", (
            '{"strategy": "recreate", "mounts": [{"volume": "data", "claim": "data-x", "mount_path": "/d", '
            '"access": "single_node"}]}', single[2]))
    cluster.deployment(single[1], "db-r1")
    no = await scale(env, store, cluster, ScaleInput(app_id=single[0], replicas=2))
    assert no.outcome == "refused" and no.reason is not None and "single_node volume 'data'" in no.reason
    assert no.fix is not None and "access: shared" in no.fix
    assert cluster.replicas(single[1], "db-r1") == 1 and (await _app(store, single[0])).scale is None


async def test_a_release_that_becomes_serving_carries_its_count_into_a_fixed_scale(
    store: PgStore, box: SecretBox,
) -> None:
    app_id, _, _ = await record_app(store, box)
    await store.record_scale(app_id, AppScale(replicas=3))
    claim = await store.create_release(NewRelease(
        tenant="acme", project="shop", app="web", hostname="web-shop-acme.apps.test", create=False,
        config={"port": 8080, "replicas": 5}, source={"image": "r/web:2"}, image="r/web",
        image_digest="sha256:" + "d" * 64, created_by="alice", workflow_id_prefix="deploy/acme/shop/web/r"))
    await store.finish_deployment(claim.deployment.id, app_id, Phase.SUCCEEDED, True, None)
    assert (await _app(store, app_id)).scale == {"replicas": 5}
    await store.record_scale(app_id, AppScale(autoscale=Autoscale(max=4)))
    claim = await store.create_release(NewRelease(
        tenant="acme", project="shop", app="web", hostname="web-shop-acme.apps.test", create=False,
        config={"port": 8080, "replicas": 1}, source={"image": "r/web:3"}, image="r/web",
        image_digest="sha256:" + "e" * 64, created_by="alice", workflow_id_prefix="deploy/acme/shop/web/r"))
    await store.finish_deployment(claim.deployment.id, app_id, Phase.SUCCEEDED, True, None)
    assert (await _app(store, app_id)).scale == {"autoscale": {"min": 1, "max": 4, "cpu_percent": 70}}


# --- the deploy workflow, activities replaced --------------------------------------------------------------


class AutoscaleActivities(FakeActivities):
    def __init__(self, start: int = 4, fail_retarget: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.start, self.fail_retarget = start, fail_retarget

    def all(self) -> list[Any]:
        fa = self

        @activity.defn(name="start_replicas")
        async def start_replicas(inp: Any) -> int:
            fa._rec("start_replicas", inp)
            return fa.start

        @activity.defn(name="retarget_autoscaler")
        async def retarget_autoscaler(inp: Any) -> str:
            fa._rec("retarget_autoscaler", inp)
            if fa.fail_retarget:
                raise ApplicationError("horizontalpodautoscalers is forbidden", type="K8sForbidden",
                                       non_retryable=True)
            return "HorizontalPodAutoscaler/ns/web"

        return [*super().all(), start_replicas, retarget_autoscaler]


AUTO = Autoscale(min=2, max=8, cpu_percent=60)


async def test_an_autoscaled_release_starts_at_the_serving_count_and_the_hpa_follows_the_switch(
    env: WorkflowEnvironment,
) -> None:
    fa = AutoscaleActivities(start=4)
    result = await run_deploy(env, fa, deploy_input(autoscale=AUTO, config=AppConfig(port=8080, replicas=1)))
    assert result.phase == "succeeded"
    names = fa.names()
    assert names[:7] == ["start_replicas", "ensure_namespace", "apply_release", "wait_ready", "switch_service",
                         "retarget_autoscaler", "record_outcome"]
    calls = dict(fa.calls)
    assert calls["apply_release"]["spec"]["config"]["replicas"] == 4 and calls["wait_ready"]["replicas"] == 4
    assert calls["retarget_autoscaler"]["release"] == "web-r2"
    assert calls["retarget_autoscaler"]["autoscale"] == {"min": 2, "max": 8, "cpu_percent": 60,
                                                         "memory_percent": None}


async def test_a_failed_retarget_leaves_the_release_succeeded(env: WorkflowEnvironment) -> None:
    fa = AutoscaleActivities(fail_retarget=True)
    result = await run_deploy(env, fa, deploy_input(autoscale=AUTO))
    assert result.phase == "succeeded" and dict(fa.calls)["record_outcome"]["phase"] == "succeeded"
    assert fa.names().count("retarget_autoscaler") == 1  # non-retryable: the reconciler retargets it later


async def test_a_rollback_checks_its_warm_target_at_the_serving_count(env: WorkflowEnvironment) -> None:
    fa = AutoscaleActivities(start=5, warm=True)
    result = await run_deploy(env, fa, deploy_input(kind="rollback", seq=1, autoscale=AUTO))
    assert result.phase == "succeeded"
    assert dict(fa.calls)["switch_if_ready"]["replicas"] == 5
    assert fa.names()[:3] == ["start_replicas", "switch_if_ready", "retarget_autoscaler"]
    cold = AutoscaleActivities(start=5, warm=False)
    await run_deploy(env, cold, deploy_input(kind="rollback", seq=1, autoscale=AUTO))
    assert dict(cold.calls)["apply_release"]["spec"]["config"]["replicas"] == 5  # scaled up to the count first


async def test_without_autoscaling_nothing_changes(env: WorkflowEnvironment) -> None:
    fa = AutoscaleActivities()
    await run_deploy(env, fa, deploy_input(config=AppConfig(port=8080, replicas=3)))
    assert "start_replicas" not in fa.names() and "retarget_autoscaler" not in fa.names()
    assert dict(fa.calls)["wait_ready"]["replicas"] == 3


async def test_a_cluster_refusal_is_reported_and_nothing_is_recorded(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, ns, _ = await record_app(store, box)
    cluster = ScalingCluster()
    await reconcile(store, cluster, box, app_id)
    cluster.refuse_kind = "HorizontalPodAutoscaler"  # RBAC without the autoscaling rule: a 403
    failed = await scale(env, store, cluster, ScaleInput(app_id=app_id, autoscale=Autoscale(min=2, max=3)))
    assert failed.outcome == "failed" and failed.reason is not None and "forbidden" in failed.reason
    assert (await _app(store, app_id)).scale is None  # the record shares the cluster change's transaction
    await reconcile(store, cluster, box, app_id)
    assert cluster.replicas(ns, "web-r1") == 1  # the count the failed scale had set is put back
