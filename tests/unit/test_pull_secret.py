"""The Harbor pull secret, from the operator's settings to the rendered Deployment: configured, the deploy input
names the namespace's pull Secret and the pods list it in `imagePullSecrets`; not configured, nothing changes.
Only the Secret's name travels (settings -> tool -> workflow input -> spec); its credentials are the worker's."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions, latest_version
from pydantic import ValidationError

from mcp_server.settings import Settings, load_settings
from mcp_server.wiring import platform_config
from tools.context import CallContext, PlatformConfig, Principal
from tools.ports import Store
from tools.records import AppRecord, DeploymentRecord, ReleaseClaim
from tools.releases import deploy_input
from workflows.deploy import release_spec
from workflows.domain.credentials import RobotCredentials
from workflows.render.namespace import project_labels
from workflows.render.pull_secret import PULL_SECRET_NAME, imagepull_secret
from workflows.render.release import release_deployment

HARBOR = {"url": "https://harbor.example.com/", "username": "admin", "password": "Pa55-word-X"}
DIGEST = "sha256:" + "b" * 64
SCHEMAS = (all_versions()[0], latest_version())  # the oldest shipped (the testbed's era) and the newest


def _settings(**values: Any) -> Settings:
    return load_settings(database={"url": "postgresql://u@db/x"}, **values)


def _claim() -> ReleaseClaim:
    now = datetime.now(UTC)
    app = AppRecord(id=uuid.uuid4(), tenant="acme", project="shop", name="web", namespace="dm-acme-shop-abc123",
                    hostname="web-shop-acme.apps.example", spec={}, status="deploying", serving_deployment_id=None,
                    created_at=now, updated_at=now)
    dep = DeploymentRecord(id=uuid.uuid4(), app_id=app.id, seq=2, release_seq=2, kind="deploy", phase="pending",
                           source={"image": "harbor.example.com/acme/web:1"}, image="harbor.example.com/acme/web",
                           image_digest=DIGEST, commit_sha=None, config={"port": 8080}, secrets_version=0,
                           rollback_of=None, workflow_id="deploy/acme/shop/web/r2", idempotency_key=None, error=None,
                           created_by="agent", created_at=now, finished_at=None, healthy_at=None)
    return ReleaseClaim(app=app, deployment=dep, created=True)


def _deployment_for(config: PlatformConfig) -> dict[str, Any]:
    """The Deployment the workflow would render for a deploy started under `config`."""
    context = CallContext(Principal("acme", "agent", frozenset(), "memory"), cast(Store, None), config)
    inp = deploy_input(context, _claim())
    return release_deployment(release_spec(inp, inp.image))


def _validate(obj: dict[str, Any]) -> None:
    for version in SCHEMAS:
        kubernetes_validate.validate(obj, version, strict=True)


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_without_harbor_the_pods_have_no_pull_secret() -> None:
    config = platform_config(_settings())
    assert config.image_pull_secret is None
    deployment = _deployment_for(config)
    assert "imagePullSecrets" not in _pod(deployment)
    _validate(deployment)


def test_with_harbor_the_pods_pull_with_the_namespace_secret() -> None:
    config = platform_config(_settings(harbor=HARBOR))
    assert config.image_pull_secret == PULL_SECRET_NAME == "deploy-mcp-registry"
    deployment = _deployment_for(config)
    assert _pod(deployment)["imagePullSecrets"] == [{"name": "deploy-mcp-registry"}]
    assert deployment["metadata"]["namespace"] == "dm-acme-shop-abc123"
    _validate(deployment)


def test_the_pull_secret_the_worker_writes_matches_the_name_and_host() -> None:
    """The activity renders this object (in the namespace the Deployment runs in); a kubelet pulling from the
    registry host finds the robot's login under `auths`."""
    robot = RobotCredentials("robot$acme+deploy-mcp", "Rob0tSecretValue")
    secret = imagepull_secret("harbor.example.com", robot, name=PULL_SECRET_NAME, namespace="dm-acme-shop-abc123",
                              labels=project_labels("acme", "shop"))
    _validate(secret)
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["labels"]["deploy-mcp/tenant"] == "acme"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    entry = config["auths"]["harbor.example.com"]
    assert entry["username"] == robot.name and entry["password"] == robot.secret
    assert base64.b64decode(entry["auth"]).decode() == f"{robot.name}:{robot.secret}"


def test_harbor_settings_need_credentials_and_never_show_the_password() -> None:
    s = _settings(harbor=HARBOR)
    assert s.harbor.url == "https://harbor.example.com" and s.harbor.retention_keep_last == 10
    assert s.harbor.password is not None and s.harbor.password.get_secret_value() == "Pa55-word-X"
    assert "Pa55-word-X" not in repr(s) and "Pa55-word-X" not in s.model_dump_json()
    with pytest.raises(ValidationError, match=r"harbor\.username and harbor\.password"):
        _settings(harbor={"url": "https://harbor.example.com"})
    with pytest.raises(ValidationError, match=r"harbor\.url"):
        _settings(harbor=HARBOR | {"url": "harbor.example.com"})
    with pytest.raises(ValidationError, match=r"harbor\.retention_keep_last"):
        _settings(harbor=HARBOR | {"retention_keep_last": 0})


def test_harbor_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_MCP_HARBOR_URL", "https://harbor.example.com")
    monkeypatch.setenv("DEPLOY_MCP_HARBOR_USERNAME", "admin")
    monkeypatch.setenv("DEPLOY_MCP_HARBOR_PASSWORD", "from-env-Secret1")
    monkeypatch.setenv("DEPLOY_MCP_HARBOR_RETENTION_KEEP_LAST", "3")
    s = _settings()
    assert s.harbor.password is not None and s.harbor.password.get_secret_value() == "from-env-Secret1"
    assert s.harbor.retention_keep_last == 3 and platform_config(s).image_pull_secret == PULL_SECRET_NAME
