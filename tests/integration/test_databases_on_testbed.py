"""A database on the testbed (real API server, kubelet node, registry) with the platform's own Postgres image
(`make image-postgres-push PG_IMAGE=127.0.0.1:5000/deploy-mcp-postgres:15` first; DEPLOY_MCP_TEST_POSTGRES_IMAGE
names another): create_app with a database; a client pod that reads the app's release Secret (envFrom, as the
app's pods do) writes rows through DATABASE_URL; the rows survive a deploy of the app and the loss of the
database's pod and of its node (the volume follows, released as Longhorn's node-down policy does: the
fake's); rotate -> the new release's DATABASE_URL works and the old password no longer does;
`databases` reports disk and connections observed (or unknown with why). What the API server holds for the
database is restricted PodSecurity as rendered, and its NetworkPolicy (read back) admits the app's pods and not
another app's (evaluated: the testbed's CNI enforces no policy).

Cluster DNS is the testbed's dnsmasq (its README), so the app, the rotation and the query Jobs reach the
database by its Service's name as on k3s. Dumps and restores need the platform installed in-cluster (its
namespace, image and backup Secret): tests/e2e/test_install.py backs up, drops and restores there, and
tests/integration/test_database_dumps.py runs them against an embedded Postgres. The psql client pod is
tests/support/psql_pod.py, shared with the install test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from tests.support import psql_pod
from tests.support.netpol import Namespace, Pod, connection_allowed
from tests.support.platform import ok, running_platform
from tests.support.psql_pod import POSTGRES_IMAGE, REGISTRY, postgres_image_pushed
from workflows.domain.labels import LABEL_APP, LABEL_DATABASE
from workflows.render.namespace import project_labels

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(900)]


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed) -> AsyncIterator[Platform]:
    await postgres_image_pushed(POSTGRES_IMAGE)
    settings = platform_settings(database_url, temporal_address, needs_node,
                                 databases={"images": {15: POSTGRES_IMAGE}, "ready_timeout_seconds": 240})
    async with running_platform(settings) as p:
        yield p


async def psql(p: Platform, ns: str, env_secret: str, sql: str) -> tuple[str, str]:
    """`sql` in a client pod of the app `web`, with the release Secret `env_secret` as its environment."""
    return await psql_pod.psql(p.kube, ns, env_secret, sql, tenant=p.tenant, project="db", app="web")


async def replacement_serving(p: Platform, ns: str, dead_uid: str) -> None:
    """The database's pod that replaced `dead_uid` is Ready and is the address its Service's Endpoints name. The
    StatefulSet's readyReplicas still counts the dead pod for a moment, so it is not the signal."""
    for _ in range(600):
        pod = await p.kube.get("v1", "Pod", ns, "postgres--web-0")
        status = (pod or {}).get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if pod and pod["metadata"]["uid"] != dead_uid and ready and status.get("podIP"):
            # the testbed's Kubernetes 1.20 serves core Endpoints (its EndpointSlices are beta)
            endpoints = await p.kube.get("v1", "Endpoints", ns, "postgres--web")
            if any(a.get("ip") == status["podIP"] for sub in (endpoints or {}).get("subsets") or []
                   for a in sub.get("addresses") or []):
                return
        await asyncio.sleep(0.5)
    raise AssertionError("the database's pod was not replaced and serving in 300 s")


async def ready_database(p: Platform, c: Any, name: str) -> dict[str, Any]:
    for _ in range(600):
        listed = ok(await c.call_tool("databases", {"project": "db", "name": name}))
        d: dict[str, Any] = listed["databases"][0]
        if d["status"] in ("ready", "failed"):
            return d
        await asyncio.sleep(0.5)
    raise AssertionError(f"database {name} never became ready")


