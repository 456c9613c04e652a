"""Registry credentials as a `kubernetes.io/dockerconfigjson` Secret: a project namespace's image pull secret,
or the build Job's push credentials (both from a Harbor robot account).

Pure; the Harbor activity renders the pull secret of a project, the build Job activity the push credentials."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from workflows.domain.credentials import RobotCredentials
from workflows.domain.labels import (
    LABEL_MANAGED_BY,
    MANAGED_BY,
)

DOCKERCONFIG_KEY = ".dockerconfigjson"
PULL_SECRET_NAME = "deploy-mcp-registry"  # noqa: S105 (a Secret object name, not a secret)


def dockerconfigjson(registry_host: str, robot: RobotCredentials) -> str:
    """The `~/.docker/config.json` that logs `robot` in to `registry_host` (host[:port])."""
    auth = base64.b64encode(f"{robot.name}:{robot.secret}".encode()).decode("ascii")
    entry = {"username": robot.name, "password": robot.secret, "auth": auth}
    return json.dumps({"auths": {registry_host: entry}}, sort_keys=True, separators=(",", ":"))


def imagepull_secret(
    registry_host: str,
    robot: RobotCredentials,
    *,
    name: str = PULL_SECRET_NAME,
    namespace: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A `kubernetes.io/dockerconfigjson` Secret for `registry_host`: the image pull secret of a project's
    namespace, or (in the build namespace) the push credentials of the build Job (`BuildSpec.registry_secret`)."""
    meta: dict[str, Any] = {"name": name, "labels": {LABEL_MANAGED_BY: MANAGED_BY, **(labels or {})}}
    if namespace is not None:
        meta["namespace"] = namespace
    encoded = base64.b64encode(dockerconfigjson(registry_host, robot).encode()).decode("ascii")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "kubernetes.io/dockerconfigjson",
        "data": {DOCKERCONFIG_KEY: encoded},
    }
