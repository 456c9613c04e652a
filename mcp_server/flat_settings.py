"""The settings' flat names from before they were grouped, and the sources that still accept them.

Deployments written against the flat layout (`DEPLOY_MCP_HARBOR_URL`, `harbor_url = ...` in the TOML file,
`DATABASE_URL`, `KUBECONFIG`) keep working: every flat name is an alias of one grouped setting. Kept apart
from `mcp_server.settings` so that module reads as what each setting means, not how old names are mapped.

The rule when both spellings are given: the sources keep their order (flags, then environment, then file),
and within one source the grouped name wins over its flat alias.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

ENV_PREFIX = "DEPLOY_MCP_"
NESTED = "__"

FLAT_NAMES: dict[str, tuple[str, str]] = {
    "database_url": ("database", "url"),
    "temporal_address": ("temporal", "address"),
    "temporal_namespace": ("temporal", "namespace"),
    "task_queue": ("temporal", "task_queue"),
    "http_host": ("http", "host"),
    "http_port": ("http", "port"),
    "http_path": ("http", "path"),
    "public_url": ("http", "public_url"),
    "dev_postgres_port": ("dev", "postgres_port"),
    "dev_temporal_port": ("dev", "temporal_port"),
    "kubeconfig": ("cluster", "kubeconfig"),
    "runtime_class": ("cluster", "runtime_class"),
    "ingress_class": ("cluster", "ingress_class"),
    "storage_classes": ("cluster", "storage_classes"),
    "node_failure_seconds": ("cluster", "node_failure_seconds"),
    "platform_domain": ("apps", "platform_domain"),
    "apps_url_port": ("apps", "url_port"),
    "ready_timeout_seconds": ("releases", "ready_timeout_seconds"),
    "rollback_window_seconds": ("releases", "rollback_window_seconds"),
    "release_retention_count": ("releases", "retention_count"),
    "release_retention_days": ("releases", "retention_days"),
    "progress_wait_seconds": ("progress", "wait_seconds"),
    "registry": ("image_registry", "host"),
    "insecure_registries": ("image_registry", "insecure_hosts"),
    "harbor_url": ("harbor", "url"),
    "harbor_username": ("harbor", "username"),
    "harbor_password": ("harbor", "password"),
    "harbor_ca_file": ("harbor", "ca_file"),
    "harbor_retention_keep_last": ("harbor", "retention_keep_last"),
    "git_allowed_hosts": ("git", "allowed_hosts"),
    "git_ca_file": ("git", "ca_file"),
    "github_app_id": ("github_app", "id"),
    "github_app_private_key_file": ("github_app", "private_key_file"),
    "github_app_private_key": ("github_app", "private_key"),
    "github_api_url": ("github_app", "api_url"),
    "github_app_owners": ("github_app", "owners"),
    "github_hosts": ("github_app", "hosts"),
    "builder": ("build", "builder"),
    "build_dir": ("build", "dir"),
    "build_namespace": ("build", "namespace"),
    "buildkit_addr": ("build", "buildkit_addr"),
    "buildkit_tls_secret": ("build", "buildkit_tls_secret"),
    "build_registry_secret": ("build", "registry_secret"),
    "build_images": ("build", "images"),
    "build_cpu_millicores": ("build", "cpu_millicores"),
    "build_memory_mib": ("build", "memory_mib"),
    "loki_url": ("loki", "url"),
    "loki_tenant": ("loki", "tenant"),
}
"""Flat name -> (group, field). A flat name may carry a nested tail as before (`build_images__clone`)."""

CONVENTIONAL_NAMES: dict[str, tuple[str, str]] = {
    "DATABASE_URL": ("database", "url"),
    "KUBECONFIG": ("cluster", "kubeconfig"),
}
"""Unprefixed env vars other tools also read; below every other source, as they were before grouping."""


def merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """`low` updated by `high`, tables merged key by key (a value in `high` wins)."""
    merged = dict(low)
    for key, value in high.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def regroup(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments or a TOML file's tables with flat names moved into their groups; a grouped name
    given too wins over its flat alias."""
    grouped: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        target = FLAT_NAMES.get(key)
        if target is None:
            grouped[key] = value
        else:
            group, field = target
            flat.setdefault(group, {})[field] = value
    return merge(flat, grouped)


class Regrouped(PydanticBaseSettingsSource):
    """Another source (the keyword arguments, the TOML file) with its flat names regrouped."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # never asked: __call__ hands over the inner source's whole mapping
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return regroup(self.inner())

    def __repr__(self) -> str:
        return f"Regrouped({self.inner!r})"


def _flat_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`DEPLOY_MCP_HARBOR_URL` -> `DEPLOY_MCP_HARBOR__URL`, tails kept (`..._BUILD_IMAGES__CLONE`)."""
    renamed = {}
    for key, value in environ.items():
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        head, sep, tail = upper.removeprefix(ENV_PREFIX).partition(NESTED)
        target = FLAT_NAMES.get(head.lower())
        if target is not None:
            renamed[ENV_PREFIX + NESTED.join(target).upper() + sep + tail] = value
    return renamed


def _conventional_env(environ: Mapping[str, str]) -> dict[str, str]:
    """`DATABASE_URL` and the first file of `KUBECONFIG`, when set and not empty."""
    renamed = {}
    for name, target in CONVENTIONAL_NAMES.items():
        value = environ.get(name)
        if name == "KUBECONFIG" and value:
            value = value.split(os.pathsep)[0]
        if value:
            renamed[ENV_PREFIX + NESTED.join(target).upper()] = value
    return renamed


class RenamedEnv(EnvSettingsSource):
    """Environment variables read under other names: pydantic-settings' own env source (so JSON values and
    `__` tails are parsed exactly as for the grouped names) over a renamed copy of the environment."""

    def __init__(self, settings_cls: type[BaseSettings], rename: Callable[[Mapping[str, str]], dict[str, str]]
                 ) -> None:
        self.rename = rename  # before super().__init__, which loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # the one hook pydantic-settings gives for where variables come from (its dotenv source uses it too)
        renamed = self.rename(os.environ)
        return {k if self.case_sensitive else k.lower(): v for k, v in renamed.items()}

    @classmethod
    def flat(cls, settings_cls: type[BaseSettings]) -> RenamedEnv:
        return cls(settings_cls, _flat_env)

    @classmethod
    def conventional(cls, settings_cls: type[BaseSettings]) -> RenamedEnv:
        return cls(settings_cls, _conventional_env)
