"""The preflight outside a cluster's reach, on a real Postgres: the worker's check at start never raises and
stores its verdict for this host (the latest replaces the one before); `whoami` shows that summary to an
operator (scope platform:read: stdio, or a token created with it) and to no tenant's agent;
`deploy-mcp preflight --json` against an API server that does not answer exits 1 with the fix."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from pathlib import Path

from mcp.client import Client

from mcp_server.preflight import preflight_at_start
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import ALL_SCOPES, load_settings
from mcp_server.store import PgStore
from tests.support.platform import ok
from tests.support.processes import DEPLOY_MCP, platform_env
from tools.context import PlatformConfig, Principal
from workflows.adapters.kube import Kube
from workflows.domain.preflight import CheckResult, PreflightReport


def dead_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def whoami_client(store: PgStore, scopes: frozenset[str], via: str = "memory") -> Client:
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test"))
    return Client(build_server(deps, transport="memory", principal=Principal("acme", "someone", scopes, via)))


async def test_the_worker_records_its_preflight_and_operators_see_it(store: PgStore, tmp_path: Path) -> None:
    settings = load_settings(cluster={"kubeconfig": dead_kubeconfig(tmp_path)}, preflight={"timeout_seconds": 2})
    kube = await Kube.connect(settings.cluster.kubeconfig)
    kube.timeout = 2
    try:
        report = await preflight_at_start(kube, settings, store)
    finally:
        await kube.close()
    assert report is not None and not report.ok
    assert [r.check for r in report.missing] == ["api server"]

    async with whoami_client(store, frozenset({*ALL_SCOPES, "platform:read"})) as c:
        seen = ok(await c.call_tool("whoami", {}))["preflight"]
    assert seen["host"] == socket.gethostname() and seen["ok"] is False and seen["missing_count"] == 1
    assert seen["missing"][0].startswith("api server: cannot be reached") and "KUBECONFIG" in seen["missing"][0]

    async with whoami_client(store, frozenset(ALL_SCOPES)) as c:  # a tenant's agent, every tenant scope
        assert ok(await c.call_tool("whoami", {}))["preflight"] is None

    # the next start replaces this host's row
    await store.record_preflight(socket.gethostname(), PreflightReport(results=[
        CheckResult(check="runtime class gvisor", status="ok", detail="exists")]))
    async with whoami_client(store, frozenset({"platform:read"})) as c:
        seen = ok(await c.call_tool("whoami", {}))["preflight"]
    assert (seen["ok"], seen["missing_count"], seen["missing"]) == (True, 0, [])


async def test_the_cli_exits_1_with_json_when_the_api_server_does_not_answer(database_url: str,
                                                                             temporal_address: str,
                                                                             tmp_path: Path) -> None:
    env = platform_env(database_url, temporal_address, "unused", tmp_path / "state",
                       PREFLIGHT__TIMEOUT_SECONDS="2")
    env["KUBECONFIG"] = str(dead_kubeconfig(tmp_path))
    done = await asyncio.to_thread(subprocess.run, [DEPLOY_MCP, "preflight", "--json"], env=env,
                                   capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ok"] is False
    assert answer["results"][0]["check"] == "api server" and answer["results"][0]["fix"]
