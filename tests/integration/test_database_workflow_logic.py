"""The database workflow with its real activities, on Temporal's time-skipping test server, against an in-memory API
server (objects by kind and name, a controller that makes StatefulSets Ready and finishes Jobs) and an in-memory
store: the objects a create applies and waits for, the engine chosen from the served APIs, a rotation that changes
the Secrets and the stored password only after its Job succeeded (and leaves everything when the Job fails), a dump
recorded as failed when its Job fails, a delete that keeps the claim when asked, and on 1.20 removes the schedule in
the batch/v1beta1 it was applied in. No password ever enters the workflow's history. And the database-observe
workflow: disk from the kubelet Summary, connections from a query Job (gone after), `unknown` with the reason when
either cannot be read."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mcp_server.devenv.embedded import temporal_test_server
from workflows.activities import database as database_activities
from workflows.activities import database_observe
from workflows.activities.database import DatabaseActivities, DatabaseConfig
from workflows.activities.database_observe import DatabaseObserveActivities
from workflows.adapters.kube import Kube, KubeError
from workflows.database import DatabaseObserveWorkflow, DatabaseWorkflow
from workflows.domain.database_contract import DatabaseOp, DatabaseResult
from workflows.domain.database_observation import DatabaseObservation, ObserveInput
from workflows.domain.database_spec import DatabaseSpec
from workflows.domain.k8s_errors import classify_status
from workflows.domain.secretbox import SecretBox
from workflows.domain.specs import ClusterCaps

OLD, NEW = "old-password-1", "new-password-2"


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    e = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(temporal_test_server()), data_converter=pydantic_data_converter)
    try:
        yield e
    finally:
        await e.shutdown()


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database_activities, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(database_observe, "POLL_SECONDS", 0.01)


class FakeApi:
    """Objects by (kind, namespace, name). A StatefulSet becomes Ready on its second read; a Job succeeds (or
    fails, for the kinds in `failing_jobs`) on its second read."""

    def __init__(self, served: set[str] | None = None, failing_jobs: tuple[str, ...] = (),
                 missing_namespace: str | None = None, minor: int = 30) -> None:
        self.missing_namespace = missing_namespace
        self.minor = minor
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.reads: dict[tuple[str, str | None, str], int] = {}
        self.log: list[str] = []
        self.served = served or {"v1", "apps/v1", "batch/v1"}
        self.failing_jobs = failing_jobs

    async def caps(self) -> ClusterCaps:
        return ClusterCaps(minor=self.minor, pdb_api="policy/v1" if self.minor >= 21 else "policy/v1beta1")

    async def served_api_versions(self) -> set[str]:
        return self.served

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        md = obj["metadata"]
        if md.get("namespace") and md.get("namespace") == self.missing_namespace:
            raise KubeError(classify_status(404, f'namespaces "{self.missing_namespace}" not found'), "apply")
        self.objects[(obj["kind"], md.get("namespace"), md["name"])] = obj
        self.log.append(f"apply {obj['kind']}/{md['name']}")
        return obj

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (kind, namespace, name)
        obj = self.objects.get(key)
        if obj is None:
            return None
        self.reads[key] = self.reads.get(key, 0) + 1
        if self.reads[key] >= 2:
            if kind == "StatefulSet":
                return {**obj, "status": {"readyReplicas": 1, "observedGeneration": 1}}
            if kind == "Cluster":
                return {**obj, "status": {"readyInstances": 1}}
            if kind == "Job":
                if any(f in name for f in self.failing_jobs):
                    return {**obj, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
                return {**obj, "status": {"succeeded": 1}}
        return obj

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str, **_: Any) -> bool:
        """Found only under the version it was applied in (as a version the server does not serve is 404)."""
        self.log.append(f"delete {kind}/{name}")
        obj = self.objects.get((kind, namespace, name))
        if obj is None or obj["apiVersion"] != api_version:
            return False
        del self.objects[(kind, namespace, name)]
        return True

    def secret_password(self, namespace: str, name: str) -> str:
        return base64.b64decode(self.objects[("Secret", namespace, name)]["data"]["password"]).decode()


@dataclass
class Row:
    ciphertext: bytes
    pending_ciphertext: bytes | None = None
    status: str = "creating"
    reason: str | None = None
    engine: str = "statefulset"
    deleted: bool = False


@dataclass
class FakeStore:
    rows: dict[uuid.UUID, Row] = field(default_factory=dict)
    backups: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    async def get_database_by_id(self, database_id: uuid.UUID) -> Row | None:
        return self.rows.get(database_id)

    async def set_database_status(self, database_id: uuid.UUID, status: str, reason: str | None = None) -> None:
        self.rows[database_id].status, self.rows[database_id].reason = status, reason

    async def set_database_engine(self, database_id: uuid.UUID, engine: str) -> None:
        self.rows[database_id].engine = engine

    async def promote_pending_password(self, database_id: uuid.UUID) -> None:
        row = self.rows[database_id]
        row.ciphertext, row.pending_ciphertext = row.pending_ciphertext or row.ciphertext, None

    async def delete_database_row(self, database_id: uuid.UUID) -> None:
        self.rows[database_id].deleted = True

    async def start_database_backup(self, database_id: uuid.UUID, kind: str, name: str) -> None:
        self.backups[name] = ("running", None)

    async def finish_database_backup(self, database_id: uuid.UUID, name: str, status: str, size_bytes: int | None,
                                     error: str | None) -> None:
        self.backups[name] = (status, error)


BOX = SecretBox(SecretBox.generate_key())
SPEC = DatabaseSpec(tenant="acme", project="shop", namespace="dm-acme-shop-abc123", name="orders", version=15,
                    image="127.0.0.1:5000/deploy-mcp-postgres:15", size_gib=5, storage_class="fast", app="web")


async def run(env: WorkflowEnvironment, api: FakeApi, store: FakeStore, op: DatabaseOp) -> DatabaseResult:
    acts = DatabaseActivities(cast(Kube, api), store, BOX, DatabaseConfig(platform_namespace="deploy-mcp-system"))

    @activity.defn(name="ensure_namespace")
    async def ensure_namespace(inp: Any) -> list[str]:
        api.log.append("ensure_namespace")
        return []

    queue = f"db-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[DatabaseWorkflow],
                      activities=[*acts.all(), ensure_namespace]):
        handle = await env.client.start_workflow(DatabaseWorkflow.run, op, id=f"database-{uuid.uuid4()}",
                                                 task_queue=queue)
        result: DatabaseResult = await handle.result()
        history = await handle.fetch_history()
    text = history.to_json()
    assert OLD not in text and NEW not in text, "a password reached the workflow's history"
    return result


def new_row(store: FakeStore) -> uuid.UUID:
    db_id = uuid.uuid4()
    store.rows[db_id] = Row(ciphertext=BOX.seal({"password": OLD}))
    return db_id


async def test_create_applies_everything_in_order_and_waits_for_ready(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(), FakeStore()
    db_id = new_row(store)
    result = await run(env, api, store, DatabaseOp(op="create", database_id=db_id, spec=SPEC))
    assert result.status == "ready" and result.engine == "statefulset"
    assert api.log[0] == "ensure_namespace"
    applied = [line.split(" ", 1)[1] for line in api.log if line.startswith("apply")]
    assert applied == ["Secret/postgres--orders", "PersistentVolumeClaim/postgres--orders-data",
                       "NetworkPolicy/postgres--orders", "Service/postgres--orders",
                       "PodDisruptionBudget/postgres--orders", "StatefulSet/postgres--orders",
                       f"Secret/{applied[6].split('/')[1]}", f"CronJob/{applied[7].split('/')[1]}"]
    assert api.secret_password(SPEC.namespace, "postgres--orders") == OLD
    cronjob = next(o for (k, ns, _), o in api.objects.items() if k == "CronJob")
    assert cronjob["metadata"]["namespace"] == "deploy-mcp-system"
    assert store.rows[db_id].status == "ready"


async def test_create_picks_cloudnative_pg_when_its_api_is_served(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(served={"v1", "apps/v1", "postgresql.cnpg.io/v1"}), FakeStore()
    db_id = new_row(store)
    result = await run(env, api, store, DatabaseOp(op="create", database_id=db_id, spec=SPEC))
    assert result.engine == "cloudnative-pg" and store.rows[db_id].engine == "cloudnative-pg"
    kinds = {k for (k, _, _) in api.objects}
    assert "Cluster" in kinds and "StatefulSet" not in kinds
    cronjob = next(o for (k, _, _), o in api.objects.items() if k == "CronJob")
    args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--host") + 1] == f"postgres--orders-rw.{SPEC.namespace}.svc"


async def test_rotate_changes_the_secrets_and_the_store_only_after_the_job(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(), FakeStore()
    db_id = new_row(store)
    await run(env, api, store, DatabaseOp(op="create", database_id=db_id, spec=SPEC))
    store.rows[db_id].pending_ciphertext = BOX.seal({"password": NEW})
    result = await run(env, api, store, DatabaseOp(op="rotate", database_id=db_id, spec=SPEC))
    assert result.status == "rotated"
    job_at = next(i for i, line in enumerate(api.log) if line.startswith("apply Job/"))
    secret_at = max(i for i, line in enumerate(api.log) if line == "apply Secret/postgres--orders")
    assert job_at < secret_at, "the Secret changed before the database did"
    assert api.secret_password(SPEC.namespace, "postgres--orders") == NEW
    backup_secret = next(n for (k, ns, n) in api.objects if k == "Secret" and ns == "deploy-mcp-system")
    assert api.secret_password("deploy-mcp-system", backup_secret) == NEW
    assert BOX.open(store.rows[db_id].ciphertext)["password"] == NEW and store.rows[db_id].pending_ciphertext is None
    assert not any(k == "Job" for (k, _, _) in api.objects), "the rotation job is cleaned up"
    assert ("Secret", SPEC.namespace, "postgres--orders-rotate") not in api.objects


async def test_a_failed_rotation_keeps_the_old_password_everywhere(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(failing_jobs=("rotate",)), FakeStore()
    db_id = new_row(store)
    await run(env, api, store, DatabaseOp(op="create", database_id=db_id, spec=SPEC))
    store.rows[db_id].pending_ciphertext = BOX.seal({"password": NEW})
    result = await run(env, api, store, DatabaseOp(op="rotate", database_id=db_id, spec=SPEC))
    assert result.status == "failed" and "kept its password" in (result.message or "")
    assert api.secret_password(SPEC.namespace, "postgres--orders") == OLD
    assert BOX.open(store.rows[db_id].ciphertext)["password"] == OLD
    assert store.rows[db_id].pending_ciphertext is not None and store.rows[db_id].status == "failed"


async def test_a_failed_dump_is_recorded_failed(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(failing_jobs=("dbbackup",)), FakeStore()
    db_id = new_row(store)
    result = await run(env, api, store, DatabaseOp(op="backup", database_id=db_id, spec=SPEC,
                                                   backup_name="orders-20261202T040000Z"))
    assert result.status == "failed"
    status, error = store.backups["orders-20261202T040000Z"]
    assert status == "failed" and "failed" in (error or "")


async def test_delete_keeps_the_claim_when_asked(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(), FakeStore()
    db_id = new_row(store)
    await run(env, api, store, DatabaseOp(op="create", database_id=db_id, spec=SPEC))
    result = await run(env, api, store, DatabaseOp(op="delete", database_id=db_id, spec=SPEC, keep_volume=True))
    assert result.status == "deleted" and store.rows[db_id].deleted
    assert set(api.objects) == {("PersistentVolumeClaim", SPEC.namespace, "postgres--orders-data")}


async def test_delete_on_a_1_20_cluster_removes_the_schedule_in_the_version_it_has(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(minor=20), FakeStore()
    db_id = new_row(store)
    await run(env, api, store, DatabaseOp(op="create", database_id=db_id, spec=SPEC))
    cronjob = next(o for (k, _, _), o in api.objects.items() if k == "CronJob")
    assert cronjob["apiVersion"] == "batch/v1beta1"
    result = await run(env, api, store, DatabaseOp(op="delete", database_id=db_id, spec=SPEC))
    assert result.status == "deleted" and not api.objects, api.objects
    assert f"CronJob/deploy-mcp-system/{cronjob['metadata']['name']}" in result.refs


async def test_restore_takes_a_safety_dump_first_and_a_failed_one_restores_nothing(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(), FakeStore()
    db_id = new_row(store)
    op = DatabaseOp(op="restore", database_id=db_id, spec=SPEC, backup_name="deploy-mcp-20261202T050000.000Z.dmcpbak",
                    restore_from="deploy-mcp-20261201T031700.000Z.dmcpbak")
    result = await run(env, api, store, op)
    assert result.status == "restored" and store.rows[db_id].status == "ready"
    jobs = [line for line in api.log if line.startswith("apply Job/")]
    assert len(jobs) == 2 and "-r-" in jobs[1]  # the safety dump's job, then the restore's
    restore = next(o for (k, _, n), o in api.objects.items() if k == "Job" and "-r-" in n)
    args = restore["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "db-restore" and args[args.index("--name") + 1] == op.restore_from
    assert store.backups[op.backup_name or ""] == ("running", None)  # db-dump (in the job) finishes the row

    api, store = FakeApi(failing_jobs=("dbbackup",)), FakeStore()
    db_id = new_row(store)
    result = await run(env, api, store, op.model_copy(update={"database_id": db_id}))
    assert result.status == "failed" and "safety backup" in (result.message or "")
    assert not any("-r-" in line for line in api.log), "restored although the safety dump failed"


async def test_a_database_runs_even_where_its_backup_schedule_cannot_go(env: WorkflowEnvironment) -> None:
    api, store = FakeApi(missing_namespace="deploy-mcp-system"), FakeStore()
    db_id = new_row(store)
    result = await run(env, api, store, DatabaseOp(op="create", database_id=db_id, spec=SPEC))
    assert result.status == "ready" and "no backup schedule" in (result.message or "")
    assert store.rows[db_id].status == "ready" and "deploy-mcp-system" in (store.rows[db_id].reason or "")


# --- Observed status: the database-observe workflow with its real activity ---------------------------------

class ObservedApi(FakeApi):
    """FakeApi plus the reads an observation makes: the database pod (Running, Ready unless told), its node's
    kubelet Summary in the stats/v1alpha1 shape, and the query Job's pod log."""

    def __init__(self, *, pod: bool = True, ready: bool = True, answer: str = "7|100\n",
                 kubelet_down: bool = False, failing_jobs: tuple[str, ...] = ()) -> None:
        super().__init__(failing_jobs=failing_jobs)
        self.pod, self.ready, self.answer, self.kubelet_down = pod, ready, answer, kubelet_down

    async def list_objects(self, api_version: str, kind: str, namespace: str | None, *,
                           label_selector: str | None = None, **_: Any) -> list[dict[str, Any]]:
        assert kind == "Pod" and label_selector
        if label_selector.startswith("job-name="):
            job = label_selector.split("=", 1)[1]
            return [{"metadata": {"name": f"{job}-x1"}}] if ("Job", namespace, job) in self.objects else []
        assert label_selector == "deploy-mcp/database=orders", label_selector
        if not self.pod:
            return []
        return [{"metadata": {"name": "postgres--orders-0"}, "spec": {"nodeName": "run-1"},
                 "status": {"phase": "Running",
                            "conditions": [{"type": "Ready", "status": "True" if self.ready else "False"}]}}]

    async def node_stats_summary(self, node: str) -> dict[str, Any]:
        if self.kubelet_down:
            raise KubeError(classify_status(503, "error trying to reach service: dial tcp: i/o timeout"),
                            f"read the kubelet stats of node {node}")
        return {"node": {"nodeName": node}, "pods": [
            {"podRef": {"name": "postgres--orders-0", "namespace": SPEC.namespace},
             "volume": [{"time": "2026-12-02T12:00:05Z", "name": "data", "usedBytes": 9 * 2**29,
                         "capacityBytes": 5 * 2**30, "availableBytes": 2**29,
                         "pvcRef": {"name": SPEC.claim, "namespace": SPEC.namespace}}]}]}

    async def pod_log(self, namespace: str, pod: str, **_: Any) -> str:
        return self.answer


