"""The platform installed in the testbed as an operator installs it, and used only through its Service with an
MCP client: the image built by the project (image/Containerfile on the self-built Debian base) and pushed to
the testbed registry; `manifests/overlays/testbed` rendered with kustomize and applied (server with 2
replicas and the worker, each under its own ServiceAccount bound to the install's RBAC, migrations as their
init step); Postgres and Temporal are the suite's, outside the cluster, reached at the node address.

Then `whoami`, `create_app` from an image, `deploy`, `rollback`, runtime logs and `delete_app` through the
NodePort; both replicas answer; no 403 in the worker's log. Upgrade: the server and worker roll to a second
image tag while a deploy is in flight; the deploy completes and no call made during the rollout fails."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from tests.support.kustomize import render_text, write_testbed_install
from tests.support.platform import ok

pytestmark = [
    pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(1800),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("buildah") is None,
                       reason="building the platform image needs root and buildah (CI has both)"),
]
NS = "deploy-mcp-system"
NODE_PORT = 30765
MCP_URL = f"http://127.0.0.1:{NODE_PORT}/mcp"
IMAGE = "127.0.0.1:5000/deploy-mcp"
KEEP = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}


def kubectl(tb: Testbed, *args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run([str(tb.cache / "bin" / "kubectl"), f"--kubeconfig={tb.kubeconfig}", *args],
                          input=stdin, capture_output=True, text=True, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr.strip()[-3000:]}")
    return proc.stdout


@pytest.fixture(scope="module")
def platform_image() -> str:
    """The platform image in the testbed registry as `test` and `test2` (the upgrade's second tag)."""
    ref = build_platform_image(tag=f"{IMAGE}:test")
    for tag in ("test", "test2"):
        push_platform_image(None, ref, f"{IMAGE}:{tag}")
    return ref


def at_node(url: str) -> str:
    """`url` with its host replaced by the node address, as pods reach the host."""
    parts = urlsplit(url)
    netloc = parts.netloc.replace("127.0.0.1", NODE_IP).replace("localhost", NODE_IP)
    return urlunsplit(parts._replace(netloc=netloc))


@asynccontextmanager
async def installed(tb: Testbed, workdir: Path, database_url: str, temporal_address: str
                    ) -> AsyncIterator[dict[str, Any]]:
    pg_port = urlsplit(database_url).port
    temporal_port = int(temporal_address.rsplit(":", 1)[1])
    assert pg_port
    async with forwarded([6443, 5000, pg_port, temporal_port]):
        # the `kubernetes` Service: the testbed's API server has no endpoint reconciler
        kubectl(tb, "apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": [{"name": "https", "port": 6443}]}]}))
        install = workdir / f"install-{uuid.uuid4().hex[:6]}"
        config = {
            "DEPLOY_MCP_TEMPORAL__ADDRESS": f"{NODE_IP}:{temporal_port}",
            "DEPLOY_MCP_TEMPORAL__TASK_QUEUE": f"installed-{uuid.uuid4().hex[:6]}",
            "DEPLOY_MCP_HTTP__PUBLIC_URL": MCP_URL,
        }
        secrets = {"DATABASE_URL": at_node(database_url), "DEPLOY_MCP_SECRETS_KEY": Fernet.generate_key().decode()}

        async def apply(tag: str) -> None:
            write_testbed_install(install, config=config, secrets=secrets, image_tag=tag)
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
            # the workloads go; the namespace and the RBAC stay: they are the identity every other test's worker
            # runs under (devenv/service_accounts.py applied the same objects at testbed start)
            workloads = [o for o in yaml.safe_load_all(render_text(install)) if o and o["kind"] not in KEEP]
            kubectl(tb, "delete", "-f", "-", "--ignore-not-found", "--wait=false", check=False,
                    stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": workloads}))
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


async def test_installed_platform_serves_agents_and_upgrades_without_a_failed_call(
        platform_image: str, database_url: str, temporal_address: str, needs_node: Testbed, workdir: Path) -> None:
    tb = needs_node
    tenant = f"inst{uuid.uuid4().hex[:4]}"
    for tag in ("v1", "v2", "v3"):
        await push_image("127.0.0.1:5000", f"{tenant}/web", tag, busybox_web_files(f"version {tag}"),
                         cmd=BUSYBOX_HTTPD)
    web = f"{NODE_IP}:5000/{tenant}/web"
    async with installed(tb, workdir, database_url, temporal_address) as inst:
        token = await asyncio.to_thread(token_for, tb, tenant)
        async with mcp(MCP_URL, token) as c:
            who = ok(await c.call_tool("whoami", {}))
            assert who["tenant"] == tenant and who["via"] == "http-token"
            first = ok(await c.call_tool("create_app", {"project": "inst", "name": "web", "port": 8080,
                                                        "source": {"image": f"{web}:v1"}, "wait_seconds": 240}))
            assert first["phase"] == "succeeded", first
            second = ok(await c.call_tool("deploy", {"project": "inst", "app": "web", "source": {"image": f"{web}:v2"},
                                                     "wait_seconds": 240}))
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
            gone = ok(await c.call_tool("delete_app", {"project": "inst", "app": "web", "confirm": "inst/web"}))
            assert gone
        worker_log = kubectl(tb, "-n", NS, "logs", "deployment/deploy-mcp-worker", "--all-containers")
        assert "forbidden" not in worker_log.lower(), worker_log[-3000:]
        print(f"\nupgrade: server and worker rolled in {rolled:.1f} s; {calls} calls during it, 0 failed")
