"""A database's scheduled dump (workflows/render/database.py `backup_cronjob`): a CronJob that validates strictly
against the batch/v1 schema of the oldest and newest Kubernetes the validator ships, runs `deploy-mcp db-dump`
of the platform image as the CLI parses it (retention by count and age from the settings), one run at a time,
under Pod Security `restricted` (`restricted_container`, non-root 10001, no API token), with the database's
credentials by reference only; on a 1.20 cluster the same body as batch/v1beta1. Whether an API server takes it
is `tests/integration/test_databases_on_testbed.py::test_the_backup_cronjob_is_accepted_by_the_api_server`."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version

from mcp_server.cli import parser
from workflows.domain.database_spec import DatabaseSpec
from workflows.domain.labels import LABEL_ROLE, ROLE_DATABASE_BACKUP
from workflows.domain.specs import ClusterCaps
from workflows.render.database import BACKUP_SECRET_KEYS, backup_cronjob, backup_name
from workflows.render.objects import restricted_container

SPEC = DatabaseSpec(tenant="acme", project="shop", namespace="dm-acme-shop-abc123", name="orders", version=15,
                    image="127.0.0.1:5000/deploy-mcp-postgres:15", size_gib=5, storage_class="fast", app="web")
IMAGE = "ghcr.io/deploy-mcp/deploy-mcp:0.1.0"
DB_ID = "6d1c8f0e-8d1b-4a53-9a51-0c6b1f2f4b11"


def cronjob(minor: int = 30) -> dict[str, Any]:
    return backup_cronjob(SPEC, DB_ID, "deploy-mcp-system", IMAGE, "17 3 * * *", 7, 30, ClusterCaps(minor=minor))


@pytest.mark.parametrize("version", [all_versions()[0], latest_version()])
def test_it_validates_strictly_as_batch_v1(version: str) -> None:
    obj = cronjob()
    assert (obj["apiVersion"], obj["kind"]) == ("batch/v1", "CronJob")
    kubernetes_validate.validate(obj, version, strict=True)


def test_a_1_20_cluster_gets_the_same_body_as_batch_v1beta1() -> None:
    old, new = cronjob(minor=20), cronjob()
    assert old["apiVersion"] == "batch/v1beta1"
    assert {**old, "apiVersion": "batch/v1"} == new  # v1beta1's CronJobSpec has every field used here


def test_it_runs_db_dump_with_the_retention_one_run_at_a_time() -> None:
    obj = cronjob()
    spec = obj["spec"]
    assert obj["metadata"] == {"name": backup_name(SPEC), "namespace": "deploy-mcp-system",
                               "labels": obj["metadata"]["labels"]}
    assert len(obj["metadata"]["name"]) <= 52  # CronJob names: the controller appends 11 characters per Job
    assert (spec["schedule"], spec["concurrencyPolicy"]) == ("17 3 * * *", "Forbid")
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 1 and job["activeDeadlineSeconds"] == 7200
    (c,) = job["template"]["spec"]["containers"]
    assert c["image"] == IMAGE
    args = parser().parse_args(c["args"])
    assert args.cmd == "db-dump" and (args.keep, args.max_age_days, args.kind) == (7, 30, "scheduled")
    assert (str(args.database_id), args.host, args.dbname) == (DB_ID, SPEC.host, SPEC.database)


def test_it_runs_restricted_with_the_credentials_by_reference_only() -> None:
    pod = cronjob()["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"][LABEL_ROLE] == ROLE_DATABASE_BACKUP  # what the database's policy admits
    ps = pod["spec"]
    (c,) = ps["containers"]
    assert c["securityContext"] == restricted_container()
    assert ps["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                     "seccompProfile": {"type": "RuntimeDefault"}}
    assert ps["automountServiceAccountToken"] is False and ps["restartPolicy"] == "Never"
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}} in ps["volumes"]
    refs = [ref["name"] for e in c["envFrom"] for ref in e.values()]
    assert refs == list(BACKUP_SECRET_KEYS)
    env = {e["name"]: e for e in c["env"]}
    assert set(env) == {"PGUSER", "PGPASSWORD"} and all("value" not in e for e in env.values())
    assert "password" not in json.dumps(c["args"]).lower()
