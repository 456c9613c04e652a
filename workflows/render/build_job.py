"""The production build of one commit, rendered as plain Kubernetes objects: the build Job, the Secret holding
the git credentials it clones with, and the registry Secrets (dockerconfigjson) for pushing and pulling.

Pure functions, like `workflows.render`: the workflow renders and an activity only sends what was rendered.

The Job (one pod, never retried, on the build pool):
1. init container `clone`: `git init` + `git fetch --depth 1 <url> <sha>` (all branches and tags when the server
   will not serve a commit by SHA) + `git checkout <sha>` into an emptyDir. A token comes from the git Secret
   through `secretKeyRef` and reaches git as an `http.extraHeader` in GIT_CONFIG_* environment variables; an SSH
   deploy key is mounted read-only and copied to a 0600 file in memory (ssh refuses group-readable keys). No
   secret ever appears in the rendered Job or on a command line.
2. init container `plan` (Railpack only): `railpack prepare <dir> --plan-out ... --info-out ...`, with the names of
   the app's build secrets passed as `--env NAME` (values from the environment, as Railpack documents).
3. container `build`: `buildctl --addr <buildkitd> build` with the Railpack frontend (`gateway.v0`,
   `source=<railpack-frontend image>`) or `dockerfile.v0`, `--output type=image,name=<image>,push=true`, a
   per-tenant registry cache (`--export-cache type=registry,ref=<cache>,mode=max` + `--import-cache`), app secrets
   as `--secret id=NAME,env=NAME`, and `--metadata-file`; then it prints the pushed digest
   (`containerimage.digest`) on a last line `DEPLOY_MCP_DIGEST=sha256:...` that the worker reads from the log.

Every container runs non-root, without privilege escalation or capabilities, with a read-only root file system;
the pod gets no service-account token.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from workflows.domain.build_spec import WORKSPACE, BuildSpec
from workflows.domain.credentials import GitCredentials
from workflows.domain.labels import (
    LABEL_APP,
    LABEL_BUILD_ID,
    LABEL_COMMIT,
    LABEL_DEPLOYMENT_ID,
    LABEL_MANAGED_BY,
    LABEL_PROJECT,
    LABEL_STREAM,
    LABEL_TENANT,
    MANAGED_BY,
    STREAM_BUILD,
)
from workflows.render.pull_secret import DOCKERCONFIG_KEY

POOL_LABEL = "pool"
"""Node label key of the pools; the build pool's value is `BuildSpec.pool` (`build` unless configured)."""
DIGEST_MARKER = "DEPLOY_MCP_DIGEST="
"""The build container's last log line is `DEPLOY_MCP_DIGEST=sha256:<64 hex>`."""
PLAN_DIR = f"{WORKSPACE}/plan"
PLAN_FILE = f"{PLAN_DIR}/railpack-plan.json"
INFO_FILE = f"{PLAN_DIR}/railpack-info.json"
METADATA_FILE = f"{WORKSPACE}/metadata.json"
GIT_CREDENTIALS_DIR = "/git-credentials"
DOCKER_CONFIG_DIR = "/docker-config"
BUILDKIT_TLS_DIR = "/buildkit-tls"

GIT_TOKEN_KEY = "token"  # noqa: S105 (a Secret key name, not a secret)
GIT_USERNAME_KEY = "username"
GIT_SSH_KEY = "ssh-privatekey"
"""The key of a kubernetes.io/ssh-auth Secret."""
GIT_KNOWN_HOSTS_KEY = "known_hosts"
"""The pull Secret of a project's namespace (the tenant's Harbor robot), when Harbor is configured."""

TMP_DIR = "/tmp"  # noqa: S108 (an emptyDir of the build pod, in memory)
BUILD_UID = 1000


def build_labels(spec: BuildSpec) -> dict[str, str]:
    """Labels of the Job and its pod: who the build is for, and stream=build for the logs."""
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_TENANT: spec.tenant,
        LABEL_PROJECT: spec.project,
        LABEL_APP: spec.app,
        LABEL_BUILD_ID: spec.build_id,
        LABEL_COMMIT: spec.commit_sha,
        LABEL_STREAM: STREAM_BUILD,
    }
    if spec.deployment_id:
        labels[LABEL_DEPLOYMENT_ID] = spec.deployment_id
    return labels


# --- the git credentials Secret -------------------------------------------------------------------------------


