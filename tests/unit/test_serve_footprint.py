"""What `deploy-mcp serve` loads: the Kubernetes client (kubernetes_asyncio, ~960 generated modules, about 38 MB
of resident memory) only when the server reads logs from the pod log API, not when Loki serves them; and the pod
log store still comes up when a kubeconfig is given (bench/concurrent_calls.py measures the memory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp_server.settings import load_settings
from mcp_server.wiring import open_log_store
from workflows.adapters.kube_logs import KubeLogStore
from workflows.adapters.loki import LokiLogStore

PROBE = ("import sys, mcp_server.cli, mcp_server.wiring, mcp_server.server; "
         "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'kubernetes_asyncio'))")


def test_the_server_modules_load_no_kubernetes_client() -> None:
    # a fresh interpreter: this test process has imported the Kubernetes client through other tests
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


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
