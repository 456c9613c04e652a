"""The context every tool runs in: who is calling, what the platform offers, the audit row being written.

The server sets it for the duration of one `tools/call` (see `mcp_server/server.py`); a tool reads it with
`call()`. A context variable rather than a parameter keeps the tools' MCP signatures exactly the agent's
arguments.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp.types import ToolAnnotations
from pydantic import BaseModel

from tools.errors import Forbidden, InvalidInput, Unavailable, from_store
from tools.ports import ClusterPlanner, Images, LogStore, Store, StoreError, Workflows, WorkflowsUnavailable
from workflows.adapters.github_app import GitHubApp
from workflows.domain.secretbox import SecretBox
from workflows.domain.specs import NODE_FAILURE_SECONDS


@dataclass(frozen=True)
class Principal:
    """Who is calling: a subject acting in one tenant with some scopes."""

    tenant: str
    subject: str
    scopes: frozenset[str]
    via: str  # "stdio", "http-token", "memory": how the principal was established
    read_only: bool = False  # the token offers only read-only tools (`tools.surface`)
    toolsets: frozenset[str] | None = None  # the token offers only these toolsets; None: all the server offers

    def has(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class PlatformConfig:
    """The settings tools need, handed down from `mcp_server.settings.Settings`."""

    apps_domain: str
    progress_wait_seconds: float = 60.0
    apps_url_port: int | None = None
    runtime_class: str | None = "gvisor"
    ingress_class: str | None = None
    node_failure_seconds: int = NODE_FAILURE_SECONDS
    ready_timeout_seconds: int = 300
    rollback_window_seconds: int = 900
    storage_classes: dict[str, str] = field(default_factory=lambda: {"fast": "fast", "standard": "standard"})
    registry: str = "127.0.0.1:5000"
    git_allowed_hosts: tuple[str, ...] = ()
    git_ca_file: Path | None = None
    retain_releases: int = 10
    retain_days: int = 30
    image_pull_secret: str | None = None  # Harbor configured: the namespace's pull Secret releases list
    backup_max_age_hours: float = 26.0  # the operator's whoami warns when the last good backup is older
    reconcile_enabled: bool = False  # the worker observes apps: status is what it saw (`tools.status`)
    reconcile_stale_seconds: float = 90.0  # an observation older than this says the reconciler is not running
    database_images: dict[int, str] = field(default_factory=lambda: {15: "ghcr.io/deploy-mcp/postgres:15"})
    database_default_version: int = 15
    database_volume_class: str = "fast"
    database_default_size_gib: int = 5
    database_max_size_gib: int = 100
    database_ready_timeout_seconds: int = 300
    edge_name: str | None = None  # custom domains CNAME here (settings dns.edge_hostname; default edge.<apps domain>)
    edge_addresses: tuple[str, ...] = ()  # an apex custom domain's A/AAAA (settings dns.edge_addresses)
    domain_verify_hours: float = 72.0
    domain_max_backoff_seconds: float = 600.0
    domain_recheck_seconds: float = 3600.0
    max_domains_per_app: int = 10
    hooks_url: str | None = None  # where git webhooks are posted: <origin of http.public_url>/hooks/git


@dataclass
class AuditNotes:
    """What a tool adds to its audit row while it runs."""

    workflow_id: str | None = None
    k8s_refs: list[str] = field(default_factory=list)


@dataclass
class CallContext:
    principal: Principal
    store: Store
    config: PlatformConfig
    workflows: Workflows | None = None
    images: Images | None = None
    secretbox: SecretBox | None = None
    logs: LogStore | None = None
    github_app: GitHubApp | None = None
    planner: ClusterPlanner | None = None  # `plan=true`: the cluster's dry run; None: plans are not validated
    audit: AuditNotes = field(default_factory=AuditNotes)

    def require_workflows(self) -> Workflows:
        if self.workflows is None:
            raise Unavailable(
                "This platform has no cluster and worker configured, so apps cannot be changed now.",
                hint="Read tools still work. The operator should set KUBECONFIG (or run `deploy-mcp dev` as "
                     "root for the local testbed) and start `deploy-mcp worker`.",
            )
        return self.workflows

    def require_images(self) -> Images:
        if self.images is None:
            raise Unavailable("No image registry client is configured.", hint="Tell the operator.")
        return self.images

    def require_secretbox(self) -> SecretBox:
        if self.secretbox is None:
            raise Unavailable("No secrets key is configured, so secret values cannot be stored.",
                              hint="The operator should set DEPLOY_MCP_SECRETS_KEY.")
        return self.secretbox

    def require(self, scope: str) -> None:
        if not self.principal.has(scope):
            raise Forbidden(
                f"This call needs the scope `{scope}`; your credential has {sorted(self.principal.scopes)}.",
                hint="Ask the operator for a token with that scope (`deploy-mcp token create --scope ...`).",
            )


_current: contextvars.ContextVar[CallContext] = contextvars.ContextVar("deploy_mcp_call")


def call() -> CallContext:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("a tool ran outside a deploy-mcp tool call (no CallContext set)") from None


def enter_call(ctx: CallContext) -> contextvars.Token[CallContext]:
    return _current.set(ctx)


def exit_call(token: contextvars.Token[CallContext]) -> None:
    _current.reset(token)


@dataclass(frozen=True)
class ToolSpec:
    """One agent-facing tool: the function the SDK wraps, and what the server checks before running it."""

    fn: Callable[..., Any]
    name: str
    title: str
    scope: str | None
    annotations: ToolAnnotations
    secret_args: frozenset[str] = frozenset()
    toolset: str = "apps"
    """The family a server setting can select (`TOOLSETS`); by default the module's (`tools.volumes` -> volumes)."""