def git_secret_body(spec: BuildSpec, credentials: GitCredentials) -> dict[str, Any]:
    """The Secret `spec.git_secret` names, with the keys the clone container reads: `token` (+ `username`) for
    https, `ssh-privatekey` (+ `known_hosts`) for ssh. Delete it when the build is over."""
    if spec.git_secret is None:
        raise ValueError("spec.git_secret names no Secret")
    data: dict[str, str] = {}
    if spec.git_auth == "token":
        if not credentials.token:
            raise ValueError("git_auth 'token' needs a token in the credentials")
        data[GIT_TOKEN_KEY] = credentials.token
        data[GIT_USERNAME_KEY] = credentials.username
    else:
        if not credentials.ssh_private_key:
            raise ValueError("git_auth 'ssh' needs an SSH private key in the credentials")
        data[GIT_SSH_KEY] = credentials.ssh_private_key.strip() + "\n"
        if credentials.ssh_known_hosts:
            data[GIT_KNOWN_HOSTS_KEY] = credentials.ssh_known_hosts.strip() + "\n"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec.git_secret, "namespace": spec.namespace, "labels": build_labels(spec)},
        "type": "Opaque",
        "immutable": True,
        "data": {k: base64.b64encode(v.encode()).decode("ascii") for k, v in data.items()},
    }


def build_secrets_body(spec: BuildSpec, values: Mapping[str, str]) -> dict[str, Any]:
    """The Secret `spec.build_secrets_secret` names: the app's build secrets the build steps read by name
    (through secretKeyRef). Delete it when the build is over."""
    assert spec.build_secrets_secret is not None
    data = {name: base64.b64encode(values[name].encode()).decode("ascii") for name in spec.build_secret_names}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "immutable": True, "data": data,
            "metadata": {"name": spec.build_secrets_secret, "namespace": spec.namespace, "labels": build_labels(spec)}}


# --- the Job --------------------------------------------------------------------------------------------------


def _script(name: str) -> str:
    """A shell script of `scripts/`, shipped beside this module as package data: kept as files so they can be
    read, linted and run as shell, not as Python strings."""
    return resources.files("workflows.render").joinpath("scripts", name).read_text(encoding="utf-8")


CLONE_SCRIPT = _script("clone.sh")
"""The clone container's script. The URL and SHA arrive as environment variables, never spliced into it."""

BUILD_SCRIPT = _script("build.sh")
"""The build container's script: `sh -c BUILD_SCRIPT build <buildctl args>`. Secret names are environment
variable names (checked), so `eval` only ever expands `${NAME}`; railpack gets a hash of the secret values
(`secrets-hash`) so its layer cache is invalidated when a secret changes, as Railpack documents."""


def _resources(spec: BuildSpec) -> dict[str, Any]:
    values = {"cpu": f"{spec.cpu_millicores}m", "memory": f"{spec.memory_mib}Mi"}
    return {"requests": dict(values), "limits": dict(values)}


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _base_env() -> list[dict[str, Any]]:
    return [{"name": "HOME", "value": TMP_DIR}]


def buildctl_args(spec: BuildSpec) -> list[str]:
    """The arguments of `buildctl` in the build container (no secret values: secrets go by name)."""
    args = ["--addr", spec.buildkit_addr]
    if spec.buildkit_tls_secret:
        args += ["--tlsdir", BUILDKIT_TLS_DIR]
    args += ["build", "--progress", "plain"]
    if spec.builder == "railpack":
        args += ["--frontend", "gateway.v0", "--opt", f"source={spec.images.railpack_frontend}"]
        args += ["--local", f"context={spec.context_dir}", "--local", f"dockerfile={PLAN_DIR}"]
        args += ["--opt", f"cache-key={spec.cache_key or spec.tenant}"]
    else:
        dockerfile_path = f"{spec.context_dir}/{spec.dockerfile}"
        directory, _, filename = dockerfile_path.rpartition("/")
        args += ["--frontend", "dockerfile.v0"]
        args += ["--local", f"context={spec.context_dir}", "--local", f"dockerfile={directory}"]
        args += ["--opt", f"filename={filename}"]
    args += ["--output", f"type=image,name={spec.image},push=true"]
    args += ["--export-cache", f"type=registry,ref={spec.cache_ref},mode=max"]
    args += ["--import-cache", f"type=registry,ref={spec.cache_ref}"]
    for name in spec.build_secret_names:
        args += ["--secret", f"id={name},env={name}"]
    args += ["--metadata-file", METADATA_FILE]
    return args


