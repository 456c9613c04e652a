"""The backup CronJob component (manifests/components/backup): a kustomize Component whose objects validate
strictly against the Kubernetes schemas, that renders through kustomize into an overlay, and whose Job runs
`deploy-mcp backup create` the way the image and the CLI expect: the platform image, non-root 10001, a
read-only root with an emptyDir /tmp, no API token, one run at a time, env from the config and its own
backup Secret."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, latest_version

from mcp_server.cli import parser

COMPONENT = Path(__file__).parents[2] / "manifests" / "components" / "backup"


def objects() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    out: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        out += [o for o in yaml.safe_load_all((COMPONENT / resource).read_text()) if o]
    return out


def cronjob() -> dict[str, Any]:
    (job,) = [o for o in objects() if o["kind"] == "CronJob"]
    return job


def test_every_object_validates_strictly() -> None:
    for obj in objects():
        for version in (all_versions()[0], latest_version()):  # the oldest schemas shipped, and the newest
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_job_runs_backup_create_safely() -> None:
    job = cronjob()
    assert job["apiVersion"] == "batch/v1" and job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"].split(":")[0] == "ghcr.io/deploy-mcp/deploy-mcp"
    args = parser().parse_args(c["args"])
    assert (args.cmd, args.backup_cmd, args.keep) == ("backup", "create", 14)
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert {"name": tmp["name"], "emptyDir": {"sizeLimit": "4Gi"}} in pod["volumes"]
    refs = [(kind, ref["name"]) for e in c["envFrom"] for kind, ref in e.items()]
    assert refs == [("configMapRef", "deploy-mcp-config"), ("secretRef", "deploy-mcp-secrets"),
                    ("secretRef", "deploy-mcp-backup")]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its kustomize) is not installed")
def test_kustomize_renders_the_component_into_an_overlay(tmp_path: Path) -> None:
    shutil.copytree(COMPONENT, tmp_path / "components" / "backup")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "components": ["../components/backup"],
        "images": [{"name": "ghcr.io/deploy-mcp/deploy-mcp", "newTag": "9.9.9"}]}))
    out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    (rendered,) = list(yaml.safe_load_all(out))
    kubernetes_validate.validate(rendered, latest_version(), strict=True)
    image = rendered["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/deploy-mcp/deploy-mcp:9.9.9"
