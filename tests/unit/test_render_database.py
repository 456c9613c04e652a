"""A platform database's objects (workflows/render/database.py): schema-valid on the oldest and newest
Kubernetes the validator knows, Pod Security `restricted` in full, probes through pg_isready, the claim as a
platform volume, the password only in its Secret, and — by meaning, evaluated with tests/support/netpol.py,
since the testbed's CNI enforces no policy — a database reachable from its app's pods and the platform's
database jobs only, on its port only. Also the CloudNativePG `Cluster` alternative and the connection
variables an app receives."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import unquote, urlsplit

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version

from tests.support.netpol import Namespace, Pod, connection_allowed
from workflows.domain.database_spec import CONNECTION_VARIABLES, DatabaseSpec, connection_env
from workflows.domain.labels import LABEL_APP, LABEL_DATABASE_CLIENT, LABEL_ROLE, ROLE_DATABASE_BACKUP
from workflows.domain.names import name_problem
from workflows.domain.specs import ClusterCaps, Guardrails
from workflows.render.database import (
    cnpg_cluster,
    database_network_policy,
    database_objects,
    database_statefulset,
)
from workflows.render.namespace import namespace_objects, project_labels

NS = "dm-acme-shop-abc123"
NEW = ClusterCaps(minor=30)
OLD = ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False)
PASSWORD = "s3cr3t/p@ss:word?&"


def spec(**changes: Any) -> DatabaseSpec:
    base: dict[str, Any] = {"tenant": "acme", "project": "shop", "namespace": NS, "name": "orders", "version": 15,
                            "image": "127.0.0.1:5000/deploy-mcp-postgres:15", "size_gib": 5,
                            "storage_class": "fast", "app": "web"}
    return DatabaseSpec(**(base | changes))


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


@pytest.mark.parametrize("caps", [NEW, OLD], ids=["1.30", "1.20"])
def test_every_object_validates_strictly(caps: ClusterCaps) -> None:
    objects = database_objects(spec(), caps, PASSWORD)
    assert [o["kind"] for o in objects] == ["Secret", "PersistentVolumeClaim", "NetworkPolicy", "Service",
                                             "PodDisruptionBudget", "StatefulSet"]
    assert by_kind(objects, "PodDisruptionBudget")["apiVersion"] == caps.pdb_api
    for obj in objects:
        if obj["apiVersion"] == "policy/v1beta1":
            continue  # left in 1.25, the oldest schemas the validator ships; its body is policy/v1's
        for version in (all_versions()[0], latest_version()):
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_pod_meets_pod_security_restricted() -> None:
    pod = database_statefulset(spec())["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    (c,) = pod["containers"]
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    # the only writable paths: the data volume and two emptyDirs
    assert mounts == {"/var/lib/postgresql/data": "data", "/var/run/postgresql": "run", "/tmp": "tmp"}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "postgres--orders-data"}}
    assert "emptyDir" in volumes["run"] and "emptyDir" in volumes["tmp"]
    assert all("hostPath" not in v for v in pod["volumes"])


def test_probes_ask_pg_isready_over_tcp_and_startup_waits_for_recovery() -> None:
    (c,) = database_statefulset(spec())["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        cmd = c[probe]["exec"]["command"]
        assert cmd[0] == "/usr/lib/postgresql/15/bin/pg_isready"
        assert cmd[cmd.index("-h") + 1] == "127.0.0.1" and cmd[cmd.index("-p") + 1] == "5432"
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert c["lifecycle"]["preStop"]["exec"]["command"][1:3] == ["stop", "-D"]
    assert "-m" in c["lifecycle"]["preStop"]["exec"]["command"]


def test_resources_and_shared_buffers_follow_the_size() -> None:
    s = spec(resources={"cpu_millicores": 500, "cpu_limit_millicores": 2000, "memory_mib": 2048})
    (c,) = database_statefulset(s)["spec"]["template"]["spec"]["containers"]
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "2048Mi"},
                              "limits": {"cpu": "2000m", "memory": "2048Mi"}}
    assert "shared_buffers=512MB" in c["args"]


def test_the_claim_is_a_platform_volume() -> None:
    claim = by_kind(database_objects(spec(size_gib=7, storage_class="longhorn-fast"), NEW, PASSWORD),
                    "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "postgres--orders-data"
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn-fast",
                             "resources": {"requests": {"storage": "7Gi"}}}
    labels = claim["metadata"]["labels"]
    assert labels["deploy-mcp/volume"] == "postgres--orders" and labels["deploy-mcp/database"] == "orders"


def test_the_password_is_only_in_the_secret() -> None:
    objects = database_objects(spec(), NEW, PASSWORD)
    secret = by_kind(objects, "Secret")
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert base64.b64decode(secret["data"]["password"]).decode() == PASSWORD
    assert base64.b64decode(secret["data"]["username"]).decode() == "orders"
    encoded = secret["data"]["password"]
    for obj in objects:
        if obj is not secret:
            text = json.dumps(obj)
            assert PASSWORD not in text and encoded not in text
    env = {e["name"]: e for e in by_kind(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_PASSWORD"] == {"name": "POSTGRES_PASSWORD", "valueFrom": {
        "secretKeyRef": {"name": "postgres--orders", "key": "password"}}}


# --- Who reaches the database, by meaning ------------------------------------------------------------------

PROJECT = Namespace(NS, {"kubernetes.io/metadata.name": NS})
PLATFORM = Namespace("deploy-mcp-system", {"app.kubernetes.io/part-of": "deploy-mcp"})
EDGE = Namespace("kube-system", {"deploy-mcp/role": "edge"})
OTHER = Namespace("dm-evil-x-def456", {"kubernetes.io/metadata.name": "dm-evil-x-def456"})
LABELS = project_labels("acme", "shop")


def pods(s: DatabaseSpec) -> dict[str, Pod]:
    db_labels = dict(database_statefulset(s)["spec"]["template"]["metadata"]["labels"])
    return {
        "db": Pod(PROJECT, db_labels, "10.42.1.50"),
        "app": Pod(PROJECT, {**LABELS, LABEL_APP: "web", "deploy-mcp/release": "web-r3"}, "10.42.1.7"),
        "neighbour": Pod(PROJECT, {**LABELS, LABEL_APP: "admin"}, "10.42.2.9"),
        "rotate job": Pod(PROJECT, {**LABELS, LABEL_DATABASE_CLIENT: "orders"}, "10.42.2.10"),
        "other db's job": Pod(PROJECT, {**LABELS, LABEL_DATABASE_CLIENT: "billing"}, "10.42.2.11"),
        "backup job": Pod(PLATFORM, {LABEL_ROLE: ROLE_DATABASE_BACKUP}, "10.42.0.20"),
        "platform worker": Pod(PLATFORM, {"app.kubernetes.io/name": "deploy-mcp-worker"}, "10.42.0.21"),
        "edge": Pod(EDGE, {"app.kubernetes.io/name": "traefik"}, "10.42.0.30"),
        "other tenant": Pod(OTHER, {**project_labels("evil", "x"), LABEL_APP: "web"}, "10.42.3.3"),
        "other tenant's job": Pod(OTHER, {LABEL_DATABASE_CLIENT: "orders"}, "10.42.3.4"),
    }


def policies(s: DatabaseSpec, caps: ClusterCaps) -> list[dict[str, Any]]:
    return [*namespace_objects("acme", "shop", NS, Guardrails(), caps), database_network_policy(s)]


@pytest.mark.parametrize("caps", [NEW, OLD], ids=["1.30", "1.20"])
def test_only_the_app_and_the_platform_jobs_reach_the_database(caps: ClusterCaps) -> None:
    s = spec()
    p = pods(s)
    objs = policies(s, caps)
    reach = {who: connection_allowed(objs, pod, p["db"], 5432) for who, pod in p.items() if who != "db"}
    assert reach == {"app": True, "rotate job": True, "backup job": True, "neighbour": False,
                     "other db's job": False, "platform worker": False, "edge": False, "other tenant": False,
                     "other tenant's job": False}
    assert not connection_allowed(objs, p["app"], p["db"], 22)  # the Postgres port only


def test_a_detached_database_admits_the_platform_jobs_only() -> None:
    s = spec(app=None)
    p = pods(s)
    objs = policies(s, NEW)
    assert not connection_allowed(objs, p["app"], p["db"], 5432)
    assert connection_allowed(objs, p["backup job"], p["db"], 5432)


def test_the_catch_all_policy_still_joins_the_projects_apps() -> None:
    p = pods(spec())
    assert connection_allowed(policies(spec(), NEW), p["app"], p["neighbour"], 8080)


# --- Names, connection, CloudNativePG -------------------------------------------------------------------------


def test_object_names_can_never_be_an_apps() -> None:
    s = spec()
    assert name_problem(s.object_name) is not None  # "--" is refused in app names
    assert s.host == f"postgres--orders.{NS}.svc"
    assert spec(name="my-db").database == "my_db" and spec(name="my-db").user == "my_db"


def test_the_connection_variables_quote_the_password() -> None:
    env = connection_env(spec(), PASSWORD)
    assert tuple(env) == CONNECTION_VARIABLES
    url = urlsplit(env["DATABASE_URL"])
    assert url.scheme == "postgresql" and url.hostname == f"postgres--orders.{NS}.svc" and url.port == 5432
    assert unquote(url.password or "") == PASSWORD and url.username == "orders" and url.path == "/orders"
    assert env["PGPASSWORD"] == PASSWORD and env["PGPORT"] == "5432"


def test_cloudnative_pg_gets_a_cluster_instead_of_a_statefulset() -> None:
    s = spec(engine="cloudnative-pg", image="")
    objects = database_objects(s, NEW, PASSWORD)
    assert [o["kind"] for o in objects] == ["Secret", "NetworkPolicy", "Cluster"]
    cluster = cnpg_cluster(s)
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    body = cluster["spec"]
    assert body["instances"] == 1 and "imageName" not in body and body["enableSuperuserAccess"] is False
    assert body["bootstrap"] == {"initdb": {"database": "orders", "owner": "orders",
                                            "secret": {"name": "postgres--orders"}}}
    assert body["storage"] == {"size": "5Gi", "storageClass": "fast"}
    assert body["inheritedMetadata"]["labels"]["deploy-mcp/database"] == "orders"
    assert s.host == f"postgres--orders-rw.{NS}.svc"
    # its pods (labelled by the operator) are what the policy selects, and the operator may reach them
    policy = by_kind(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "postgres--orders"}}
    operator = Pod(Namespace("cnpg-system"), {"app.kubernetes.io/name": "cloudnative-pg"}, "10.42.0.40")
    instance = Pod(PROJECT, {**body["inheritedMetadata"]["labels"], "cnpg.io/cluster": "postgres--orders"},
                   "10.42.1.60")
    objs = [*namespace_objects("acme", "shop", NS, Guardrails(), NEW), policy]
    assert connection_allowed(objs, operator, instance, 8000)
    assert connection_allowed(objs, pods(s)["app"], instance, 5432)
    assert not connection_allowed(objs, pods(s)["neighbour"], instance, 5432)
    assert spec(engine="cloudnative-pg").model_dump()["engine"] == "cloudnative-pg"
    assert "imageName" in cnpg_cluster(spec(engine="cloudnative-pg"))["spec"]