def build_job(spec: BuildSpec) -> dict[str, Any]:
    """The build Job of `spec` (batch/v1), ready for server-side apply in `spec.namespace`."""
    labels = build_labels(spec)
    workspace_mount: dict[str, Any] = {"name": "workspace", "mountPath": WORKSPACE}
    tmp_mount: dict[str, Any] = {"name": "tmp", "mountPath": TMP_DIR}
    volumes: list[dict[str, Any]] = [
        {"name": "workspace", "emptyDir": {"sizeLimit": f"{spec.workspace_mib}Mi"}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]

    clone_env = [
        *_base_env(),
        {"name": "GIT_URL", "value": spec.git_url},
        {"name": "GIT_SHA", "value": spec.commit_sha},
        {"name": "GIT_TERMINAL_PROMPT", "value": "0"},
        {"name": "GIT_ASKPASS", "value": ""},
        {"name": "GIT_CONFIG_NOSYSTEM", "value": "1"},
    ]
    clone_mounts: list[dict[str, Any]] = [workspace_mount, tmp_mount]
    if spec.git_secret is not None and spec.git_auth == "token":
        clone_env.append(_secret_env("GIT_TOKEN", spec.git_secret, GIT_TOKEN_KEY))
        clone_env.append(_secret_env("GIT_USERNAME", spec.git_secret, GIT_USERNAME_KEY, optional=True))
    elif spec.git_secret is not None:
        volumes.append(
            {
                "name": "git-credentials",
                # ssh wants the key unreadable by others; the script copies it to a 0600 file in memory
                "secret": {"secretName": spec.git_secret, "defaultMode": 0o400},
            }
        )
        clone_mounts.append({"name": "git-credentials", "mountPath": GIT_CREDENTIALS_DIR, "readOnly": True})
    clone = {
        "name": "clone",
        "image": spec.images.clone,
        "command": ["/bin/sh", "-c", CLONE_SCRIPT],
        "env": clone_env,
        "volumeMounts": clone_mounts,
        "resources": _resources(spec),
        "securityContext": _container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    init_containers = [clone]

    secret_env = [
        _secret_env(name, spec.build_secrets_secret, name)
        for name in spec.build_secret_names
        if spec.build_secrets_secret is not None
    ]
    if spec.builder == "railpack":
        plan_args = ["prepare", spec.context_dir, "--plan-out", PLAN_FILE, "--info-out", INFO_FILE]
        for name in spec.build_secret_names:
            plan_args += ["--env", name]  # a bare name: railpack reads the value from its environment
        # railpack downloads mise into /tmp/railpack/mise to resolve versions: a disk-backed /tmp, not memory
        volumes.append({"name": "plan-tmp", "emptyDir": {"sizeLimit": "2Gi"}})
        init_containers.append(
            {
                "name": "plan",
                "image": spec.images.railpack,
                "command": ["railpack"],
                "args": plan_args,
                "env": [*_base_env(), *secret_env],
                "volumeMounts": [workspace_mount, {"name": "plan-tmp", "mountPath": TMP_DIR}],
                "resources": _resources(spec),
                "securityContext": _container_security(),
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        )

    build_env = [
        *_base_env(),
        {"name": "BUILD_SECRET_NAMES", "value": " ".join(spec.build_secret_names)},
        {"name": "RAILPACK", "value": "1" if spec.builder == "railpack" else "0"},
        *secret_env,
    ]
    build_mounts: list[dict[str, Any]] = [workspace_mount, tmp_mount]
    if spec.registry_secret is not None:
        volumes.append(
            {
                "name": "docker-config",
                "secret": {
                    "secretName": spec.registry_secret,
                    "items": [{"key": DOCKERCONFIG_KEY, "path": "config.json"}],
                    "defaultMode": 0o440,
                },
            }
        )
        build_mounts.append({"name": "docker-config", "mountPath": DOCKER_CONFIG_DIR, "readOnly": True})
        build_env.append({"name": "DOCKER_CONFIG", "value": DOCKER_CONFIG_DIR})
    if spec.buildkit_tls_secret is not None:
        volumes.append(
            {"name": "buildkit-tls", "secret": {"secretName": spec.buildkit_tls_secret, "defaultMode": 0o440}}
        )
        build_mounts.append({"name": "buildkit-tls", "mountPath": BUILDKIT_TLS_DIR, "readOnly": True})
    build = {
        "name": "build",
        "image": spec.images.buildctl,
        "command": ["/bin/sh", "-c", BUILD_SCRIPT, "build"],
        "args": buildctl_args(spec),
        "env": build_env,
        "volumeMounts": build_mounts,
        "resources": _resources(spec),
        "securityContext": _container_security(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }

    key, value = POOL_LABEL, spec.pool
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "nodeSelector": {key: value},
        "tolerations": [{"key": key, "operator": "Equal", "value": value, "effect": "NoSchedule"}],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": BUILD_UID,
            "runAsGroup": BUILD_UID,
            "fsGroup": BUILD_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "initContainers": init_containers,
        "containers": [build],
        "volumes": volumes,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.job_name, "namespace": spec.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.deadline_seconds,
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def digest_from_log(log: str) -> str | None:
    """The digest the build container printed (`DEPLOY_MCP_DIGEST=sha256:...`, the last such line), or None."""
    found = None
    for line in log.splitlines():
        line = line.strip()
        if line.startswith(DIGEST_MARKER):
            value = line[len(DIGEST_MARKER) :]
            if re.fullmatch(r"sha256:[0-9a-f]{64}", value):
                found = value
    return found
