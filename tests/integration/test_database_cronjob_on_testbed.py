"""A database's scheduled dump (`backup_cronjob`, batch/v1 from 1.21, batch/v1beta1 before) and the connections
query Job (`observe_job`) are accepted by the testbed's real API server as rendered, and read back with their
schedule, one-run-at-a-time policy, retention arguments and restricted security contexts intact, the password by
reference only. Nothing runs to completion here: the schedule is nightly, and the query has no database to reach
(the namespace is deleted at the end)."""

from __future__ import annotations

import json
import uuid

import pytest

from workflows.adapters.kube import Kube
from workflows.domain.database_spec import DatabaseSpec
from workflows.render.database import backup_credentials, backup_cronjob, observe_job
from workflows.render.objects import restricted_container

pytestmark = pytest.mark.cluster
PASSWORD = "only-in-the-secret-never-in-the-cronjob"


async def test_the_backup_cronjob_is_accepted_by_the_api_server(kube: Kube) -> None:
    ns = f"dbcron-{uuid.uuid4().hex[:6]}"
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": ns, "labels": {"app.kubernetes.io/part-of": "deploy-mcp"}}})
    spec = DatabaseSpec(tenant="acme", project="shop", namespace=ns, name="orders", version=15,
                        image="127.0.0.1:5000/deploy-mcp-postgres:15", size_gib=1, storage_class="fast", app="web")
    caps = await kube.caps()
    try:
        await kube.apply(backup_credentials(spec, ns, PASSWORD))
        cron = backup_cronjob(spec, str(uuid.uuid4()), ns, "127.0.0.1:5000/deploy-mcp:test", "17 3 * * *", 7, 30,
                              caps)
        await kube.apply(cron)
        back = await kube.get(cron["apiVersion"], "CronJob", ns, cron["metadata"]["name"])
        assert back is not None, cron["apiVersion"]
        assert (back["spec"]["schedule"], back["spec"]["concurrencyPolicy"]) == ("17 3 * * *", "Forbid")
        pod = back["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["args"][0] == "db-dump" and c["args"][c["args"].index("--keep") + 1] == "7"
        assert c["args"][c["args"].index("--max-age-days") + 1] == "30"
        assert c["securityContext"] == restricted_container()
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        assert PASSWORD not in json.dumps(back)

        job = observe_job(spec, "postgres--orders-observe-abc123")
        await kube.apply(job)
        got = await kube.get("batch/v1", "Job", ns, job["metadata"]["name"])
        assert got is not None and got["spec"]["backoffLimit"] == 0
        assert got["spec"]["template"]["spec"]["containers"][0]["securityContext"] == restricted_container()
        assert PASSWORD not in json.dumps(got)
    finally:
        await kube.delete("v1", "Namespace", None, ns)
