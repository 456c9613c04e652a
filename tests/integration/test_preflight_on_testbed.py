"""`deploy-mcp preflight` against the testbed's real API server (v1.20, RBAC on), as a ServiceAccount with the
worker's future identity, never the admin token.

What the test expects of a fresh testbed (mcp_server/devenv/testbed/README.md, up.sh, node-up.sh): the
required API versions are served (policy/v1beta1 for PDBs); node1 (and node2) are labelled `pool=run` when
the suite runs as root, and no node at all exists otherwise; no node is labelled `pool=build`; RuntimeClasses
`runc` (and `gvisor` when runsc built); no StorageClass, no IngressClass; no cert-manager CRD; the snapshot and
Longhorn CRDs only if an earlier test applied them. So that no earlier test can satisfy a check by accident,
the settings name a RuntimeClass, StorageClasses and an IngressClass unique to this run, a BuildKit address on
a free local port, and the ServiceAccount starts with only the reads preflight itself needs.

1. Before: every one of those is reported missing with a fix, every worker permission is denied, and the
   command exits 1 (both the in-process check and the CLI with the SA's kubeconfig, `--json`).
2. The prerequisites applied as an operator would: the RuntimeClass, StorageClasses and IngressClass, the
   cert-manager CRD (a minimal stand-in, the controller is not needed for the check) and the storage CRDs
   (manifests/storage/crds) where absent, a `pool=build` node (a Node object: its kubelet is irrelevant to
   labels and taints) and a `pool=run` one if the testbed has none, the worker's ClusterRole built from
   `workflows/domain/permissions.py` bound to the SA, and a TCP listener where BuildKit is expected.
3. After: nothing is missing and the CLI exits 0.
Everything the test created is deleted at the end (CRDs only if it created them).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.processes import free_port
from mcp_server.preflight import preflight
from mcp_server.settings import Settings, load_settings
from tests.support.processes import DEPLOY_MCP
from workflows.adapters.kube import Kube, register_kind
from workflows.domain.permissions import WORKER_PERMISSIONS
from workflows.domain.preflight import CERT_MANAGER_CRD, LONGHORN_CRD, PREFLIGHT_READS, SNAPSHOT_CRD, PreflightReport

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
register_kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False)
register_kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False)
register_kind("v1", "ServiceAccount", "serviceaccounts", True)


def cluster_role(name: str, permissions: Any) -> dict[str, Any]:
    rules = [{"apiGroups": [p.group], "resources": [p.resource], "verbs": [p.verb]} for p in permissions]
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": rules}


def binding(name: str, role: str, namespace: str, sa: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]}


def minimal_crd(name: str) -> dict[str, Any]:
    plural, group = name.split(".", 1)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": plural, "singular": plural[:-1], "kind": plural[:-1].capitalize()},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


class Run:
    """The objects this run creates, deleted in reverse at the end."""

    def __init__(self, admin: Kube) -> None:
        self.admin = admin
        self.created: list[dict[str, Any]] = []

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        made = await self.admin.create(obj)
        self.created.append(obj)
        return made

    async def cleanup(self) -> None:
        for obj in reversed(self.created):
            md = obj["metadata"]
            await self.admin.delete(obj["apiVersion"], obj["kind"], md.get("namespace"), md["name"])


@pytest.fixture
def admin(kube: Kube) -> Kube:
    return kube


async def sa_kubeconfig(admin: Kube, testbed: Testbed, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig that is the ServiceAccount (the testbed's admin kubeconfig with the SA's token)."""
    deadline = time.monotonic() + 60
    while not ((await admin.get("v1", "ServiceAccount", namespace, sa)) or {}).get("secrets"):
        assert time.monotonic() < deadline, "the token controller gave the ServiceAccount no token"
        await asyncio.sleep(0.2)
    account = await admin.get("v1", "ServiceAccount", namespace, sa)
    assert account is not None
    secret = await admin.get("v1", "Secret", namespace, account["secrets"][0]["name"])
    assert secret is not None
    return write_kubeconfig(testbed.kubeconfig, base64.b64decode(secret["data"]["token"]).decode(), path)


