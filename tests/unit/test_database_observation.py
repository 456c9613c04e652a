"""A database's observed state (workflows/domain/database_observation.py): the claim's disk use read from a
kubelet Summary in its documented shape (stats/v1alpha1 `pods[].volume[]` with `pvcRef` and FsStats), the
connection count from the query Job's psql output, `unknown` with the reason whenever the answer is missing,
and diagnose's findings at a nearly full disk and at connections near max_connections. Also the query Job the
count comes from: schema-valid, Pod Security `restricted`, admitted by the database's policy, password only by
reference."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import all_versions, latest_version

from tests.support.netpol import Namespace, Pod, connection_allowed
from workflows.domain.database_observation import (
    CONNECTIONS_SQL,
    Connections,
    DatabaseObservation,
    DiskUse,
    database_findings,
    parse_connections,
    volume_disk_use,
)
from workflows.domain.database_spec import DatabaseSpec
from workflows.domain.labels import LABEL_DATABASE_CLIENT
from workflows.domain.specs import ClusterCaps, Guardrails
from workflows.render.database import database_network_policy, database_statefulset, observe_job
from workflows.render.namespace import namespace_objects
from workflows.render.objects import restricted_container

NS = "dm-acme-shop-abc123"
SPEC = DatabaseSpec(tenant="acme", project="shop", namespace=NS, name="orders", version=15,
                    image="127.0.0.1:5000/deploy-mcp-postgres:15", size_gib=5, storage_class="fast", app="web")


def summary(used: int | None = 3 * 2**30, claim: str = SPEC.claim) -> dict[str, Any]:
    """A kubelet /stats/summary as the kubelet serves it (trimmed to the fields that matter here)."""
    volume: dict[str, Any] = {"time": "2026-12-02T12:00:05Z", "availableBytes": 2 * 2**30,
                              "capacityBytes": 5 * 2**30, "inodesFree": 300000, "inodes": 327680, "inodesUsed": 27680,
                              "name": "data", "pvcRef": {"name": claim, "namespace": NS}}
    if used is not None:
        volume["usedBytes"] = used
    return {"node": {"nodeName": "run-1"}, "pods": [
        {"podRef": {"name": "web-r3-abc", "namespace": NS, "uid": "u1"}, "volume": []},
        {"podRef": {"name": "postgres--orders-0", "namespace": NS, "uid": "u2"},
         "volume": [{"time": "2026-12-02T12:00:05Z", "usedBytes": 4096, "capacityBytes": 16777216,
                     "name": "run"}, volume]},
    ]}


def test_disk_use_is_the_claims_filesystem_with_when_it_was_measured() -> None:
    d = volume_disk_use(summary(), NS, "postgres--orders-0", SPEC.claim)
    assert (d.used_bytes, d.capacity_bytes, d.percent, d.unknown) == (3 * 2**30, 5 * 2**30, 60.0, None)
    assert d.observed_at == datetime(2026, 12, 2, 12, 0, 5, tzinfo=UTC)


def test_disk_use_is_unknown_with_the_reason_when_the_kubelet_does_not_say() -> None:
    assert "no usage" in str(volume_disk_use(summary(used=None), NS, "postgres--orders-0", SPEC.claim).unknown)
    assert "no volume stats" in str(volume_disk_use(summary(claim="other"), NS, "postgres--orders-0",
                                                    SPEC.claim).unknown)
    gone = volume_disk_use(summary(), NS, "postgres--orders-1", SPEC.claim)
    assert gone.used_bytes is None and "does not list pod postgres--orders-1" in str(gone.unknown)
    assert volume_disk_use(summary(), "dm-other", "postgres--orders-0", SPEC.claim).used_bytes is None


def test_connections_come_from_the_last_answer_line_only() -> None:
    assert parse_connections("7|100\n") == (7, 100)
    assert parse_connections("NOTICE: something\n12|200") == (12, 200)
    assert parse_connections('psql: error: connection to server failed: FATAL:  password authentication failed') \
        is None
    assert parse_connections("") is None


def test_diagnose_flags_a_full_disk_and_connections_near_max_only() -> None:
    calm = DatabaseObservation(disk=DiskUse(used_bytes=80, capacity_bytes=100, percent=80.0),
                               connections=Connections(current=80, max=100))
    assert database_findings(calm, "orders") == []
    busy = DatabaseObservation(disk=DiskUse(used_bytes=90, capacity_bytes=100, percent=90.0),
                               connections=Connections(current=95, max=100))
    disk, conns = database_findings(busy, "orders")
    assert "90% full" in disk and "95 of 100 connections" in conns
    assert database_findings(DatabaseObservation(), "orders") == []  # unknown is not a finding


def test_the_query_job_is_restricted_valid_and_admitted_by_the_policy() -> None:
    job = observe_job(SPEC, "postgres--orders-observe-abc123")
    for version in (all_versions()[0], latest_version()):
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"][-1] == CONNECTIONS_SQL and job["spec"]["backoffLimit"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert c["securityContext"] == restricted_container()
    env = {e["name"]: e for e in c["env"]}
    assert "value" not in env["PGPASSWORD"] and env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == SPEC.secret
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[LABEL_DATABASE_CLIENT] == "orders"
    ns = Namespace(NS, {"kubernetes.io/metadata.name": NS})
    db_pod = Pod(ns, database_statefulset(SPEC)["spec"]["template"]["metadata"]["labels"], "10.42.1.50")
    policies = [*namespace_objects("acme", "shop", NS, Guardrails(), ClusterCaps(minor=30)),
                database_network_policy(SPEC)]
    assert connection_allowed(policies, Pod(ns, labels, "10.42.2.12"), db_pod, 5432)
