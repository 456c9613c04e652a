"""What the build Job of one commit needs (`BuildSpec`, `BuildImages`), validated when it is made: names,
commit SHA, image tag, BuildKit address, build secret names, paths inside the repository.

Pure, so the build activity, the Job renderer and the settings that name the build images check one model."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workflows.domain.git_urls import is_full_sha, parse_git_url
from workflows.domain.images import parse_image
from workflows.domain.names import env_name_problem, name_problem
from workflows.domain.specs import Spec

WORKSPACE = "/workspace"
SOURCE_DIR = f"{WORKSPACE}/src"
_REL_PATH = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


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
    pool: str = Field("build", description="`pool` label value of the nodes the Job runs on (and tolerates).")
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
