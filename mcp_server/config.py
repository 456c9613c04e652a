"""One settings object for every command, read from env vars (`DEPLOY_MCP_*`) and an optional TOML file.

Precedence, highest first: constructor arguments (the CLI's flags), environment variables, the TOML file
named by `DEPLOY_MCP_CONFIG`, the defaults below. Every field says what it means and why its default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from workflows.domain.build_spec import BuildImages

ALL_SCOPES = ("apps:read", "apps:write", "secrets:write", "volumes:write", "logs:read", "audit:read")


def default_state_dir() -> Path:
    """Where `deploy-mcp dev` keeps its data: FHS for root (a system service), XDG for a user."""
    if os.geteuid() == 0:
        return Path("/var/lib/deploy-mcp")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "deploy-mcp"


class Operator(BaseModel):
    """The principal of a stdio session: whoever started the process on this machine."""

    tenant: str = Field("local", description="Tenant the local operator acts in (DNS-1123 label).")
    subject: str = Field("operator", description="Name recorded in audit rows for stdio calls.")
    scopes: list[str] = Field(default_factory=lambda: list(ALL_SCOPES), description="Scopes granted.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DEPLOY_MCP_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Data of the embedded services (Postgres, Temporal), the dev secrets key and PID files.",
    )
    database_url: str | None = Field(
        None,
        description="Postgres URL. Unset: `dev` starts an embedded Postgres; `serve`/`worker` require it.",
    )
    temporal_address: str | None = Field(
        None, description="host:port of Temporal's frontend. Unset: `dev` starts a Temporal dev server."
    )
    temporal_namespace: str = Field("default", description="Temporal namespace for all workflows.")
    task_queue: str = Field("deploy-mcp", description="Temporal task queue the worker polls.")
    kubeconfig: Path | None = Field(
        None,
        description="Kubeconfig of the cluster to reconcile. Unset: `KUBECONFIG`, then in-cluster config; "
        "`dev` brings up the local testbed when it can.",
    )
    http_host: str = Field("127.0.0.1", description="Bind address of the streamable HTTP transport (loopback).")
    http_port: int = Field(8765, ge=1, le=65535, description="Port of the streamable HTTP transport.")
    http_path: str = Field("/mcp", description="URL path of the MCP endpoint.")
    public_url: str | None = Field(
        None, description="URL clients use to reach the server (OAuth resource id). Default: from host/port/path."
    )
    operator: Operator = Field(default_factory=Operator, description="The principal of stdio sessions.")
    platform_domain: str = Field(
        "localhost",
        description="Apps get <app>-<project>-<tenant>.apps.<platform_domain>; `localhost` resolves to "
        "127.0.0.1 in curl and browsers, so dev URLs work with no DNS.",
    )
    apps_url_port: int | None = Field(
        None, ge=1, le=65535, description="Port in app URLs when the edge does not listen on 443 (dev's testbed edge)."
    )
    runtime_class: str = Field("gvisor", description="RuntimeClass of every customer pod (the sandbox).")
    registry: str = Field("127.0.0.1:5000", description="OCI registry host[:port] builds push to.")
    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key encrypting secret values at rest. Unset: generated once into "
        "<state_dir>/secrets.key (fine for dev; set it explicitly in production).",
    )
    dev_postgres_port: int = Field(
        54329, ge=1, le=65535, description="`dev`'s embedded Postgres port (stable, so client configs keep working).")
    dev_temporal_port: int = Field(7233, ge=1, le=65535, description="`dev`'s Temporal dev server port.")
    insecure_registries: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost"],
        description="Registry hosts reached over plain http (loopback only by default).",
    )
    ingress_class: str | None = Field(None, description="IngressClass of app Ingresses; unset: the cluster default.")
    ready_timeout_seconds: int = Field(300, ge=10, le=3600, description="How long a release may take to be Ready.")
    rollback_window_seconds: int = Field(
        900, ge=0, le=86400, description="How long the previous release stays scaled after a switch (instant rollback)."
    )
    storage_classes: dict[str, str] = Field(
        default_factory=lambda: {"fast": "fast", "standard": "standard"},
        description="Platform volume class -> Kubernetes StorageClass (Longhorn classes in manifests/storage).",
    )
    git_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Git hosts (or addresses) allowed although they resolve to loopback/private/link-local "
        "addresses; by default builds may only clone from public hosts.",
    )
    git_ca_file: Path | None = Field(None, description="Extra CA bundle for internal git servers (PEM).")
    github_app_id: int | None = Field(
        None, ge=1,
        description="ID of the platform's GitHub App. Set (with its private key): builds of https repositories on "
        "`github_hosts` clone with an installation token the app mints for the repository's owner, unless the "
        "tenant gave its own credentials for the host with set_git_credentials.",
    )
    github_app_private_key_file: Path | None = Field(
        None, description="PEM private key the app's settings page generated (or `github_app_private_key`)."
    )
    github_app_private_key: SecretStr | None = Field(
        None, description="The same PEM as a value (an env var from a secret store); never logged."
    )
    github_api_url: str = Field(
        "https://api.github.com",
        description="GitHub's REST API the app talks to: https://<host>/api/v3 for GitHub Enterprise Server.",
    )
    github_app_owners: dict[str, list[str]] | None = Field(
        None,
        description="Tenant -> the GitHub accounts whose App installation it may clone with. Unset: every tenant "
        "may use every installation (fine when one team runs the platform); set it when tenants are strangers.",
    )
    github_hosts: list[str] = Field(
        default_factory=lambda: ["github.com"],
        description="Git hosts (`host` or `host:port`) served by that GitHub: their https://<host>/<owner>/<repo> "
        "URLs get installation tokens.",
    )
    build_dir: Path | None = Field(None, description="Local builder's work and storage. Default: <state_dir>/builds.")
    builder: Literal["local", "buildkit"] = Field(
        "local",
        description="`local`: buildah on the worker's host builds Dockerfile repos (dev, tests). `buildkit`: each "
        "commit is built by a Job on the nodes labelled pool=build against `buildkit_addr` (production).",
    )
    build_namespace: str = Field("deploy-mcp-builds", description="Namespace of the build Jobs (`buildkit`).")
    buildkit_addr: str = Field("tcp://buildkitd.deploy-mcp-builds:1234", description="buildkitd address for Jobs.")
    buildkit_tls_secret: str | None = Field(
        None, description="Secret in build_namespace with ca.pem/cert.pem/key.pem for buildkitd's mTLS.")
    build_registry_secret: str | None = Field(
        None, description="dockerconfigjson Secret in build_namespace with push credentials for `registry`.")
    build_images: BuildImages = Field(
        default_factory=lambda: BuildImages(clone="alpine/git:2.45.2", railpack="ghcr.io/railwayapp/railpack:0.2.2",
                                            buildctl="moby/buildkit:v0.16.0-rootless"),
        description="Images of the build Job's steps (pin them; mirror them into your registry).",
    )
    build_cpu_millicores: int = Field(2000, ge=100, le=16000, description="CPU of each build step (request=limit).")
    build_memory_mib: int = Field(4096, ge=128, le=65536, description="Memory of each build step (request=limit).")
    release_retention_count: int = Field(
        10, ge=2, le=1000, description="Release objects kept per app in the cluster (rows are kept forever)."
    )
    release_retention_days: int = Field(30, ge=1, le=3650, description="Release objects older than this are pruned.")
    progress_wait_seconds: float = Field(
        60.0, ge=0, le=600, description="How long a tool waits for a workflow before returning its ids."
    )
    loki_url: str | None = Field(
        None,
        description="Base URL of the Loki the log tools read (e.g. http://loki-gateway.loki). Unset: they read "
        "the Kubernetes pod log API when a cluster is configured (live pods only, fine for dev), else none.",
    )
    loki_tenant: str | None = Field(
        None,
        description="Sent as X-Scope-OrgID when Loki runs multi-tenant (auth_enabled). Platform tenants are kept "
        "apart by the `tenant` label in every query, not by this.",
    )
    harbor_url: str | None = Field(
        None,
        description="Harbor (https://harbor.example.com) holding a private project per tenant. Set: every deploy "
        "ensures the tenant's project, a robot account and a retention rule, writes a pull Secret for "
        "`registry` into the project's namespace and lists it in the pods' imagePullSecrets; `registry` is then "
        "Harbor's registry host. Unset: no pull secrets.",
    )
    harbor_username: str | None = Field(None, description="Harbor user (or system robot) that may create projects, "
                                                          "project robots and retention policies.")
    harbor_password: SecretStr | None = Field(None, description="Its password; never logged or shown.")
    harbor_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) of Harbor's certificate when a private CA signed it. Unset: system CAs."
    )
    harbor_retention_keep_last: int = Field(
        10, ge=1, le=10000, description="Harbor's retention rule keeps this many last-pushed images per repository."
    )

    @field_validator("harbor_url")
    @classmethod
    def _harbor_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("https://", "http://")) or "@" in value:
            raise ValueError("must be an http(s) URL without credentials, e.g. https://harbor.example.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _harbor_credentials(self) -> Settings:
        if self.harbor_url and (not self.harbor_username or self.harbor_password is None):
            raise ValueError(
                "harbor_url is set, so harbor_username and harbor_password are needed too "
                "(DEPLOY_MCP_HARBOR_USERNAME, DEPLOY_MCP_HARBOR_PASSWORD)"
            )
        return self

    @model_validator(mode="after")
    def _github_app(self) -> Settings:
        keys = [k for k in (self.github_app_private_key_file, self.github_app_private_key) if k is not None]
        if self.github_app_id is not None and len(keys) != 1:
            raise ValueError("github_app_id needs exactly one of github_app_private_key_file or "
                             "github_app_private_key")
        if self.github_app_id is None and keys:
            raise ValueError("a GitHub App private key is set without github_app_id")
        if not self.github_api_url.startswith(("https://", "http://")):
            raise ValueError("github_api_url must be an http(s) URL, e.g. https://api.github.com")
        return self

    def github_app_private_key_pem(self) -> str | None:
        """The GitHub App's private key (read from its file when configured so), or None without an app."""
        if self.github_app_private_key is not None:
            return self.github_app_private_key.get_secret_value()
        if self.github_app_private_key_file is not None:
            return self.github_app_private_key_file.read_text()
        return None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("DEPLOY_MCP_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"DEPLOY_MCP_CONFIG names {config_file}, which is not a file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def resolved_database_url(self) -> str | None:
        """`DEPLOY_MCP_DATABASE_URL`, else the conventional `DATABASE_URL`."""
        return self.database_url or os.environ.get("DATABASE_URL") or None

    def resolved_kubeconfig(self) -> Path | None:
        if self.kubeconfig:
            return self.kubeconfig
        env = os.environ.get("KUBECONFIG")
        return Path(env.split(os.pathsep)[0]) if env else None

    def mcp_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}{self.http_path}"

    def apps_domain(self) -> str:
        return f"apps.{self.platform_domain}"


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