async def observe(env: WorkflowEnvironment, api: ObservedApi) -> DatabaseObservation:
    queue = f"dbo-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[DatabaseObserveWorkflow],
                      activities=DatabaseObserveActivities(cast(Kube, api)).all()):
        result: DatabaseObservation = await env.client.execute_workflow(
            DatabaseObserveWorkflow.run, ObserveInput(spec=SPEC), id=f"observe-{uuid.uuid4()}", task_queue=queue)
    return result


async def test_observe_reads_the_claims_disk_and_the_connections_now(env: WorkflowEnvironment) -> None:
    api = ObservedApi()
    obs = await observe(env, api)
    assert obs.ready is True and obs.pod == "postgres--orders-0"
    assert (obs.disk.used_bytes, obs.disk.capacity_bytes, obs.disk.percent) == (9 * 2**29, 5 * 2**30, 90.0)
    assert obs.disk.observed_at is not None and obs.disk.unknown is None
    assert (obs.connections.current, obs.connections.max) == (7, 100) and obs.connections.observed_at is not None
    # the query ran as a Job that is gone again, admitted as the database's client
    (job,) = [line.split("/", 1)[1] for line in api.log if line.startswith("apply Job/")]
    assert f"delete Job/{job}" in api.log and not [k for k in api.objects if k[0] == "Job"]


async def test_observe_says_unknown_and_why_instead_of_guessing(env: WorkflowEnvironment) -> None:
    failed = await observe(env, ObservedApi(
        answer="psql: error: FATAL:  password authentication failed for user \"orders\"\n",
        failing_jobs=("observe",)))
    assert failed.connections.current is None and "password authentication failed" in str(failed.connections.unknown)
    assert failed.disk.percent == 90.0

    down = await observe(env, ObservedApi(kubelet_down=True))
    assert down.disk.used_bytes is None and "kubelet of node run-1" in str(down.disk.unknown)

    api = ObservedApi(pod=False)
    none = await observe(env, api)
    assert none.ready is None and "no database pod is running" in str(none.disk.unknown)
    assert none.connections.unknown == none.disk.unknown and not any("Job" in line for line in api.log)

    api = ObservedApi(ready=False)
    not_ready = await observe(env, api)
    assert not_ready.ready is False and "not Ready" in str(not_ready.connections.unknown)
    assert not_ready.disk.percent == 90.0 and not any("Job" in line for line in api.log)