async def test_an_app_and_its_database_in_one_call_survive_deploys_restarts_and_rotation(
        platform: Platform, needs_node: Testbed) -> None:
    p = platform
    image = f"{REGISTRY}/{p.tenant}/web:v1"
    await push_image(REGISTRY, f"{p.tenant}/web", "v1", busybox_web_files("db app"), cmd=BUSYBOX_HTTPD)
    async with p.client() as c:
        created = ok(await c.call_tool("create_app", {
            "project": "db", "name": "web", "source": {"image": image}, "port": 8080,
            "database": {"size_gib": 1}, "shutdown_grace_seconds": 1}))
        assert created["phase"] == "succeeded", created
        d = await ready_database(p, c, "web")
        assert d["status"] == "ready", d
        app = await p.deps.store.get_app(p.tenant, "db", "web")
        assert app is not None
        ns = app.namespace

        # what the API server holds: restricted as rendered, on the platform's claim
        sts = await p.kube.get("apps/v1", "StatefulSet", ns, "postgres--web")
        assert sts is not None
        pod_spec = sts["spec"]["template"]["spec"]
        assert pod_spec["securityContext"]["runAsUser"] == 999 and pod_spec["automountServiceAccountToken"] is False
        assert pod_spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        claim = await p.kube.get("v1", "PersistentVolumeClaim", ns, "postgres--web-data")
        assert claim is not None and claim["status"]["phase"] == "Bound"

        phase, log = await psql(p, ns, "web-r1-env", "CREATE TABLE hits (n int); INSERT INTO hits VALUES (1); "
                                                     "SELECT count(*) FROM hits")
        assert (phase, log) == ("Succeeded", "1"), log

        # observed now, each figure with its time or `unknown` and why (never both, never a stored one)
        seen = ok(await c.call_tool("databases", {"project": "db", "name": "web"}))["databases"][0]["observed"]
        assert seen["ready"] is True and seen["pod"] == "postgres--web-0", seen
        disk, conns = seen["disk"], seen["connections"]
        assert (disk["unknown"] is None) == (disk["observed_at"] is not None), disk
        if disk["unknown"] is None:  # a provisioner whose volumes report no stats (hostPath) says so instead
            assert 0 < disk["used_bytes"] <= disk["capacity_bytes"] and 0 < disk["percent"] < 100, disk
        # the one-query Job reaches the database by its Service's name (the testbed's cluster DNS)
        assert conns["unknown"] is None and 0 <= conns["current"] < conns["max"] == 64, conns  # 512 MiB / 8
        assert not [j for j in await p.kube.list_objects("batch/v1", "Job", ns)
                    if "-observe-" in j["metadata"]["name"]], "the query job was left behind"

        # a deploy of the app: the data stays, the new release connects
        second = ok(await c.call_tool("deploy", {"project": "db", "app": "web", "env": {"MODE": "two"}}))
        assert second["phase"] == "succeeded", second
        phase, log = await psql(p, ns, "web-r2-env", "INSERT INTO hits VALUES (2); SELECT count(*) FROM hits")
        assert (phase, log) == ("Succeeded", "2"), log

        # the database's pod dies: it comes back on its claim with the rows
        dead = await p.kube.get("v1", "Pod", ns, "postgres--web-0")
        assert dead is not None
        await p.kube.delete("v1", "Pod", ns, "postgres--web-0", grace_seconds=0)
        await replacement_serving(p, ns, dead["metadata"]["uid"])
        phase, log = await psql(p, ns, "web-r2-env", "SELECT count(*) FROM hits")
        assert (phase, log) == ("Succeeded", "2"), log

        # its node dies (kubelet and containerd stop, its containers killed): the control plane evicts the pod
        # after the database's 30 s toleration, Longhorn's node-down policy (the fake's) releases the volume, and
        # the StatefulSet starts the database on the other node with the rows
        dead = await p.kube.get("v1", "Pod", ns, "postgres--web-0")
        assert dead is not None
        node = dead["spec"]["nodeName"]
        started = time.monotonic()
        needs_node.stop_node(node)
        try:
            await replacement_serving(p, ns, dead["metadata"]["uid"])
            moved = await p.kube.get("v1", "Pod", ns, "postgres--web-0")
            assert moved is not None and moved["spec"]["nodeName"] != node, moved
            print(f"database: serving again on {moved['spec']['nodeName']} {time.monotonic() - started:.1f} s "
                  f"after {node} died")
            phase, log = await psql(p, ns, "web-r2-env", "SELECT count(*) FROM hits")
            assert (phase, log) == ("Succeeded", "2"), log
        finally:
            needs_node.start_node(node)

        # rotate: the app's next release carries the new password; the old one is refused
        answer = await c.call_tool("database", {"action": "rotate", "project": "db", "name": "web",
                                                "wait_seconds": 240})
        rotated = ok(answer)
        assert rotated["done"] and rotated["release"]["phase"] == "succeeded", rotated
        release = rotated["release"]["release"]
        assert release == "web-r3"
        phase, log = await psql(p, ns, f"{release}-env", "INSERT INTO hits VALUES (3); SELECT count(*) FROM hits")
        assert (phase, log) == ("Succeeded", "3"), log
        phase, log = await psql(p, ns, "web-r2-env", "SELECT 1")
        assert phase == "Failed" and "password authentication failed" in log, log

        # the policy the API server holds admits the app's pods, not another app's of the project
        policies = await p.kube.list_objects("networking.k8s.io/v1", "NetworkPolicy", ns)
        project = Namespace(ns, {"kubernetes.io/metadata.name": ns})
        db_pod = Pod(project, {**project_labels(p.tenant, "db"), LABEL_DATABASE: "web"}, "10.42.9.9")
        web = Pod(project, {**project_labels(p.tenant, "db"), LABEL_APP: "web"}, "10.42.9.10")
        other = Pod(project, {**project_labels(p.tenant, "db"), LABEL_APP: "other"}, "10.42.9.11")
        assert connection_allowed(policies, web, db_pod, 5432)
        assert not connection_allowed(policies, other, db_pod, 5432)