def write_kubeconfig(template: Path, token: str, path: Path) -> Path:
    config = yaml.safe_load(template.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def cli(kubeconfig: Path, settings_env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(kubeconfig.parent), "KUBECONFIG": str(kubeconfig), **settings_env}
    done = subprocess.run([DEPLOY_MCP, "preflight", "--json"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    return done.returncode, json.loads(done.stdout)


def by_check(report: PreflightReport) -> dict[str, str]:
    return {r.check: r.status for r in report.results}


async def test_preflight_reports_what_the_testbed_lacks_then_passes(admin: Kube, testbed: Testbed,
                                                                    tmp_path: Path) -> None:
    sfx = uuid.uuid4().hex[:6]
    buildkit_port = free_port()
    env = {
        "DEPLOY_MCP_CLUSTER__RUNTIME_CLASS": f"pf-{sfx}",
        "DEPLOY_MCP_CLUSTER__STORAGE_CLASSES": json.dumps({"fast": f"pf-fast-{sfx}", "standard": f"pf-std-{sfx}"}),
        "DEPLOY_MCP_CLUSTER__INGRESS_CLASS": f"pf-{sfx}",
        "DEPLOY_MCP_BUILD__BUILDER": "buildkit",
        "DEPLOY_MCP_BUILD__BUILDKIT_ADDR": f"tcp://127.0.0.1:{buildkit_port}",
        "DEPLOY_MCP_PREFLIGHT__TIMEOUT_SECONDS": "3",
    }
    nodes = await admin.list_objects("v1", "Node", None)
    run_pool = any((n["metadata"].get("labels") or {}).get("pool") == "run" for n in nodes)
    build_pool = any((n["metadata"].get("labels") or {}).get("pool") == "build" for n in nodes)
    crds = {c["metadata"]["name"] for c in await admin.list_objects("apiextensions.k8s.io/v1",
                                                                      "CustomResourceDefinition", None)}
    run = Run(admin)
    namespace, sa = f"pf-{sfx}", "worker"
    listener: asyncio.Server | None = None
    try:
        await run.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        await run.create({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": sa, "namespace": namespace}})
        await run.create(cluster_role(f"pf-reads-{sfx}", PREFLIGHT_READS))
        await run.create(binding(f"pf-reads-{sfx}", f"pf-reads-{sfx}", namespace, sa))
        kubeconfig = await sa_kubeconfig(admin, testbed, namespace, sa, tmp_path / "kubeconfig")
        settings: Settings = load_settings(**{
            "cluster": {"kubeconfig": kubeconfig, "runtime_class": f"pf-{sfx}", "ingress_class": f"pf-{sfx}",
                        "storage_classes": {"fast": f"pf-fast-{sfx}", "standard": f"pf-std-{sfx}"}},
            "build": {"builder": "buildkit", "buildkit_addr": f"tcp://127.0.0.1:{buildkit_port}"},
            "preflight": {"timeout_seconds": 3}})
        worker = await Kube.connect(kubeconfig)

        # 1. before
        try:
            before = await preflight(worker, settings)
        finally:
            await worker.close()
        status = by_check(before)
        expected_missing = {f"runtime class pf-{sfx}", f"storage class pf-fast-{sfx}", f"storage class pf-std-{sfx}",
                            f"ingress class pf-{sfx}", f"buildkit tcp://127.0.0.1:{buildkit_port}"}
        expected_missing |= {f"crd {c}" for c in (CERT_MANAGER_CRD, SNAPSHOT_CRD, LONGHORN_CRD) if c not in crds}
        expected_missing |= {f"node pool {p}" for p, present in (("run", run_pool), ("build", build_pool))
                             if not present}
        assert {c for c, s in status.items() if s == "missing"} >= expected_missing, status
        denied = [r for r in before.missing if r.check.startswith("permission ")]
        assert len(denied) == len(set(WORKER_PERMISSIONS)), denied  # the SA has no worker role yet
        assert all(r.fix for r in before.missing)
        assert status["api policy (PodDisruptionBudget)"] == "ok"
        code, answer = await asyncio.to_thread(cli, kubeconfig, env)
        assert code == 1 and answer["ok"] is False

        # 2. the prerequisites
        await run.create({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": f"pf-{sfx}"},
                          "handler": "runc"})
        for name in (f"pf-fast-{sfx}", f"pf-std-{sfx}"):
            await run.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                              "provisioner": "driver.longhorn.io"})
        await run.create({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                          "metadata": {"name": f"pf-{sfx}"}, "spec": {"controller": "example.com/preflight-test"}})
        if CERT_MANAGER_CRD not in crds:
            await run.create(minimal_crd(CERT_MANAGER_CRD))
        for path in sorted((REPO / "manifests/storage/crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition" and doc["metadata"]["name"] not in crds:
                    await run.create(doc)
        for pool, present in (("run", run_pool), ("build", build_pool)):
            if not present:
                await run.create({"apiVersion": "v1", "kind": "Node",
                                  "metadata": {"name": f"pf-{pool}-{sfx}", "labels": {"pool": pool}},
                                  "spec": {"taints": [{"key": "pool", "value": pool, "effect": "NoSchedule"}]}})
        await run.create(cluster_role(f"pf-worker-{sfx}", WORKER_PERMISSIONS))
        await run.create(binding(f"pf-worker-{sfx}", f"pf-worker-{sfx}", namespace, sa))
        listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", buildkit_port)

        # 3. after (RBAC and CRD establishment take a moment)
        deadline = time.monotonic() + 60
        while True:
            worker = await Kube.connect(kubeconfig)
            try:
                after = await preflight(worker, settings)
            finally:
                await worker.close()
            if after.ok or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert after.ok, [r for r in after.results if r.status == "missing"]
        code, answer = await asyncio.to_thread(cli, kubeconfig, env)
        assert code == 0 and answer["ok"] is True, answer
    finally:
        if listener is not None:
            listener.close()
        await run.cleanup()
