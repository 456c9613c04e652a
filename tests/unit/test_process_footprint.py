"""What the processes load, since each module costs resident memory (bench/concurrent_calls.py measures it):
`serve` loads the Kubernetes client (kubernetes_asyncio, ~960 generated modules, about 38 MB) only when it reads
logs from the pod log API, not when Loki serves them, and the pod log store still comes up with a kubeconfig;
the worker, which serves no tool, loads neither the MCP SDK nor the HTTP server (about 25 MB); neither loads the
OpenTelemetry SDK or exporter unless tracing is configured; and the server still lists every tool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp_server.settings import load_settings
from mcp_server.wiring import open_log_store
from workflows.adapters.kube_logs import KubeLogStore
from workflows.adapters.loki import LokiLogStore


def loaded(modules: str, packages: set[str]) -> list[str]:
    """The modules of `packages` that importing `modules` loads, in a fresh interpreter (this test process has
    imported everything through other tests)."""
    probe = (f"import sys, {modules}; "
             f"print(' '.join(m for m in sys.modules if m.split('.')[0] in {sorted(packages)!r}))")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()


def test_the_server_modules_load_no_kubernetes_client() -> None:
    assert loaded("mcp_server.cli, mcp_server.wiring, mcp_server.server", {"kubernetes_asyncio"}) == []


def test_the_worker_loads_no_mcp_sdk_nor_http_server() -> None:
    assert loaded("mcp_server.worker, mcp_server.store", {"mcp", "starlette", "uvicorn"}) == []


def test_no_process_loads_the_tracing_sdk_unless_tracing_is_configured() -> None:
    # the API's no-op tracer is all the code touches without `telemetry.otlp_endpoint` (about 1.7 MB saved)
    sdk = {"opentelemetry.sdk", "opentelemetry.exporter", "temporalio.contrib.opentelemetry"}
    found = loaded("mcp_server.worker, mcp_server.store, mcp_server.cli, mcp_server.wiring, mcp_server.server",
                   {"opentelemetry", "temporalio"})
    assert [m for m in found if any(m == p or m.startswith(p + ".") for p in sdk)] == []


def test_the_server_still_registers_every_tool() -> None:
    from mcp_server.server import build_server  # noqa: F401 - the server module imports the tool families
    from tools import all_tools

    names = {spec.name for spec in all_tools()}
    assert {"create_app", "whoami", "apps", "get_audit_log", "volume"} <= names, names


async def test_loki_log_store_needs_no_cluster_client() -> None:
    settings = load_settings(loki={"url": "http://127.0.0.1:9"})
    async with open_log_store(settings, with_workflows=True) as logs:
        assert isinstance(logs, LokiLogStore)


async def test_a_kubeconfig_still_gives_the_pod_log_store(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    settings = load_settings(cluster={"kubeconfig": kubeconfig})
    async with open_log_store(settings, with_workflows=True) as logs:
        assert isinstance(logs, KubeLogStore)
