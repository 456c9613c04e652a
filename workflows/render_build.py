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
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workflows.git import GitCredentials, is_full_sha, parse_git_url
from workflows.images import parse_image
from workflows.names import env_name_problem, name_problem
from workflows.specs import (
    LABEL_APP,
    LABEL_COMMIT,
    LABEL_DEPLOYMENT_ID,
    LABEL_PROJECT,
    LABEL_TENANT,
    MANAGED_BY,
    Spec,
)

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_BUILD_ID = "deploy-mcp/build-id"
LABEL_STREAM = "deploy-mcp/stream"
STREAM_BUILD = "build"

BUILD_POOL = ("pool", "build")
DIGEST_MARKER = "DEPLOY_MCP_DIGEST="
"""The build container's last log line is `DEPLOY_MCP_DIGEST=sha256:<64 hex>`."""

WORKSPACE = "/workspace"
SOURCE_DIR = f"{WORKSPACE}/src"
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
DOCKERCONFIG_KEY = ".dockerconfigjson"
PULL_SECRET_NAME = "deploy-mcp-registry"  # noqa: S105 (a Secret object name, not a secret)
"""The pull Secret of a project's namespace (the tenant's Harbor robot), when Harbor is configured."""

TMP_DIR = "/tmp"  # noqa: S108 (an emptyDir of the build pod, in memory)
BUILD_UID = 1000
_REL_PATH = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --- registry credentials -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RobotCredentials:
    """A registry account (a Harbor robot): `name` as the registry expects it at login (robot$tenant+builder),
    `secret` its password. The repr never shows the secret; do not pass it through a workflow's history."""

    name: str
    secret: str = field(repr=False)


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


# --- the build spec -------------------------------------------------------------------------------------------


class BuildImages(Spec):
    """The images the build Job runs (operator settings; pin them by tag or digest)."""

    clone: str = Field(description="An image with git, sh and base64 (e.g. alpine/git).")
    railpack: str = Field(description="An image with the railpack CLI on PATH (for `railpack prepare`).")
    buildctl: str = Field(description="An image with buildctl and sh (e.g. moby/buildkit:<version>-rootless).")
    railpack_frontend: str = Field(
        "ghcr.io/railwayapp/railpack-frontend",
        description="The Railpack BuildKit frontend; use the version of the railpack CLI that made the plan.",
    )

    @field_validator("clone", "railpack", "buildctl", "railpack_frontend")
    @classmethod
    def _image(cls, value: str) -> str:
        parse_image(value)
        return value


def reserved_build_secret(name: str) -> bool:
    """Names the build Job's own environment uses, so an app secret cannot be passed under them."""
    return name.startswith(("GIT_", "DEPLOY_MCP_", "BUILDKIT_")) or name in (
        "HOME", "PATH", "DOCKER_CONFIG", "BUILD_SECRET_NAMES", "RAILPACK", "METADATA_FILE", "SOURCE_DIR", "TMPDIR")


def _rel_path_problem(value: str) -> str | None:
    if value == "":
        return None
    if not _REL_PATH.match(value) or any(part in (".", "..") or part.startswith("-") for part in value.split("/")):
        return (
            "must be a relative path inside the repository (letters, digits, '.', '_', '-' and '/'; no '..', no "
            "leading '/' or '-')"
        )
    return None


