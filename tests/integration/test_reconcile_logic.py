"""The reconciler's decisions on Temporal's time-skipping test server and a real (embedded) Postgres, with the
cluster played by an in-memory stand-in (what the API server stores for get/list/apply; no controllers):

- a pass over a recorded app with nothing in the cluster applies every object its serving release needs,
  records the observation and one audit row (principal `platform`) naming what it re-applied and why; a pass
  over an unchanged cluster repairs nothing; a Service selector moved by hand is moved back;
- while a release of the app is in progress (its workflow runs) or its row is locked (a release being
  recorded), a pass touches nothing; a release recorded in progress whose workflow is gone does not block;
- API errors: the failed pass is recorded, and the wait before the next one doubles up to the ceiling, then
  comes back to the period once the API answers;
- the loop of a deleted app ends; the sweeper starts the loop of every recorded app and reports (by setting,
  removes) objects with the platform's labels no recorded app owns;
- a verified custom domain's Certificate and Ingress are desired state (re-applied when deleted).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from cryptography.fernet import Fernet
from temporalio import activity, workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mcp_server.devenv.embedded import temporal_test_server
from mcp_server.store import PgStore
from tools.records import NewRelease
from workflows.activities.reconcile import ReconcileActivities, ReconcileConfig
from workflows.adapters.kube import KubeError
from workflows.domain.k8s_errors import classify_status
from workflows.domain.labels import LABEL_APP, LABEL_MANAGED_BY, LABEL_RELEASE, MANAGED_BY
from workflows.domain.names import app_hostname
from workflows.domain.phases import Phase
from workflows.domain.reconcile_contract import PassResult, ReconcileEnd, ReconcileInput, ReconcilePass, SweepInput
from workflows.domain.secretbox import SecretBox
from workflows.domain.specs import ClusterCaps
from workflows.domain.workflow_ids import reconcile_workflow_id
from workflows.reconcile import ReconcileSweepWorkflow, ReconcileWorkflow
from workflows.render.domains import domain_object_name, tls_secret_name

DIGEST = "sha256:" + "b" * 64
PERIOD = 30.0


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    e = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server()), data_converter=pydantic_data_converter)
    try:
        yield e
    finally:
        await e.shutdown()


class MemoryCluster:
    """What an API server stores, for the calls a pass makes: objects by (kind, namespace, name); apply merges
    the body over what is stored (as a forced server-side apply of this field manager does for its fields).
    `failing` makes every call fail as an unreachable API server would."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.applied: list[str] = []
        self.reads = 0
        self.failing = False
        self.refuse_kind: str | None = None  # apply of this kind is refused (403), as RBAC without the verb

    def _check(self) -> None:
        self.reads += 1
        if self.failing:
            raise KubeError(classify_status(None, "ConnectionRefusedError: connect call failed"), "read")

    async def caps(self) -> ClusterCaps:
        self._check()
        return ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False)

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self._check()
        if kind == "Secret":  # the install's RBAC (manifests/base/rbac.yaml): Secrets are listed, never read by name
            raise KubeError(classify_status(403, 'secrets "x" is forbidden: User cannot get resource "secrets"'),
                            f"read Secret/{name}")
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    async def list_objects(self, api_version: str, kind: str, namespace: str | None,
                           label_selector: str | None = None) -> list[dict[str, Any]]:
        self._check()
        key, _, value = (label_selector or "=").partition("=")
        return [copy.deepcopy(o) for (k, ns, _), o in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
                if k == kind and (namespace is None or ns == namespace)
                and (not key or (o["metadata"].get("labels") or {}).get(key) == value)]

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if obj["kind"] == self.refuse_kind:
            raise KubeError(classify_status(403, f"{obj['kind'].lower()}s is forbidden: User cannot patch"), "apply")
        md = obj["metadata"]
        self.objects[(obj["kind"], md.get("namespace"), md["name"])] = copy.deepcopy(obj)
        self.applied.append(f"{obj['kind']}/{md['name']}")
        return obj

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        self._check()
        return self.objects.pop((kind, namespace, name), None) is not None

    def put(self, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        self.objects[(obj["kind"], md.get("namespace"), md["name"])] = obj


async def record_app(store: PgStore, box: SecretBox, name: str = "web", serving: bool = True,
                     mounts: list[dict[str, Any]] | None = None) -> tuple[UUID, str, UUID]:
    """An app with one release recorded (and, `serving`, finished serving); (app id, namespace, deployment id)."""
    claim = await store.create_release(NewRelease(
        tenant="acme", project="shop", app=name, hostname=app_hostname(name, "shop", "acme", "apps.test"),
        create=True, config={"port": 8080, "env": {"COLOR": "blue"}, "mounts": mounts or []},
        source={"image": "r/web:1"},
        image="r/web", image_digest=DIGEST, created_by="alice", new_secret_names=["TOKEN"],
        new_secret_ciphertext=box.seal({"TOKEN": "s3cret"}), workflow_id_prefix=f"deploy/acme/shop/{name}/r"))
    if serving:
        await store.finish_deployment(claim.deployment.id, claim.app.id, Phase.SUCCEEDED, True, None)
    return claim.app.id, claim.app.namespace, claim.deployment.id


def activities(store: PgStore, cluster: MemoryCluster, box: SecretBox, env: WorkflowEnvironment,
               **config: Any) -> ReconcileActivities:
    return ReconcileActivities(cluster, store, box, ReconcileConfig(  # type: ignore[arg-type]
        period_seconds=PERIOD, max_backoff_seconds=240, **config), temporal=env.client)


async def until(check: Any, timeout: float = 20.0) -> Any:
    """Poll `check()` (real time; the test server skips workflow time only while nothing else runs)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def audit(store: PgStore) -> list[Any]:
    return [e for e in await store.list_audit("acme", "reconcile", None, None, 50)]


def loop(app_id: UUID) -> ReconcileInput:
    """A loop's input, its first pass at once (no start jitter: the test server's time only jumps while a
    client waits for a result)."""
    return ReconcileInput(app_id=app_id, start_jitter_seconds=0)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key().decode())


async def test_a_pass_applies_what_is_missing_records_it_and_leaves_a_converged_app_alone(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, ns, _ = await record_app(store, box)
    cluster = MemoryCluster()
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = activities(store, cluster, box, env)
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow], activities=acts.all()):
        await env.client.start_workflow(ReconcileWorkflow.run, loop(app_id),
                                        id=reconcile_workflow_id(app_id), task_queue=queue)
        first = await until(lambda: store.observations([app_id]))
        obs = first[app_id]
        assert obs.release == "web-r1" and not obs.serving_ready and not obs.service_points_at_serving
        assert f"Deployment/{ns}/web-r1 is missing" in obs.drift and f"Namespace/{ns} is missing" in obs.drift
        assert sorted(cluster.applied) == sorted([
            f"Namespace/{ns}", "ResourceQuota/guardrails", "LimitRange/guardrails",
            "NetworkPolicy/ingress-from-edge-and-project", "NetworkPolicy/egress-public-only", "Secret/web-r1-env",
            "Deployment/web-r1", "Service/web", "Ingress/web"])
        env_secret = cluster.objects[("Secret", ns, "web-r1-env")]
        assert set(env_secret["data"]) == {"COLOR", "TOKEN"}  # the pinned secrets version, decrypted
        dep = cluster.objects[("Deployment", ns, "web-r1")]
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"r/web@{DIGEST}"
        rows = await audit(store)
        assert len(rows) == 1 and rows[0].principal == "platform" and rows[0].transport == "worker"
        assert f"Deployment/{ns}/web-r1" in rows[0].k8s_refs and f"Service/{ns}/web" in rows[0].k8s_refs
        assert f"Deployment/{ns}/web-r1 is missing" in rows[0].arguments["drift"]
        assert rows[0].workflow_id == reconcile_workflow_id(app_id)

        # nothing changed: the next pass (one period later) re-applies nothing and writes no audit row
        cluster.applied.clear()
        reads = cluster.reads
        await env.sleep(PERIOD + 1)
        await until(lambda: asyncio.sleep(0, cluster.reads > reads + 10))
        second = await until(lambda: _newer(store, app_id, obs.observed_at))
        assert second.drift == [] and cluster.applied == [] and len(await audit(store)) == 1
        assert second.last_repair_at == obs.last_repair_at and second.last_repaired == obs.repaired

        # the Service pointed elsewhere by hand: moved back at the next pass, and said so
        cluster.objects[("Service", ns, "web")]["spec"]["selector"][LABEL_RELEASE] = "web-r9"
        await env.sleep(PERIOD + 1)
        third = await until(lambda: _newer(store, app_id, second.observed_at))
        assert third.drift == [f"Service/{ns}/web: spec.selector.{LABEL_RELEASE} is 'web-r9', want 'web-r1'"]
        assert third.repaired == [f"Service/{ns}/web"] and cluster.applied == ["Service/web"]
        assert cluster.objects[("Service", ns, "web")]["spec"]["selector"][LABEL_RELEASE] == "web-r1"
        assert len(await audit(store)) == 2


async def _newer(store: PgStore, app_id: UUID, than: datetime) -> Any:
    got = (await store.observations([app_id])).get(app_id)
    return got if got is not None and got.observed_at > than else None


@workflow.defn(name="deploy", sandboxed=False)  # defined in a test module, which the sandbox cannot re-import
class ReleaseInProgress:
    """Stands for a deploy workflow still rolling out: runs until cancelled."""

    @workflow.run
    async def run(self, inp: Any) -> None:
        await workflow.wait_condition(lambda: False)


async def test_a_release_in_progress_or_being_recorded_is_left_alone(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, ns, _ = await record_app(store, box)
    # a second release, recorded and not finished: its workflow runs
    claim = await store.create_release(NewRelease(
        tenant="acme", project="shop", app="web", hostname="web-shop-acme.apps.test", create=False,
        config={"port": 8080, "replicas": 2}, source={"image": "r/web:2"}, image="r/web", image_digest=DIGEST,
        created_by="alice", base_secrets_version=1, workflow_id_prefix="deploy/acme/shop/web/r"))
    cluster = MemoryCluster()
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = activities(store, cluster, box, env)
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow, ReleaseInProgress],
                      activities=acts.all()):
        rollout = await env.client.start_workflow("deploy", {}, id=claim.deployment.workflow_id, task_queue=queue)
        handle = await env.client.start_workflow(ReconcileWorkflow.run, loop(app_id),
                                                 id=reconcile_workflow_id(app_id), task_queue=queue)
        busy = await until(lambda: handle.query(ReconcileWorkflow.last_pass))
        assert busy.state == "busy" and claim.deployment.workflow_id in busy.reason
        assert cluster.applied == [] and await store.observations([app_id]) == {}

        # the release's workflow is gone (a Temporal that lost it), its row still says in progress: no lock
        await rollout.terminate("gone")
        await env.sleep(PERIOD + 1)
        obs = (await until(lambda: store.observations([app_id])))[app_id]
        assert obs.release == "web-r1" and f"Deployment/{ns}/web-r1" in obs.repaired

        # the app's row locked (a release being recorded right now): busy, nothing written
        cluster.applied.clear()
        async with store.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT id FROM apps WHERE id = %s FOR UPDATE", (app_id,))
            cluster.objects.clear()
            await env.sleep(PERIOD + 1)
            locked = await until(lambda: _busy(handle))
            assert "being recorded" in locked.reason and cluster.applied == []


async def _busy(handle: Any) -> Any:
    last = await handle.query(ReconcileWorkflow.last_pass)
    return last if last is not None and last.state == "busy" and "recorded" in last.reason else None


async def test_api_errors_back_off_and_the_failed_pass_is_recorded(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, ns, _ = await record_app(store, box)
    cluster = MemoryCluster()
    cluster.failing = True
    passes: list[datetime] = []
    queue = f"q-{uuid.uuid4().hex[:6]}"
    real = activities(store, cluster, box, env)

    @activity.defn(name="reconcile_app")
    async def timed(inp: ReconcilePass) -> PassResult:
        if activity.info().attempt == 1:  # the first attempt of each pass (the activity retries twice)
            passes.append(await env.get_current_time())
        return await real.reconcile_app(inp)

    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow], activities=[timed]):
        handle = await env.client.start_workflow(ReconcileWorkflow.run, loop(app_id),
                                                 id=reconcile_workflow_id(app_id), task_queue=queue)
        obs = (await until(lambda: store.observations([app_id])))[app_id]
        assert obs.error is not None and "connect call failed" in obs.error and obs.release == "web-r1"
        await until(lambda: _failures(handle, 1))
        for n in (2, 3, 4):
            await env.sleep(PERIOD * 2 ** (n - 1) + 10)
            await until(lambda n=n: _failures(handle, n))
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(passes)]
        # each gap: the wait (60, 120, 240) plus the failed pass's own retries (1 s + 2 s)
        assert [round(g / 10) * 10 for g in gaps[:3]] == [60, 120, 240], gaps
        cluster.failing = False
        # no pass succeeded yet, so the loop's own ceiling (300 s) applies, not the worker's setting (240)
        await env.sleep(300 + 10)
        await until(lambda: _failures(handle, 0))
        fixed = (await store.observations([app_id]))[app_id]
        assert fixed.error is None and f"Deployment/{ns}/web-r1" in fixed.last_repaired
        count = len(passes)
        await env.sleep(PERIOD + 1)
        await until(lambda: asyncio.sleep(0, len(passes) > count))  # back to one pass a period


async def _failures(handle: Any, n: int) -> Any:
    got = await handle.query(ReconcileWorkflow.failures)
    return True if got == n else None


async def test_a_pass_refused_midway_records_and_audits_what_it_re_applied(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    app_id, ns, _ = await record_app(store, box)
    cluster = MemoryCluster()
    cluster.refuse_kind = "Deployment"
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = activities(store, cluster, box, env)
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow], activities=acts.all()):
        handle = await env.client.start_workflow(ReconcileWorkflow.run, loop(app_id), id=reconcile_workflow_id(app_id),
                                                 task_queue=queue)
        obs = (await until(lambda: store.observations([app_id])))[app_id]
        await until(lambda: _failures(handle, 1))  # a 403 is not retried: one attempt, then the loop's back-off
    assert obs.error is not None and "forbidden" in obs.error
    assert f"Namespace/{ns}" in obs.repaired and f"Deployment/{ns}/web-r1" not in obs.repaired
    assert f"Deployment/{ns}/web-r1 is missing" in obs.drift
    rows = await audit(store)
    assert len(rows) == 1 and rows[0].outcome == "error" and "forbidden" in str(rows[0].error)
    assert rows[0].k8s_refs == obs.repaired


async def test_the_loop_of_a_deleted_app_ends(env: WorkflowEnvironment, store: PgStore, box: SecretBox) -> None:
    app_id, _, _ = await record_app(store, box)
    await store.mark_app_deleting(app_id)
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = activities(store, MemoryCluster(), box, env)
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow], activities=acts.all()):
        end: ReconcileEnd = await env.client.execute_workflow(
            ReconcileWorkflow.run, loop(app_id), id=reconcile_workflow_id(app_id), task_queue=queue)
    assert end.reason == "the app is deleted"


def _labelled(kind: str, ns: str, name: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1" if kind == "Deployment" else "v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns, "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_APP: app,
                                                                   "deploy-mcp/tenant": "acme"}}}


@pytest.mark.parametrize("remove", [False, True])
async def test_the_sweeper_starts_every_loop_and_reports_orphans(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox, remove: bool,
) -> None:
    web, ns, _ = await record_app(store, box, "web")
    api, _, _ = await record_app(store, box, "api", serving=False)  # no release serving yet: a loop all the same
    cluster = MemoryCluster()
    cluster.put(_labelled("Deployment", ns, "web-r1", "web"))
    cluster.put(_labelled("Deployment", ns, "old-r4", "old"))  # an app no record owns
    cluster.put(_labelled("Service", "dm-elsewhere", "cache", "cache"))
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = activities(store, cluster, box, env, remove_orphans=remove)
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow, ReconcileSweepWorkflow],
                      activities=acts.all()):
        sweep = await env.client.start_workflow(ReconcileSweepWorkflow.run, SweepInput(), id=f"sweep-{queue}",
                                                task_queue=queue)
        result = await until(lambda: sweep.query(ReconcileSweepWorkflow.last_sweep))
        assert result.apps == 2 and result.started == 2
        assert result.orphans == ["Deployment/" + ns + "/old-r4", "Service/dm-elsewhere/cache"]
        for app_id in (web, api):
            desc = await env.client.get_workflow_handle(reconcile_workflow_id(app_id)).describe()
            assert desc.status == WorkflowExecutionStatus.RUNNING
        removed = [e for e in await store.list_audit("acme", "reconcile-orphans", None, None, 10)]
        if remove:
            assert result.removed == result.orphans and ("Deployment", ns, "old-r4") not in cluster.objects
            assert sorted(r.k8s_refs[0] for r in removed) == result.orphans
            assert all(r.principal == "platform" for r in removed)
        else:
            assert result.removed == [] and ("Deployment", ns, "old-r4") in cluster.objects and removed == []
        # the next sweep finds both loops running: none started again
        await env.sleep(61)
        again = await until(lambda: _sweep_after(sweep, result))
        assert again.started == 0


async def _sweep_after(sweep: Any, first: Any) -> Any:
    got = await sweep.query(ReconcileSweepWorkflow.last_sweep)
    return got if got is not None and got is not first and got.started == 0 else None


async def test_a_lost_claim_comes_back_from_the_volumes_latest_backup_imported_by_its_handle(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    vol, _ = await store.create_volume("acme", "shop", "store", 1, "fast", "single_node", "vol-store")
    for name, handle in (("store-bak-1", "bak://pvc-1/store-bak-1"), ("store-bak-2", "bak://pvc-1/store-bak-2"),
                         ("store-snap-3", None)):
        await store.record_snapshot(vol.id, "snapshot" if handle is None else "backup", name, "alice")
        await store.finish_snapshot(vol.id, name, "ready", handle=handle)
    app_id, ns, _ = await record_app(store, box, mounts=[
        {"volume": "store", "claim": "vol-store", "mount_path": "/data"}])
    cluster = MemoryCluster()
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = activities(store, cluster, box, env)
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow], activities=acts.all()):
        await env.client.start_workflow(ReconcileWorkflow.run, loop(app_id),
                                        id=reconcile_workflow_id(app_id), task_queue=queue)
        obs = (await until(lambda: store.observations([app_id])))[app_id]
    # the newest backup (not the newer in-cluster snapshot, which a rebuilt cluster does not have)
    content = cluster.objects[("VolumeSnapshotContent", None, f"import-{ns}-store-bak-2")]
    assert content["spec"]["source"] == {"snapshotHandle": "bak://pvc-1/store-bak-2"}
    assert content["spec"]["deletionPolicy"] == "Retain"  # deleting the import never deletes the backup
    assert content["spec"]["volumeSnapshotRef"] == {"name": "store-bak-2", "namespace": ns}
    vs = cluster.objects[("VolumeSnapshot", ns, "store-bak-2")]
    assert vs["spec"]["source"] == {"volumeSnapshotContentName": f"import-{ns}-store-bak-2"}
    pvc = cluster.objects[("PersistentVolumeClaim", ns, "vol-store")]
    assert pvc["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                                         "name": "store-bak-2"}
    assert any(d.startswith(f"PersistentVolumeClaim/{ns}/vol-store is missing (re-created from backup store-bak-2")
               for d in obs.drift), obs.drift
    rows = await audit(store)
    assert f"VolumeSnapshotContent/import-{ns}-store-bak-2" in rows[0].k8s_refs


async def test_a_lost_claim_of_a_volume_never_backed_up_comes_back_empty_and_says_so(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    await store.create_volume("acme", "shop", "scratch", 1, "fast", "single_node", "vol-scratch")
    app_id, ns, _ = await record_app(store, box, mounts=[
        {"volume": "scratch", "claim": "vol-scratch", "mount_path": "/data"}])
    cluster = MemoryCluster()
    queue = f"q-{uuid.uuid4().hex[:6]}"
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow],
                      activities=activities(store, cluster, box, env).all()):
        await env.client.start_workflow(ReconcileWorkflow.run, loop(app_id),
                                        id=reconcile_workflow_id(app_id), task_queue=queue)
        obs = (await until(lambda: store.observations([app_id])))[app_id]
    assert "dataSource" not in cluster.objects[("PersistentVolumeClaim", ns, "vol-scratch")]["spec"]
    assert f"PersistentVolumeClaim/{ns}/vol-scratch is missing (re-created empty: no backup of volume scratch " \
           "is recorded)" in obs.drift
    assert not any(k[0] == "VolumeSnapshotContent" for k in cluster.objects)
async def test_an_attached_databases_objects_are_part_of_the_apps_desired_state(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    """A ready database attached to the app: a pass applies its Secret, claim, policy, Service, PDB and
    StatefulSet when missing, and puts back its StatefulSet's changed image; a database in a rotation is the
    database workflow's and left alone. The password reaches only the database's Secret."""
    app_id, ns, _ = await record_app(store, box)
    db, created = await store.create_database(
        "acme", "shop", "orders", engine="statefulset", version=15, size_gib=5, class_="fast",
        resources={"memory_mib": 512}, ciphertext=box.seal({"password": "db-pass-1"}), created_by="alice")
    assert created
    await store.set_database_app(db.id, app_id)
    await store.set_database_status(db.id, "ready")
    cluster = MemoryCluster()
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = activities(store, cluster, box, env, database_images={15: "r/postgres:15"})
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow], activities=acts.all()):
        await env.client.start_workflow(ReconcileWorkflow.run, loop(app_id),
                                        id=reconcile_workflow_id(app_id), task_queue=queue)
        first = (await until(lambda: store.observations([app_id])))[app_id]
        for kind, name in (("Secret", "postgres--orders"), ("PersistentVolumeClaim", "postgres--orders-data"),
                           ("NetworkPolicy", "postgres--orders"), ("Service", "postgres--orders"),
                           ("PodDisruptionBudget", "postgres--orders"), ("StatefulSet", "postgres--orders")):
            assert (kind, ns, name) in cluster.objects, (kind, name)
        policy = cluster.objects[("NetworkPolicy", ns, "postgres--orders")]
        assert {"podSelector": {"matchLabels": {"deploy-mcp/app": "web"}}} in policy["spec"]["ingress"][0]["from"]
        secret_text = str(cluster.objects[("Secret", ns, "postgres--orders")])
        assert all("db-pass-1" not in str(o) for o in cluster.objects.values() if str(o) != secret_text)

        sts = cluster.objects[("StatefulSet", ns, "postgres--orders")]
        sts["spec"]["template"]["spec"]["containers"][0]["image"] = "evil/postgres:latest"
        cluster.applied.clear()
        await env.sleep(PERIOD + 1)
        second = await until(lambda: _newer(store, app_id, first.observed_at))
        assert f"StatefulSet/{ns}/postgres--orders" in second.repaired
        image = cluster.objects[("StatefulSet", ns, "postgres--orders")]["spec"]["template"]["spec"][
            "containers"][0]["image"]
        assert image == "r/postgres:15"

        # a rotation pending: the database workflow's business, not the reconciler's
        await store.set_pending_password(db.id, box.seal({"password": "db-pass-2"}))
        del cluster.objects[("StatefulSet", ns, "postgres--orders")]
        await env.sleep(PERIOD + 1)
        await until(lambda: _newer(store, app_id, second.observed_at))
        assert ("StatefulSet", ns, "postgres--orders") not in cluster.objects


async def test_a_verified_custom_domain_is_desired_state_its_certificate_re_applied(
    env: WorkflowEnvironment, store: PgStore, box: SecretBox,
) -> None:
    """A verified custom domain's Certificate (cert-manager.io/v1, HTTP-01 issuer) and Ingress are applied by a
    pass and re-applied when deleted by hand; an unverified one is not desired yet."""
    app_id, ns, _ = await record_app(store, box)
    verified, _ = await store.add_domain(app_id, "shop.example.test", "tok-1", datetime.now().astimezone(),
                                         tls_secret_name("web", "shop.example.test"))
    await store.set_domain_status(verified.id, "tok-1", status="active", verified_at=datetime.now().astimezone())
    await store.add_domain(app_id, "pending.example.test", "tok-2", datetime.now().astimezone(), "x-tls")
    cluster = MemoryCluster()
    queue = f"q-{uuid.uuid4().hex[:6]}"
    acts = activities(store, cluster, box, env, domain_issuer="le-http01")
    name = domain_object_name("web", "shop.example.test")
    async with Worker(env.client, task_queue=queue, workflows=[ReconcileWorkflow], activities=acts.all()):
        await env.client.start_workflow(ReconcileWorkflow.run, loop(app_id),
                                        id=reconcile_workflow_id(app_id), task_queue=queue)
        obs = (await until(lambda: store.observations([app_id])))[app_id]
        cert = cluster.objects[("Certificate", ns, name)]
        assert cert["spec"]["dnsNames"] == ["shop.example.test"] and cert["spec"]["issuerRef"]["name"] == "le-http01"
        assert cluster.objects[("Ingress", ns, name)]["spec"]["rules"][0]["host"] == "shop.example.test"
        assert not [k for k in cluster.objects if k[0] == "Certificate" and k[2] != name]  # the pending one: none

        del cluster.objects[("Certificate", ns, name)]
        await env.sleep(PERIOD + 1)
        again = await until(lambda: _newer(store, app_id, obs.observed_at))
        assert f"Certificate/{ns}/{name} is missing" in again.drift
        assert ("Certificate", ns, name) in cluster.objects
        await env.client.get_workflow_handle(reconcile_workflow_id(app_id)).terminate()
