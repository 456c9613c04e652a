"""A kubeconfig for the platform's own ServiceAccount on the testbed, bound to the ClusterRole the install ships
(`manifests/base/rbac.yaml`), so the worker in the tests and in `dev` calls the API server with the rights a
real install gives it and not the testbed's `system:masters` token: a verb or resource the code uses and the
role lacks fails here with the 403 a real cluster would answer. Part of the dev and test harness.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from mcp_server.devenv.processes import ServiceError

REPO = Path(__file__).resolve().parents[2]
RBAC_MANIFEST = REPO / "manifests" / "base" / "rbac.yaml"
NAMESPACE = "deploy-mcp-system"


def _kubectl(kubectl: Path, admin: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(kubectl), f"--kubeconfig={admin}", *args], input=stdin, text=True,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise ServiceError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def service_account_objects(manifest: Path = RBAC_MANIFEST) -> list[dict[str, Any]]:
    """The ServiceAccounts, roles and bindings of the install, as the operator applies them."""
    return [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]


def service_account_kubeconfig(kubectl: Path, admin: Path, out: Path, account: str = "deploy-mcp-worker",
                               manifest: Path = RBAC_MANIFEST, timeout: float = 60.0) -> Path:
    """Apply the install's RBAC with the admin kubeconfig, wait for `account`'s token (legacy Secret-based on
    the testbed's 1.20) and write a kubeconfig at `out` with the admin's server and CA and that token only."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    docs = [ns, *service_account_objects(manifest)]
    _kubectl(kubectl, admin, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    deadline = time.monotonic() + timeout
    token = ""
    while not token:
        sa = json.loads(_kubectl(kubectl, admin, "-n", NAMESPACE, "get", "serviceaccount", account, "-o", "json"))
        for ref in sa.get("secrets") or []:
            secret = json.loads(_kubectl(kubectl, admin, "-n", NAMESPACE, "get", "secret", ref["name"], "-o", "json"))
            if secret.get("type") == "kubernetes.io/service-account-token" and "token" in (secret.get("data") or {}):
                token = base64.b64decode(secret["data"]["token"]).decode()
        if not token:
            if time.monotonic() > deadline:
                raise ServiceError(f"ServiceAccount {NAMESPACE}/{account} got no token within {timeout:.0f} s")
            time.sleep(0.5)
    admin_cfg = yaml.safe_load(admin.read_text())
    context = next(c for c in admin_cfg["contexts"] if c["name"] == admin_cfg["current-context"])
    cluster = next(c for c in admin_cfg["clusters"] if c["name"] == context["context"]["cluster"])
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": account, "preferences": {},
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account,
                                                   "namespace": NAMESPACE}}],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg))
    tmp.chmod(0o600)
    tmp.replace(out)
    return out