class BuildSpec(Spec):
    """Everything the build Job of one commit needs. Secret values are never here, only Secret names."""

    tenant: str
    project: str
    app: str
    build_id: str = Field(description="DNS label, unique per build; the Job is named build-<build_id>.")
    deployment_id: str | None = None
    namespace: str = Field(description="The build namespace, e.g. deploy-mcp-builds.")
    git_url: str
    commit_sha: str
    subdir: str = Field("", description="Directory of the app inside the repository; '' for the root.")
    dockerfile: str = Field("Dockerfile", description="Dockerfile path relative to `subdir` (dockerfile builds).")
    builder: Literal["railpack", "dockerfile"]
    image: str = Field(description="registry/tenant/app:<commit sha>: the tag the build pushes.")
    buildkit_addr: str = Field(description="buildkitd address, e.g. tcp://buildkitd.deploy-mcp-builds:1234.")
    buildkit_tls_secret: str | None = Field(
        None, description="Secret with ca.crt, tls.crt, tls.key for buildkitd's mTLS (buildctl --tlsdir)."
    )
    cache_ref: str = Field(description="Per-tenant registry cache, e.g. registry/tenant/cache:buildcache.")
    cache_key: str | None = Field(None, description="Railpack mount-cache key prefix; defaults to the tenant.")
    git_secret: str | None = Field(None, description="Secret with the git token or SSH key (see git_secret_body).")
    git_auth: Literal["token", "ssh"] = "token"
    registry_secret: str | None = Field(
        None, description="dockerconfigjson Secret with push access to image and cache_ref (imagepull_secret)."
    )
    build_secrets_secret: str | None = Field(None, description="Secret holding the app's build secrets by name.")
    build_secret_names: tuple[str, ...] = ()
    cpu_millicores: int = Field(1000, ge=100, le=16000)
    memory_mib: int = Field(1024, ge=128, le=65536)
    workspace_mib: int = Field(4096, ge=64, le=262144, description="Size limit of the source workspace.")
    deadline_seconds: int = Field(1800, ge=60, le=6 * 3600)
    ttl_seconds_after_finished: int = Field(3600, ge=60, le=7 * 86400)
    images: BuildImages

    @field_validator("tenant", "project", "app")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = name_problem(value)
        if problem:
            raise ValueError(f"name {problem}")
        return value

    @field_validator("build_id", "namespace")
    @classmethod
    def _label(cls, value: str, info: Any) -> str:
        limit = 57 if info.field_name == "build_id" else 63
        if not _DNS_LABEL.match(value) or len(value) > limit:
            raise ValueError(f"must be a DNS label (a-z, 0-9, '-') of at most {limit} characters")
        return value

    @field_validator("git_secret", "registry_secret", "build_secrets_secret", "buildkit_tls_secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and (not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", value) or len(value) > 253):
            raise ValueError("must be a Kubernetes object name")
        return value

    @field_validator("git_url")
    @classmethod
    def _git_url(cls, value: str) -> str:
        return parse_git_url(value).url

    @field_validator("commit_sha")
    @classmethod
    def _sha(cls, value: str) -> str:
        if not is_full_sha(value) or len(value) != 40:
            raise ValueError("must be a full 40-character lowercase hex commit SHA")
        return value

    @field_validator("subdir", "dockerfile")
    @classmethod
    def _rel(cls, value: str) -> str:
        value = value.strip("/") if value not in ("/", "") else ""
        problem = _rel_path_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("image", "cache_ref")
    @classmethod
    def _tagged(cls, value: str) -> str:
        ref = parse_image(value)
        if ref.digest is not None or ref.tag is None:
            raise ValueError("must name a tag, not a digest (the build pushes it)")
        return value

    @field_validator("buildkit_addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        if not re.match(r"^(tcp://[A-Za-z0-9.-]+:[0-9]{1,5}|unix:///[A-Za-z0-9._/-]+)$", value):
            raise ValueError("must be tcp://host:port or unix:///path")
        return value

    @field_validator("build_secret_names")
    @classmethod
    def _env_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            problem = env_name_problem(name)
            if problem:
                raise ValueError(f"build secret name {name[:64]!r} {problem}")
            if reserved_build_secret(name):
                raise ValueError(f"build secret name {name!r} is reserved by the build Job")
        if len(set(value)) != len(value):
            raise ValueError("build secret names must be unique")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BuildSpec:
        if self.build_secret_names and self.build_secrets_secret is None:
            raise ValueError("build_secret_names need build_secrets_secret (the Secret holding their values)")
        if self.git_auth == "ssh" and self.git_secret is None:
            raise ValueError("git_auth 'ssh' needs git_secret (the Secret with the deploy key)")
        return self

    @property
    def job_name(self) -> str:
        return build_job_name(self.build_id)

    @property
    def context_dir(self) -> str:
        return f"{SOURCE_DIR}/{self.subdir}" if self.subdir else SOURCE_DIR


def build_job_name(build_id: str) -> str:
    return f"build-{build_id}"


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

CLONE_SCRIPT = r"""set -eu
src="${SOURCE_DIR:-/workspace/src}"
creds="${GIT_CREDENTIALS_DIR:-/git-credentials}"
tmp="${TMPDIR:-/tmp}"
if [ -n "${GIT_TOKEN:-}" ]; then
  auth=$(printf '%s:%s' "${GIT_USERNAME:-x-access-token}" "$GIT_TOKEN" | base64 | tr -d '\n')
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader
  export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"
  unset GIT_TOKEN auth
fi
if [ -f "$creds/ssh-privatekey" ]; then
  mkdir -p "$tmp/ssh" && chmod 700 "$tmp/ssh"
  cp "$creds/ssh-privatekey" "$tmp/ssh/key" && chmod 600 "$tmp/ssh/key"
  strict=accept-new
  if [ -f "$creds/known_hosts" ]; then
    cp "$creds/known_hosts" "$tmp/ssh/known_hosts"
    strict=yes
  fi
  export GIT_SSH_COMMAND="ssh -F /dev/null -i $tmp/ssh/key -o IdentitiesOnly=yes -o BatchMode=yes \
-o StrictHostKeyChecking=$strict -o UserKnownHostsFile=$tmp/ssh/known_hosts"
fi
g() {
  git -c protocol.allow=never -c protocol.https.allow=always -c protocol.ssh.allow=always \
    -c http.followRedirects=false -c credential.helper= -c advice.detachedHead=false "$@"
}
g init -q --template= "$src"
cd "$src"
echo "fetching $GIT_SHA"
if ! g fetch -q --depth=1 --no-tags "$GIT_URL" "$GIT_SHA"; then
  echo "the server will not serve a commit by SHA; fetching all branches and tags"
  g fetch -q --no-tags "$GIT_URL" '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*'
fi
g checkout -q --detach "$GIT_SHA"
echo "checked out $(git rev-parse HEAD)"
"""
"""The clone container's script. The URL and SHA arrive as environment variables, never spliced into it."""

BUILD_SCRIPT = r"""set -eu
if [ "${RAILPACK:-0}" = 1 ] && [ -n "${BUILD_SECRET_NAMES:-}" ]; then
  hash=$(
    for name in $BUILD_SECRET_NAMES; do
      eval "value=\${$name}"
      printf '%s=%s\n' "$name" "$value"
    done | sha256sum | cut -d' ' -f1
  )
  set -- "$@" --opt "secrets-hash=$hash"
fi
buildctl "$@"
pattern='s/.*"containerimage\.digest" *: *"\(sha256:[0-9a-f]\{64\}\)".*/\1/p'
digest=$(sed -n "$pattern" "${METADATA_FILE:-/workspace/metadata.json}" | head -n 1)
if [ -z "$digest" ]; then echo "the build metadata has no containerimage.digest" >&2; exit 1; fi
echo "DEPLOY_MCP_DIGEST=$digest"
"""
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

    key, value = BUILD_POOL
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