REGISTRY: list[ToolSpec] = []

TOOLSETS = ("apps", "logs", "volumes", "domains", "databases", "admin")
_MODULE_TOOLSETS = {"logs": "logs", "builds": "logs", "volumes": "volumes", "domains": "domains",
                    "databases": "databases", "audit": "admin", "identity": "admin"}


def _module_toolset(module: str) -> str:
    return _MODULE_TOOLSETS.get(module.rsplit(".", 1)[-1], "apps")

# U+0000 and lone surrogates: no name, value, environment variable, Postgres text or UTF-8 byte string holds them.
_UNHOLDABLE = re.compile(r"[\x00\ud800-\udfff]")


def check_text(field: str, value: Any) -> None:
    """Refuse U+0000 and lone surrogates anywhere in an argument (map keys too), naming where. Checked for every
    tool before it runs: otherwise they fail deep down (Postgres, Temporal, a container's environment) as
    crashes instead of errors the agent can act on. The value is not echoed (it may be a secret)."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, str):
        m = _UNHOLDABLE.search(value)
        if m:
            what = "U+0000 (NUL)" if m[0] == "\x00" else f"a lone surrogate (U+{ord(m[0]):04X})"
            raise InvalidInput(field, f"contains {what} at character {m.start()}, which the platform cannot store",
                               "remove it; send text as valid UTF-8")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(f"{field} (a key)", k)
            check_text(f"{field}.{k}", v)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_text(f"{field}[{i}]", v)


def tool(
    *,
    title: str,
    scope: str | None,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    secret_args: frozenset[str] = frozenset(),
    toolset: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a tool. `scope` is checked before the tool runs; `secret_args` are redacted whole in audit.
    The tool runs inside the translation of the store's errors into the agent's (`tools.errors.from_store`)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        assert inspect.iscoroutinefunction(fn), f"tool {fn.__name__} must be async"

        # functools.wraps keeps the signature and annotations the SDK reads the tool's schema from.
        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> Any:
            for name, value in kwargs.items():
                check_text(name, value)
            try:
                return await fn(*args, **kwargs)
            except StoreError as e:
                raise from_store(e) from e
            except WorkflowsUnavailable as e:
                raise Unavailable(
                    "The platform's workflow service cannot be reached now, so nothing was started or stopped.",
                    hint="Call again in a minute with the same arguments (and the same `idempotency_key`, so a "
                         "change is made once); if it persists, tell the operator.") from e

        REGISTRY.append(
            ToolSpec(
                fn=run,
                name=fn.__name__,
                title=title,
                scope=scope,
                annotations=ToolAnnotations(
                    title=title,
                    read_only_hint=read_only,
                    destructive_hint=destructive,
                    idempotent_hint=idempotent,
                    open_world_hint=open_world,
                ),
                secret_args=secret_args,
                toolset=toolset or _module_toolset(fn.__module__),
            )
        )
        return run

    return register
