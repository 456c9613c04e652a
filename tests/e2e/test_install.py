"""The platform installed in the testbed as an operator installs it, and used only through its Service with an
MCP client: the image built by the project (image/Containerfile on the self-built Debian base) and pushed to
the testbed registry; `manifests/overlays/testbed` rendered with kustomize and applied (server with 2
replicas and the worker, each under its own ServiceAccount bound to the install's RBAC, migrations as their
init step); Postgres and Temporal are the suite's, outside the cluster, reached at the node address.

Then `whoami`, `create_app` from an image, `deploy`, `rollback`, runtime logs and `delete_app` through the
NodePort; both replicas answer; no 403 in the worker's log. Upgrade: the server and worker roll to a second
image tag while a deploy is in flight; the deploy completes and no call made during the rollout fails.

A database, backed up and restored for real: `create_app(database=...)` on the platform's own Postgres image;
rows written by a client pod that reads the app's release Secret; `database(action=backup)` runs
`deploy-mcp db-dump` as a Job in the platform namespace with the platform image (its settings from the Secrets
deploy-mcp-secrets and deploy-mcp-backup, as an operator creates them), sealed to an `s3://` target; the table
is dropped; `database(action=restore)` takes a safety dump, then `deploy-mcp db-restore` puts the rows back;
`databases` lists both dumps with their size and outcome; `delete_app(database=delete)` takes a final dump and
removes the database and its schedule. The target is the fake S3 (tests/fakes/fake_s3.py: the S3 API with
signature checks) on the host, reached at the node address like the suite's Postgres: the dump job mounts no
volume (its /tmp is scratch), so an in-cluster target is S3; the testbed has no S3 server of its own."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
import pytest
import yaml
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.forward import NODE_IP, forwarded
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform_image import build_platform_image
from mcp_server.devenv.platform_image import push_image as push_platform_image
from tests.fakes.fake_longhorn import fake_longhorn
from tests.fakes.fake_s3 import FakeS3, fake_s3
from tests.support.kustomize import render_text, write_testbed_install
from tests.support.platform import ok
from tests.support.psql_pod import POSTGRES_IMAGE, postgres_image_pushed, psql
from workflows.adapters.kube import Kube
from workflows.domain.database_spec import database_backup_prefix
from workflows.domain.labels import LABEL_DATABASE, LABEL_ROLE, ROLE_DATABASE_BACKUP

pytestmark = [
    pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(2400),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("buildah") is None,
                       reason="building the platform image needs root and buildah (CI has both)"),
]
NS = "deploy-mcp-system"
NODE_PORT = 30765
MCP_URL = f"http://127.0.0.1:{NODE_PORT}/mcp"
IMAGE = "127.0.0.1:5000/deploy-mcp"
KEEP = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
DUMPS_BUCKET = "dumps"


def kubectl(tb: Testbed, *args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run([str(tb.cache / "bin" / "kubectl"), f"--kubeconfig={tb.kubeconfig}", *args],
                          input=stdin, capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr.strip()[-3000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def platform_image() -> str:
    """The platform image in the testbed registry as `test` and `test2` (the upgrade's second tag); returned by
    digest, for the database jobs the worker renders: those pull only if absent, and a node may hold an older
    `test` from an earlier run (the platform's Deployments pull `Always`, testbed overlay)."""
    ref = build_platform_image(tag=f"{IMAGE}:test")
    digests = [push_platform_image(None, ref, f"{IMAGE}:{tag}") for tag in ("test", "test2")]
    return f"{IMAGE}@{digests[0]}"


def at_node(url: str) -> str:
    """`url` with its host replaced by the node address, as pods reach the host."""
    parts = urlsplit(url)
    netloc = parts.netloc.replace("127.0.0.1", NODE_IP).replace("localhost", NODE_IP)
    return urlunsplit(parts._replace(netloc=netloc))


@asynccontextmanager
async def installed(tb: Testbed, workdir: Path, database_url: str, temporal_address: str, *,
                    config: dict[str, str] | None = None, backup: dict[str, str] | None = None,
                    forward: tuple[int, ...] = ()) -> AsyncIterator[dict[str, Any]]:
    """The install, with `config` merged into its ConfigMap, `backup` as the Secret deploy-mcp-backup, and the
    host's loopback ports `forward` reachable from pods at the node address besides the suite's own."""
    pg_port = urlsplit(database_url).port
    temporal_port = int(temporal_address.rsplit(":", 1)[1])
    assert pg_port
    async with forwarded([6443, 5000, pg_port, temporal_port, *forward]):
        # the `kubernetes` Service: the testbed's API server has no endpoint reconciler
        kubectl(tb, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": [{"name": "https", "port": 6443}]}]}))
        install = workdir / f"install-{uuid.uuid4().hex[:6]}"
        settings = {
            "DEPLOY_MCP_TEMPORAL__ADDRESS": f"{NODE_IP}:{temporal_port}",
            "DEPLOY_MCP_TEMPORAL__TASK_QUEUE": f"installed-{uuid.uuid4().hex[:6]}",
            "DEPLOY_MCP_HTTP__PUBLIC_URL": MCP_URL,
            **(config or {}),
        }
        secrets = {"DATABASE_URL": at_node(database_url), "DEPLOY_MCP_SECRETS_KEY": Fernet.generate_key().decode()}

        async def apply(tag: str) -> None:
            write_testbed_install(install, config=settings, secrets=secrets, image_tag=tag, backup=backup)
            await asyncio.to_thread(kubectl, tb, "apply", "-f", "-", stdin=render_text(install))

        try:
            await apply("test")
            for d in ("deploy-mcp-server", "deploy-mcp-worker"):
                await asyncio.to_thread(kubectl, tb, "-n", NS, "rollout", "status", f"deployment/{d}", "--timeout=300s")
            yield {"apply": apply, "install": install}
        finally:
            print(kubectl(tb, "-n", NS, "get", "pods", "-o", "wide", check=False))
            for d in ("deploy-mcp-server", "deploy-mcp-worker"):
                print(kubectl(tb, "-n", NS, "logs", f"deployment/{d}", "--all-containers", "--tail=80", check=False))
            print(kubectl(tb, "-n", NS, "logs", "-l", f"{LABEL_ROLE}={ROLE_DATABASE_BACKUP}", "--prefix",
                          "--tail=40", "--max-log-requests=20", check=False))
            # the workloads go; the namespace and the RBAC stay: they are the identity every other test's worker
            # runs under (devenv/service_accounts.py applied the same objects at testbed start)
            workloads = [o for o in yaml.safe_load_all(render_text(install)) if o and o["kind"] not in KEEP]
            kubectl(tb, "delete", "-f", "-", "--ignore-not-found", "--wait=false", check=False,
                    stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": workloads}))
            # what the worker made there for databases: dump and restore Jobs, schedules, credentials
            kubectl(tb, "-n", NS, "delete", "jobs,cronjobs,secrets", "-l", f"{LABEL_ROLE}={ROLE_DATABASE_BACKUP}",
                    "--ignore-not-found", "--wait=false", check=False)
            kubectl(tb, "-n", NS, "delete", "pods", "--all", "--grace-period=1", "--wait=false", check=False)


def token_for(tb: Testbed, tenant: str) -> str:
    """`deploy-mcp token create` inside a server pod, as the README tells the operator."""
    out = kubectl(tb, "-n", NS, "exec", "deployment/deploy-mcp-server", "-c", "server", "--",
                  "deploy-mcp", "token", "create", "--tenant", tenant)
    return next(line for line in out.splitlines() if line and not line.startswith("#")).strip()


@asynccontextmanager
async def mcp(url: str, token: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as hc, \
            Client(streamable_http_client(url, http_client=hc)) as c:
        yield c


def server_pod_urls(tb: Testbed) -> list[str]:
    pods = json.loads(kubectl(tb, "-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=deploy-mcp-server",
                              "-o", "json"))["items"]
    return [f"http://{p['status']['podIP']}:8765/mcp" for p in pods
            if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")]


def database_settings(platform_image: str, s3: FakeS3) -> tuple[dict[str, str], dict[str, str]]:
    """(config, backup Secret) for databases and their dumps: the platform's own Postgres image, the platform
    image and namespace the dump jobs run with, and the backup target and key they read (with the store's URL
    from deploy-mcp-secrets) in the Secret the operator creates (manifests/components/backup)."""
    config = {
        "DEPLOY_MCP_DATABASES__IMAGES": json.dumps({"15": POSTGRES_IMAGE}),
        "DEPLOY_MCP_DATABASES__PLATFORM_IMAGE": platform_image,
        "DEPLOY_MCP_DATABASES__PLATFORM_NAMESPACE": NS,
        "DEPLOY_MCP_DATABASES__READY_TIMEOUT_SECONDS": "240",
    }
    port = urlsplit(s3.endpoint).port
    backup = {
        "DEPLOY_MCP_BACKUP__TARGET": f"s3://{DUMPS_BUCKET}/testbed",
        "DEPLOY_MCP_BACKUP__KEY": base64.b64encode(os.urandom(32)).decode(),
        "DEPLOY_MCP_BACKUP__ENDPOINT_URL": f"http://{NODE_IP}:{port}",
        "DEPLOY_MCP_BACKUP__REGION": s3.region,
        "DEPLOY_MCP_BACKUP__ACCESS_KEY_ID": s3.access_key,
        "DEPLOY_MCP_BACKUP__SECRET_ACCESS_KEY": s3.secret_key,
    }
    return config, backup


async def listed_database(c: Client, name: str) -> dict[str, Any]:
    """The database with its backups (and a fresh look at it: `databases` with a name observes)."""
    d: dict[str, Any] = ok(await c.call_tool("databases", {"project": "inst", "name": name}))["databases"][0]
    return d


async def settled_database(c: Client, name: str, timeout: float = 300) -> dict[str, Any]:
    """The database once it is no longer being created or restored (the list: no observation per poll)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [d for d in ok(await c.call_tool("databases", {"project": "inst"}))["databases"] if d["name"] == name]
        assert found, f"database {name} is not listed"
        if found[0]["status"] not in ("creating", "restoring"):
            return dict(found[0])
        assert time.monotonic() < deadline, f"database {name} stayed {found[0]['status']}: {found[0]}"
        await asyncio.sleep(2)


async def finished_backup(c: Client, name: str, kind: str, after: set[str], timeout: float = 300
                          ) -> dict[str, Any]:
    """The database's newest backup of `kind` not in `after`, once it is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        backups = (await listed_database(c, name))["backups"]
        new = [b for b in backups if b["kind"] == kind and b["name"] not in after]
        if new and new[0]["status"] != "running":
            return dict(new[0])
        assert time.monotonic() < deadline, f"no {kind} backup of {name} finished: {backups}"
        await asyncio.sleep(3)


async def back_up_drop_and_restore(c: Client, tb: Testbed, kube: Kube, s3: FakeS3, tenant: str, image: str
                                   ) -> None:
    """An app with a database; rows in it; a dump; the table dropped; the dump restored; the rows back; the app
    deleted with its database after a final dump, which stays at the target with the others."""
    created = ok(await c.call_tool("create_app", {
        "project": "inst", "name": "shop", "port": 8080, "source": {"image": image}, "database": {"size_gib": 1},
        "shutdown_grace_seconds": 1, "wait_seconds": 240}))
    assert created["phase"] == "succeeded", created
    assert (await settled_database(c, "shop"))["status"] == "ready"
    app = ok(await c.call_tool("apps", {"project": "inst", "app": "shop"}))
    ns = app["namespace"]
    serving = next(d for d in app["deployments"] if d["serving"])
    env = f"{serving['release']}-env"  # the release's Secret: DATABASE_URL and PG*, as the app's pods get them

    async def sql(text: str) -> tuple[str, str]:
        return await psql(kube, ns, env, text, tenant=tenant, project="inst", app="shop")

    wrote = await sql("CREATE TABLE orders (n int); INSERT INTO orders VALUES (1), (2), (3); "
                      "SELECT count(*), sum(n) FROM orders")
    assert wrote == ("Succeeded", "3|6"), wrote

    # the dump: a Job in the platform namespace, with the platform image, recorded with its size and outcome
    answer = ok(await c.call_tool("database", {"action": "backup", "project": "inst", "name": "shop",
                                               "wait_seconds": 90}))
    dump = await finished_backup(c, "shop", "manual", set())
    assert dump["status"] == "ok" and dump["size_bytes"] > 0 and dump["error"] is None, (dump, answer)
    assert dump["started_at"]
    jobs = json.loads(await asyncio.to_thread(kubectl, tb, "-n", NS, "get", "jobs", "-l",
                                              f"{LABEL_DATABASE}=shop", "-o", "json"))["items"]
    images = {k["image"] for j in jobs for k in j["spec"]["template"]["spec"]["containers"]}
    assert images and all(i.startswith(f"{IMAGE}@sha256:") for i in images), images

    dropped = await sql("DROP TABLE orders")
    assert dropped[0] == "Succeeded", dropped
    gone = await sql("SELECT count(*) FROM orders")
    assert gone[0] == "Failed" and "does not exist" in gone[1], gone

    # the restore: a safety dump of the database as it is (without the table), then the named dump back
    before = {b["name"] for b in (await listed_database(c, "shop"))["backups"]}
    restored = ok(await c.call_tool("database", {"action": "restore", "project": "inst", "name": "shop",
                                                 "backup": dump["name"], "wait_seconds": 90}))
    if not restored["done"]:
        assert restored["database"]["status"] == "restoring", restored
    settled = await settled_database(c, "shop")
    assert settled["status"] == "ready", (settled, restored)
    safety = await finished_backup(c, "shop", "safety", before)
    assert safety["status"] == "ok" and safety["size_bytes"] > 0, safety
    assert datetime.fromisoformat(safety["started_at"]) > datetime.fromisoformat(dump["started_at"])
    back = await sql("SELECT count(*), sum(n) FROM orders")
    assert back == ("Succeeded", "3|6"), back

    # the app goes with its database: a final dump first; the schedule and credentials in the platform
    # namespace go with it; the dumps stay at the target, sealed (no row of the table in clear)
    deleted = ok(await c.call_tool("delete_app", {"project": "inst", "app": "shop", "confirm": "inst/shop",
                                                  "database": "delete", "wait_seconds": 90}))
    assert deleted, deleted
    deadline = time.monotonic() + 180
    while [d for d in ok(await c.call_tool("databases", {"project": "inst"}))["databases"] if d["name"] == "shop"]:
        assert time.monotonic() < deadline, "the database was not deleted"
        await asyncio.sleep(2)
    left = await asyncio.to_thread(kubectl, tb, "-n", NS, "get", "cronjobs,secrets", "-l", f"{LABEL_DATABASE}=shop",
                                   "-o", "name")
    assert not left.strip(), f"the deleted database's schedule or credentials stayed: {left}"
    prefix = f"testbed/{database_backup_prefix(tenant, 'inst', 'shop')}/"
    with s3.lock:
        stored = {k.removeprefix(prefix): o.data for k, o in s3.buckets[DUMPS_BUCKET].items() if k.startswith(prefix)}
    assert {dump["name"], safety["name"]} < set(stored), sorted(stored)  # and the final dump
    assert all(stored.values()), sorted(stored)
    assert len(stored[dump["name"]]) == dump["size_bytes"]
    assert not any(b"orders" in data for data in stored.values()), "a dump holds the table's name in clear"


async def test_installed_platform_serves_agents_and_upgrades_without_a_failed_call(
        platform_image: str, database_url: str, temporal_address: str, needs_node: Testbed, workdir: Path,
        kube: Kube) -> None:
    tb = needs_node
    tenant = f"inst{uuid.uuid4().hex[:4]}"
    for tag in ("v1", "v2", "v3"):
        await push_image("127.0.0.1:5000", f"{tenant}/web", tag, busybox_web_files(f"version {tag}"),
                         cmd=BUSYBOX_HTTPD)
    web = f"{NODE_IP}:5000/{tenant}/web"
    await postgres_image_pushed()
    with fake_s3(DUMPS_BUCKET) as s3:
        db_config, backup = database_settings(platform_image, s3)
        port = urlsplit(s3.endpoint).port
        assert port
        async with installed(tb, workdir, database_url, temporal_address, config=db_config, backup=backup,
                             forward=(port,)) as inst, fake_longhorn(kube):
            token = await asyncio.to_thread(token_for, tb, tenant)
            async with mcp(MCP_URL, token) as c:
                who = ok(await c.call_tool("whoami", {}))
                assert who["tenant"] == tenant and who["via"] == "http-token"
                first = ok(await c.call_tool("create_app", {"project": "inst", "name": "web", "port": 8080,
                                                            "source": {"image": f"{web}:v1"}, "wait_seconds": 240}))
                assert first["phase"] == "succeeded", first
                second = ok(await c.call_tool("deploy", {"project": "inst", "app": "web",
                                                         "source": {"image": f"{web}:v2"}, "wait_seconds": 240}))
                assert second["phase"] == "succeeded", second
                app = ok(await c.call_tool("apps", {"project": "inst", "app": "web"}))
                assert app["status"] == "running" and app["serving_deployment_id"] == second["deployment_id"]
                back = ok(await c.call_tool("rollback", {"project": "inst", "app": "web", "to": first["deployment_id"],
                                                         "wait_seconds": 240}))
                assert back["phase"] == "succeeded", back
                logs = ok(await c.call_tool("logs", {"project": "inst", "app": "web", "since": "1h"}))
                assert "lines" in logs["app_output"]

            # both replicas serve the same client's calls: stateless HTTP, any pod answers any request
            pods = server_pod_urls(tb)
            assert len(pods) == 2, pods
            for url in pods:
                async with mcp(url, token) as c:
                    assert ok(await c.call_tool("whoami", {}))["tenant"] == tenant

            worker_log = kubectl(tb, "-n", NS, "logs", "deployment/deploy-mcp-worker", "--all-containers")
            assert "forbidden" not in worker_log.lower(), worker_log[-3000:]

            # upgrade while a deploy is in flight: no call fails, the deploy completes
            failures: list[str] = []
            calls = 0
            stop = asyncio.Event()

            async def keep_calling() -> None:
                nonlocal calls
                while not stop.is_set():
                    try:
                        async with mcp(MCP_URL, token) as c:
                            r = await c.call_tool("apps", {"project": "inst", "app": "web"})
                            if r.is_error:
                                failures.append(r.content[0].text)  # type: ignore[union-attr]
                    except Exception as e:  # any failure of a call is what this counts
                        failures.append(repr(e))
                    calls += 1
                    await asyncio.sleep(0.2)

            async with mcp(MCP_URL, token) as c:
                slow = ok(await c.call_tool("deploy", {
                    "project": "inst", "app": "web", "source": {"image": f"{web}:v3"}, "wait_seconds": 0,
                    "health_check": {"type": "http", "path": "/index.html", "initial_delay_seconds": 15,
                                     "period_seconds": 1}}))
            caller = asyncio.create_task(keep_calling())
            try:
                started = time.monotonic()
                await inst["apply"]("test2")
                for d in ("deploy-mcp-server", "deploy-mcp-worker"):
                    await asyncio.to_thread(kubectl, tb, "-n", NS, "rollout", "status", f"deployment/{d}",
                                            "--timeout=300s")
                rolled = time.monotonic() - started
                async with mcp(MCP_URL, token) as c:
                    deadline = time.monotonic() + 300
                    while True:
                        flight = ok(await c.call_tool("deployments", {"deployment_id": slow["deployment_id"]}))
                        if flight["phase"] in ("succeeded", "failed"):
                            break
                        assert time.monotonic() < deadline, f"the deploy in flight never finished: {flight}"
                        await asyncio.sleep(1)
            finally:
                stop.set()
                try:
                    await asyncio.wait_for(caller, 60)
                except TimeoutError:
                    caller.cancel()
            assert flight["phase"] == "succeeded", flight
            assert not failures, f"{len(failures)} of {calls} calls failed during the upgrade: {failures[:5]}"
            images = kubectl(tb, "-n", NS, "get", "deployments", "-o", "jsonpath={..image}")
            assert f"{IMAGE}:test2" in images and f"{IMAGE}:test " not in images + " "

            async with mcp(MCP_URL, token) as c:
                await back_up_drop_and_restore(c, tb, kube, s3, tenant, f"{web}:v1")
                gone = ok(await c.call_tool("delete_app", {"project": "inst", "app": "web", "confirm": "inst/web"}))
                assert gone
            worker_log = kubectl(tb, "-n", NS, "logs", "deployment/deploy-mcp-worker", "--all-containers")
            assert "forbidden" not in worker_log.lower(), worker_log[-3000:]
            print(f"\nupgrade: server and worker rolled in {rolled:.1f} s; {calls} calls during it, 0 failed")
