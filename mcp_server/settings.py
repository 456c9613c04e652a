"""One settings object for every command, in groups an operator thinks in (database, temporal, http, cluster,
apps, releases, registry, Harbor, GitHub App, git, build, Loki ...), each field saying what it means, its unit
and why its default.

Read from environment variables (`DEPLOY_MCP_<GROUP>__<FIELD>`, e.g. `DEPLOY_MCP_HARBOR__URL`; top-level ones
`DEPLOY_MCP_STATE_DIR`, `DEPLOY_MCP_SECRETS_KEY`) and the TOML file `DEPLOY_MCP_CONFIG` names (one table per
group). Precedence, highest first: constructor arguments (the CLI's flags), environment variables, the TOML
file, `DATABASE_URL` / `KUBECONFIG`, the defaults below. The flat names from before the grouping
(`DEPLOY_MCP_HARBOR_URL`, `harbor_url = ...`) are aliases, see `mcp_server.flat_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mcp_server.flat_settings import ENV_PREFIX, NESTED, Regrouped, RenamedEnv
from workflows.domain.build_spec import BuildImages
from workflows.domain.specs import NODE_FAILURE_SECONDS

ALL_SCOPES = ("apps:read", "apps:write", "secrets:write", "volumes:write", "logs:read", "audit:read",
              "databases:write", "domains:write")
OPERATOR_SCOPES = ("platform:read",)
"""Scopes about the platform itself (`whoami` shows the cluster preflight): the stdio operator has them; a token
only when created with `--scope platform:read`, so tenants' agents never see cluster details by default."""


def default_state_dir() -> Path:
    """Where `deploy-mcp dev` keeps its data: FHS for root (a system service), XDG for a user."""
    if os.geteuid() == 0:
        return Path("/var/lib/deploy-mcp")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "deploy-mcp"


class Group(BaseModel):
    """A settings group: unknown keys are refused (a typo must not pass as a default), docstrings describe."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)


class DatabaseSettings(Group):
    """The platform's Postgres: apps, releases, tokens, audit rows."""

    url: str | None = None
    """Postgres URL (`postgresql://user:password@host:5432/db`). Also read from the conventional `DATABASE_URL`.
    Unset: `dev` starts an embedded Postgres; `serve`, `worker` and `migrate` refuse to start."""
    pool_min_size: int = Field(4, ge=1, le=500)
    """Connections `serve` keeps open to it when idle (a burst of calls then starts on open connections)."""
    pool_max_size: int = Field(20, ge=1, le=500)
    """Most connections `serve` opens to it; a call holds one for each query or transaction, so with too few,
    concurrent calls queue for them (100 concurrent calls on 10 waited ~0.3 s each). Postgres's
    `max_connections` must leave room for this plus the workers' 5 each."""

    @model_validator(mode="after")
    def _pool_sizes(self) -> DatabaseSettings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(f"database.pool_min_size ({self.pool_min_size}) is above database.pool_max_size "
                             f"({self.pool_max_size}); lower the first or raise the second")
        return self


class TemporalSettings(Group):
    """Where the workflows run."""

    address: str | None = None
    """host:port of Temporal's frontend. Unset: `dev` starts a Temporal dev server; the others refuse to start."""
    namespace: str = "default"
    """Temporal namespace of every workflow; `default` is the one every Temporal server has."""
    task_queue: str = "deploy-mcp"
    """Task queue the worker polls and the server starts workflows on; one per platform install."""


class HttpSettings(Group):
    """The streamable HTTP transport of `serve --transport http` and `dev`."""

    host: str = "127.0.0.1"
    """Bind address; loopback, so nothing is exposed until the operator says so (`--host 0.0.0.0`)."""
    port: int = Field(8765, ge=1, le=65535)
    """TCP port; 8765 is unprivileged and rarely taken."""
    path: str = "/mcp"
    """URL path of the MCP endpoint, the path MCP clients expect by convention."""
    public_url: str | None = None
    """URL clients use to reach the server, also the OAuth resource id (behind a proxy: the proxy's URL).
    Unset: http://<host>:<port><path>."""
    stateless: bool = True
    """Serve each MCP request on its own (the SDK's stateless streamable HTTP: no session id, nothing kept
    between requests), so any replica behind a Service answers any request of one client. Progress of a long
    call still reaches the client: it goes out on that request's own SSE stream. False keeps sessions in the
    process that opened them, which works only with one replica or session affinity."""
    shutdown_grace_seconds: float = Field(25.0, ge=0, le=3600)
    """Seconds SIGTERM lets in-flight requests (a tool call waiting on its workflow) finish before they are
    cut; new connections are refused at once. 25 sits well below the pods' terminationGracePeriodSeconds (60),
    so the process exits by itself before the kubelet kills it."""

    def mcp_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}{self.path}"


class OperatorSettings(Group):
    """The principal of a stdio session: whoever started the process on this machine."""

    tenant: str = "local"
    """Tenant the local operator acts in (DNS-1123 label)."""
    subject: str = "operator"
    """Name recorded in audit rows for stdio calls."""
    scopes: list[str] = Field(default_factory=lambda: [*ALL_SCOPES, *OPERATOR_SCOPES])
    """Scopes granted; all of them (and the operator's `platform:read`), since whoever runs the process owns the
    machine anyway."""


class WorkerSettings(Group):
    """The `deploy-mcp worker` process: its health endpoints and how it stops."""

    health_host: str = "0.0.0.0"  # noqa: S104 (the kubelet probes the pod's address)
    """Bind address of `/healthz` and `/readyz`; all addresses, since the kubelet probes the pod's IP."""
    health_port: int = Field(8766, ge=0, le=65535)
    """Port of `/healthz` and `/readyz`; 8766 is beside the server's 8765. 0: no health endpoints."""
    shutdown_grace_seconds: float = Field(25.0, ge=0, le=3600)
    """Seconds SIGTERM lets running activities finish (Temporal's `graceful_shutdown_timeout`); past it they
    are cancelled and Temporal hands them to another worker. 25: below the pods' terminationGracePeriodSeconds
    (60)."""
    preflight_at_start: bool = True
    """Run the preflight checks (`deploy-mcp preflight`) when the worker starts, log each missing piece and
    store the result for `whoami`; the worker starts either way."""


class PreflightSettings(Group):
    """What `deploy-mcp preflight` expects of the cluster beyond the cluster, build and http groups."""

    timeout_seconds: float = Field(5.0, gt=0, le=120)
    """Seconds each probe (an API call, the TCP connect to BuildKit) may take; 5 fails fast on a firewall that
    drops packets."""
    volumes: bool = True
    """The volume tools are used, so Longhorn's CRDs (recurringjobs.longhorn.io) and the snapshot CRD must be
    served. False: their absence is a warning."""
    edge_pool: bool = False
    """Ingress runs on nodes labelled pool=edge (the pooled overlay). False: no edge nodes is fine (single
    node: Traefik runs anywhere)."""


class DevSettings(Group):
    """Ports of the services `deploy-mcp dev` embeds (a free port is used when one is taken)."""

    postgres_port: int = Field(54329, ge=1, le=65535)
    """The embedded Postgres's port; fixed (not 5432, which a system Postgres may hold), so client configs
    keep working across restarts."""
    temporal_port: int = Field(7233, ge=1, le=65535)
    """The Temporal dev server's port; 7233 is Temporal's own default."""
    hosts_file: Path | None = Path("/etc/hosts")
    """On the testbed (root), dev names its apps here in a marked block (removed when it stops), so every HTTP
    client resolves their URLs (glibc does not resolve *.localhost); None: untouched, reach apps with a Host
    header at 127.0.0.1."""


class ClusterSettings(Group):
    """The Kubernetes cluster the worker reconciles, and the cluster-side classes customer objects use."""

    kubeconfig: Path | None = None
    """Kubeconfig of the cluster. Also read from `KUBECONFIG` (its first file). Unset: in-cluster config;
    `dev` brings up the local testbed when it can."""
    runtime_class: str = "gvisor"
    """RuntimeClass of every customer pod: gVisor, since customer code is untrusted."""
    ingress_class: str | None = None
    """IngressClass of app Ingresses. Unset: the cluster's default class."""
    storage_classes: dict[str, str] = Field(default_factory=lambda: {"fast": "fast", "standard": "standard"})
    """Platform volume class -> Kubernetes StorageClass; the defaults are the Longhorn classes in
    manifests/storage."""
    node_failure_seconds: int = Field(NODE_FAILURE_SECONDS, ge=5, le=300)
    """Seconds an app's pod stays bound to a node that is NotReady or unreachable before it is evicted and
    started elsewhere (its NoExecute tolerations), on top of the controller's node-monitor-grace-period: a
    shorter one moves apps faster and evicts them on shorter network blips (docs/decisions/0019)."""


class AppsSettings(Group):
    """How customer apps are reached."""

    platform_domain: str = "localhost"
    """Apps get <app>-<project>-<tenant>.apps.<platform_domain>; `localhost` resolves to 127.0.0.1 in curl and
    browsers, so dev URLs work with no DNS."""
    url_port: int | None = Field(None, ge=1, le=65535)
    """Port in app URLs when the edge does not listen on 443 (dev's testbed edge). Unset: no port (443)."""

    def domain(self) -> str:
        """The domain app hostnames end in."""
        return f"apps.{self.platform_domain}"


class ReleasesSettings(Group):
    """The life of a release in the cluster: becoming Ready, staying warm for rollback, being pruned."""

    ready_timeout_seconds: int = Field(300, ge=10, le=3600)
    """Seconds a release may take to be Ready before the deploy fails; 5 minutes covers an image pull and a
    slow start."""
    rollback_window_seconds: int = Field(900, ge=0, le=86400)
    """Seconds the previous release stays scaled after a switch, so a rollback is instant; 15 minutes covers
    the usual "it broke right after the deploy"."""
    retention_count: int = Field(10, ge=2, le=1000)
    """Release objects kept per app in the cluster (the rows are kept forever); 2 at least: the serving and
    the warm one."""
    retention_days: int = Field(30, ge=1, le=3650)
    """Release objects older than this many days are pruned (never the serving or warm ones)."""


class ReconcileSettings(Group):
    """The reconciler (docs/operations.md#drift-and-repair): the worker compares every app with the cluster and
    re-applies what drifted; the status tools report what it observed."""

    enabled: bool = True
    """Run the reconciler in this worker (the sweeper at start, a loop per app). False: nothing is repaired and
    the status tools report what was recorded, not observed."""
    period_seconds: float = Field(30.0, ge=1, le=3600)
    """Seconds between two passes over one app: the bound on how long drift goes unnoticed. 30 keeps a few
    hundred apps at a few API reads per second."""
    max_backoff_seconds: float = Field(300.0, ge=1, le=86400)
    """Ceiling of the wait after failed passes (doubled per failure from the period), so a sick API server is
    not hammered."""
    sweep_seconds: float = Field(60.0, ge=1, le=86400)
    """Seconds between two sweeps, which start the loop of any app without one (also after Temporal lost its
    state) and look for objects no recorded app owns."""
    remove_orphans: bool = False
    """Delete the Deployments and Services carrying the platform's labels that no recorded app owns. False:
    they are only reported (the worker's log, the sweep's result), since a wrong record must not delete a
    running workload."""
    concurrent_passes: int = Field(2, ge=1, le=20)
    """Passes one worker runs at once. Each holds a database connection (the app's row lock) while it reads the
    cluster, so a few leave the worker's pool (5 connections) to the deploy activities."""
    stale_after_periods: float = Field(3.0, ge=1, le=1000)
    """An app not observed for this many periods is reported `degraded` ("not observed since ..."): the
    reconciler itself is not running."""


class ProgressSettings(Group):
    """How long a tool call follows its workflow."""

    wait_seconds: float = Field(60.0, ge=0, le=600)
    """Seconds a tool waits for its workflow before returning the ids to poll with; a minute lets most
    deploys finish inside one call without holding a client for long."""


Toolset = Literal["apps", "logs", "volumes", "domains", "databases", "admin"]
TOOLSETS: tuple[Toolset, ...] = ("apps", "logs", "volumes", "domains", "databases", "admin")
"""The families a server or token can offer (`tools.context.TOOLSETS`; test_settings holds them equal)."""


class ToolsSettings(Group):
    """Which tools the server offers at all (a token may narrow further, `deploy-mcp token create`)."""

    read_only: bool = False
    """Offer and allow only read-only tools (reads, logs, diagnosis): nothing can change through this server."""
    toolsets: list[Toolset] = Field(default_factory=lambda: list(TOOLSETS))
    """Families offered (apps, logs, volumes, domains, databases, admin); `whoami` always is."""


class RateLimitSettings(Group):
    """Per-token budgets the server enforces before a tool runs (HTTP callers; the stdio operator has none),
    and the cap on audit rows of refused authentications. Each server process keeps its own budgets in memory
    (`mcp_server.rate_limits`): with several replicas behind one address, a token gets each replica's budget."""

    calls_per_minute: int = Field(120, ge=1, le=100_000)
    """Tool calls per minute per token (a token bucket that holds this many and refills at this rate, so a
    burst of that size passes at once). 120: two calls a second, more than an agent's reasoning loop makes,
    while one runaway loop cannot take the database and Temporal from the other tenants."""
    concurrent_waits: int = Field(4, ge=1, le=1000)
    """Tool calls per token waiting on a workflow at once (a `wait_seconds` wait with progress, a log
    `follow_seconds`). Each holds a request open for up to a minute; 4 covers an agent deploying a few apps in
    parallel, and more are better served by `wait_seconds=0` and polling."""
    refused_auth_rows_per_minute: int = Field(10, ge=1, le=10_000)
    """Audit rows of refused authentications (401) per remote address per minute; past it, the refusals are
    counted and one summary row says how many were dropped. 10 shows a misconfigured client in full, while a
    flood of bad tokens writes at most 11 rows a minute per address."""


class ImageRegistrySettings(Group):
    """The OCI registry built images are pushed to and pulled from."""

    host: str = "127.0.0.1:5000"
    """host[:port] of the registry (with Harbor: Harbor's registry host); the default is dev's testbed
    registry."""
    insecure_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    """Registry hosts (no port) reached over plain http: loopback only, where TLS protects nothing."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Registries (host names, addresses or CIDR networks) the platform may ask about images although they
    are not public: an internal registry. Every other non-public address (loopback, private, link-local,
    cloud metadata) is refused, so an image reference cannot make the server call inside the network. `host`
    and `insecure_hosts` are always allowed; empty by default because nothing else needs to be."""


class HarborSettings(Group):
    """Harbor holding a private project per tenant (docs/tools/apps.md#registry-harbor). All of url, username
    and password, or none."""

    url: str | None = None
    """Harbor's URL (https://harbor.example.com). Set: every deploy ensures the tenant's project, a robot
    account and a retention rule, writes a pull Secret for the image registry into the project's namespace
    and lists it in the pods' imagePullSecrets. Unset: no pull secrets."""
    username: str | None = None
    """Harbor user (or system robot) that may create projects, project robots and retention policies."""
    password: SecretStr | None = None
    """Its password; never logged or shown (best given by the environment, from a secret store)."""
    ca_file: Path | None = None
    """CA bundle (PEM) of Harbor's certificate when a private CA signed it. Unset: the system CAs."""
    retention_keep_last: int = Field(10, ge=1, le=10000)
    """Harbor's retention rule keeps this many last-pushed images per repository; as many as the releases
    kept in the cluster by default, so every kept release can still pull."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("https://", "http://")) or "@" in value:
            raise ValueError("must be an http(s) URL without credentials, e.g. https://harbor.example.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credentials(self) -> HarborSettings:
        if self.url and (not self.username or self.password is None):
            raise ValueError(
                "harbor.url is set, so harbor.username and harbor.password are needed too "
                "(DEPLOY_MCP_HARBOR__USERNAME, DEPLOY_MCP_HARBOR__PASSWORD)"
            )
        return self


class OAuthRule(Group):
    """One way into a tenant: GitHub users who are members of `org` (and of its `team`, if set), or who are
    named in `users`, get `scopes` in `tenant`. Rules are tried in order; the first that matches wins."""

    tenant: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    """Tenant the matching users act in (DNS-1123 label)."""
    scopes: list[str] = Field(default_factory=lambda: list(ALL_SCOPES))
    """What their tokens may do (at most; a client may ask for fewer)."""
    org: str | None = None
    """GitHub organization whose members match."""
    team: str | None = None
    """Team slug within `org`: only its active members match."""
    users: list[str] = Field(default_factory=list)
    """GitHub logins that match (an allow-list), instead of an organization."""

    @model_validator(mode="after")
    def _one_way(self) -> OAuthRule:
        if (self.org is None) == (not self.users):
            raise ValueError(f"oauth rule for tenant {self.tenant!r}: set exactly one of `org` or `users`")
        if self.team is not None and self.org is None:
            raise ValueError(f"oauth rule for tenant {self.tenant!r}: `team` needs `org`")
        unknown = sorted(set(self.scopes) - {*ALL_SCOPES, *OPERATOR_SCOPES})
        if unknown:
            raise ValueError(f"oauth rule for tenant {self.tenant!r}: unknown scope(s) {unknown}; "
                             f"known: {[*ALL_SCOPES, *OPERATOR_SCOPES]}")
        return self


class OidcRule(Group):
    """Which tokens of the external issuer get which scopes: those whose claim `claim` is `value` (or, for a
    list claim such as `groups`, holds it), in `tenant`, or in the tenant `oauth.oidc.tenant_claim` names.
    Rules are tried in order; the first that matches wins."""

    claim: str | None = None
    """Claim to test (a dotted path into nested claims, e.g. `realm_access.roles`); unset: every token matches."""
    value: str | None = None
    """What that claim must be or hold."""
    tenant: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    """Tenant the matching tokens act in; unset: the value of their `oauth.oidc.tenant_claim`."""
    scopes: list[str] = Field(default_factory=lambda: list(ALL_SCOPES))
    """What their tokens may do at most (intersected with the token's own scopes, see `scopes_claim`)."""

    @model_validator(mode="after")
    def _complete(self) -> OidcRule:
        if (self.claim is None) != (self.value is None):
            raise ValueError("oauth.oidc rule: set both `claim` and `value`, or neither (a rule for every token)")
        unknown = sorted(set(self.scopes) - {*ALL_SCOPES, *OPERATOR_SCOPES})
        if unknown:
            raise ValueError(f"oauth.oidc rule: unknown scope(s) {unknown}; known: {[*ALL_SCOPES, *OPERATOR_SCOPES]}")
        return self


class OidcSettings(Group):
    """An external OpenID Connect issuer (Keycloak, Dex, Authentik) instead of the GitHub sign-in: its JWT access
    tokens are verified on every request with its published keys (docs/operations.md "OIDC issuer")."""

    issuer: str | None = None
    """The issuer URL, exactly as its tokens' `iss` and its discovery document say; set: OIDC mode is on."""
    audience: str | None = None
    """An `aud` accepted besides this MCP endpoint's URL (e.g. the client id Keycloak or Dex put there)."""
    tenant_claim: str = "tenant"
    """Claim naming the tenant (a dotted path), for rules without their own `tenant`."""
    scopes_claim: str | None = "scope"
    """Claim with the token's scopes (a space-separated string or a list); unset or "": the matching rule's scopes."""
    rules: list[OidcRule] = Field(default_factory=lambda: [OidcRule()])
    """Which tokens get which tenant and scopes; a token no rule matches is refused."""
    jwks_cache_seconds: int = Field(3600, ge=10, le=86400)
    """How long the issuer's keys are kept before they are fetched again."""
    jwks_refetch_seconds: float = Field(30.0, ge=0, le=3600)
    """At most one early refetch per this many seconds when a token names a key not in the cache."""
    leeway_seconds: int = Field(30, ge=0, le=300)
    """Clock skew allowed on `exp`, `nbf` and `iat`."""

    @field_validator("scopes_claim", "audience")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None  # TOML and env vars have no null

    @model_validator(mode="after")
    def _url(self) -> OidcSettings:
        if self.issuer is not None and not self.issuer.startswith(("https://", "http://")):
            raise ValueError("oauth.oidc.issuer must be an https URL (http only on a loopback address)")
        return self


class OAuthSettings(Group):
    """The platform as OAuth 2.1 authorization server for its own MCP endpoint, users signing in with GitHub
    (docs/operations.md "OAuth"). API tokens keep working beside it."""

    enabled: bool = False
    """Serve the OAuth endpoints and accept the access tokens they issue."""
    issuer_url: str | None = None
    """The authorization server's issuer (RFC 8414); unset: the origin of `http.public_url`."""
    github_url: str = "https://github.com"
    """Where users sign in: https://github.com, or https://<host> of a GitHub Enterprise Server."""
    github_api_url: str = "https://api.github.com"
    """GitHub's REST API: https://<host>/api/v3 for GitHub Enterprise Server."""
    client_id: str | None = None
    """Client ID of the GitHub OAuth app (its callback URL: <issuer>/oauth/github/callback)."""
    client_secret: SecretStr | None = None
    """That app's client secret; never logged."""
    rules: list[OAuthRule] = Field(default_factory=list)
    """Which GitHub users get which tenant and scopes; a user in no rule is refused."""
    client_metadata_documents: bool = True
    """Accept clients whose client_id is the https URL of their metadata document (fetched, not registered)."""
    client_metadata_allowed_hosts: list[str] = Field(default_factory=list)
    """Hosts (or addresses, CIDRs) on private or loopback networks such documents may be fetched from."""
    access_token_seconds: int = Field(3600, ge=60)
    """Lifetime of an access token."""
    refresh_token_seconds: int = Field(30 * 86400, ge=300)
    """Lifetime of a refresh token (each use rotates it)."""
    code_seconds: int = Field(300, ge=30, le=600)
    """Lifetime of an authorization code, and of a login waiting at GitHub or at the consent page."""
    registrations_per_hour: int = Field(20, ge=1, le=10000)
    """Dynamic client registrations (POST /register) one client address may make per hour; past it, 429."""
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    """An external OIDC issuer instead (exclusive with `enabled`)."""

    @model_validator(mode="after")
    def _complete(self) -> OAuthSettings:
        for name in ("github_url", "github_api_url", "issuer_url"):
            value = getattr(self, name)
            if value is not None and not value.startswith(("https://", "http://")):
                raise ValueError(f"oauth.{name} must be an http(s) URL")
        if self.enabled and self.oidc.issuer is not None:
            raise ValueError("oauth.enabled (sign-in with GitHub) and oauth.oidc.issuer (an external issuer) exclude "
                             "each other: set one")
        if self.enabled and (self.client_id is None or self.client_secret is None):
            raise ValueError("oauth.enabled needs the GitHub OAuth app's oauth.client_id and oauth.client_secret "
                             "(DEPLOY_MCP_OAUTH__CLIENT_ID, DEPLOY_MCP_OAUTH__CLIENT_SECRET)")
        return self


class GitHubAppSettings(Group):
    """The platform's GitHub App. Set (an id and one private key): builds of https repositories on `hosts`
    clone with an installation token the app mints for the repository's owner, unless the tenant gave its own
    credentials for the host with set_git_credentials."""

    id: int | None = Field(None, ge=1)
    """The app's ID (its settings page shows it)."""
    private_key_file: Path | None = None
    """PEM private key the app's settings page generated (or `private_key`)."""
    private_key: SecretStr | None = None
    """The same PEM as a value (an env var from a secret store); never logged."""
    api_url: str = "https://api.github.com"
    """GitHub's REST API the app talks to: https://<host>/api/v3 for GitHub Enterprise Server."""
    owners: dict[str, list[str]] | None = None
    """Tenant -> the GitHub accounts whose App installation it may clone with. Unset: every tenant may use
    every installation (fine when one team runs the platform); set it when tenants are strangers."""
    hosts: list[str] = Field(default_factory=lambda: ["github.com"])
    """Git hosts (`host` or `host:port`) served by that GitHub: their https://<host>/<owner>/<repo> URLs get
    installation tokens."""

    @model_validator(mode="after")
    def _one_key(self) -> GitHubAppSettings:
        keys = [k for k in (self.private_key_file, self.private_key) if k is not None]
        if self.id is not None and len(keys) != 1:
            raise ValueError("github_app.id needs exactly one of github_app.private_key_file or "
                             "github_app.private_key")
        if self.id is None and keys:
            raise ValueError("a GitHub App private key is set without github_app.id")
        if not self.api_url.startswith(("https://", "http://")):
            raise ValueError("github_app.api_url must be an http(s) URL, e.g. https://api.github.com")
        return self

    def private_key_pem(self) -> str | None:
        """The private key (read from its file when configured so), or None without an app."""
        if self.private_key is not None:
            return self.private_key.get_secret_value()
        if self.private_key_file is not None:
            return self.private_key_file.read_text()
        return None


class GitSettings(Group):
    """What builds may clone from."""

    allowed_hosts: list[str] = Field(default_factory=list)
    """Git hosts (or addresses) allowed although they resolve to loopback/private/link-local addresses; none by
    default, so builds may only clone from public hosts (no reaching into the platform's own network)."""
    ca_file: Path | None = None
    """Extra CA bundle (PEM) for internal git servers. Unset: the system CAs."""


class BuilderSettings(Group):
    """How a commit becomes an image."""

    builder: Literal["local", "buildkit"] = "local"
    """`local`: buildah on the worker's host builds Dockerfile repos (dev, tests; needs nothing else).
    `buildkit`: each commit is built by a Job on the nodes labelled pool=build against `buildkit_addr`
    (production)."""
    dir: Path | None = None
    """The local builder's work and storage. Unset: <state_dir>/builds."""
    namespace: str = "deploy-mcp-builds"
    """Namespace of the build Jobs (`buildkit`), the one manifests/ creates."""
    buildkit_addr: str = "tcp://buildkitd.deploy-mcp-builds:1234"
    """buildkitd address for the Jobs; the default is the Service manifests/ installs."""
    buildkit_tls_secret: str | None = None
    """Secret in `namespace` with ca.pem/cert.pem/key.pem for buildkitd's mTLS. Unset: plain TCP."""
    registry_secret: str | None = None
    """dockerconfigjson Secret in `namespace` with push credentials for the image registry. Unset: pushes
    without credentials."""
    images: BuildImages = Field(
        default_factory=lambda: BuildImages(clone="alpine/git:2.45.2", railpack="ghcr.io/railwayapp/railpack:0.2.2",
                                            buildctl="moby/buildkit:v0.16.0-rootless"))
    """Images of the build Job's steps; pinned versions known to work together (mirror them into your
    registry)."""
    cpu_millicores: int = Field(2000, ge=100, le=16000)
    """CPU of each build step in millicores (request = limit, so builds cannot starve apps); 2 cores."""
    memory_mib: int = Field(4096, ge=128, le=65536)
    """Memory of each build step in MiB (request = limit); 4 GiB fits most language toolchains."""
    pool: str = Field("build", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Build Jobs run on the nodes labelled pool=<this> and tolerate the taint pool=<this>:NoSchedule. `build`:
    a pool of its own, so builds cannot starve apps; `run` where one node carries every pool
    (manifests/overlays/k3s-single-node)."""


class LokiSettings(Group):
    """The Loki the log tools read."""

    url: str | None = None
    """Base URL (e.g. http://loki-gateway.loki). Unset: the log tools read the Kubernetes pod log API when a
    cluster is configured (live pods only, fine for dev), else nothing."""
    tenant: str | None = None
    """Sent as X-Scope-OrgID when Loki runs multi-tenant (auth_enabled). Platform tenants are kept apart by the
    `tenant` label in every query, not by this."""


class DnsSettings(Group):
    """Platform DNS, custom domains and their certificates (docs/decisions/0013-domains.md)."""

    provider: Literal["none", "powerdns", "external-dns"] = "none"
    """Who writes the platform zone's records: `powerdns` (its HTTP API, below), `external-dns` (the Ingress
    carries `external-dns.alpha.kubernetes.io/hostname`, ExternalDNS writes the record) or `none` (the operator
    created `*.apps.<platform_domain>` by hand)."""
    powerdns_url: str | None = None
    """PowerDNS Authoritative's API base URL, e.g. http://pdns.internal:8081 (the webserver's address)."""
    powerdns_api_key: SecretStr | None = None
    """Its `api-key`, sent as X-API-Key."""
    powerdns_server_id: str = "localhost"
    """The server id in /api/v1/servers/<id>/...; `localhost` for a single authoritative server."""
    zone: str | None = None
    """The zone holding the platform's records. Unset: <platform_domain> itself."""
    record_ttl: int = Field(60, ge=1, le=86400)
    """TTL of the records the platform writes, in seconds: short, so moving the edge address takes a minute."""
    edge_hostname: str | None = None
    """The name custom domains CNAME to. Unset: edge.<apps domain> (the platform writes its A/AAAA records)."""
    edge_addresses: list[str] = Field(default_factory=list)
    """The edge's stable addresses (failover IP or keepalived VIP on the pool=edge nodes), IPv4 and/or IPv6: the
    wildcard record's content and what an apex custom domain's A/AAAA records must hold."""
    resolvers: list[str] = Field(default_factory=list)
    """Where custom-domain verification asks, as `ip` or `ip:port`. Unset: the system resolvers."""
    verify_timeout_hours: float = Field(72.0, gt=0, le=24 * 30)
    """How long a new custom domain may stay unverified before it is `failed` (the owner then adds it again)."""
    verify_max_backoff_seconds: float = Field(600.0, ge=1, le=86400)
    """The longest pause between two DNS checks of a pending domain (the first comes after a few seconds)."""
    recheck_seconds: float = Field(3600.0, ge=10, le=7 * 86400)
    """How often an active domain's records are checked again (a CNAME that moved away is reported)."""
    http01_issuer: str = "deploy-mcp-http01"
    """The cert-manager ClusterIssuer for custom domains (HTTP-01; manifests/components/tls)."""
    dns01_issuer: str = "deploy-mcp-dns01"
    """The ClusterIssuer of the platform zone's wildcard certificate (DNS-01; manifests/components/tls)."""
    max_domains_per_app: int = Field(10, ge=0, le=100)
    """Custom domains one app may hold: each is a Certificate and an ACME order."""

    def platform_zone(self, platform_domain: str) -> str:
        return (self.zone or platform_domain).rstrip(".")

    def edge_name(self, apps_domain: str) -> str:
        return (self.edge_hostname or f"edge.{apps_domain}").rstrip(".")


class BackupSettings(Group):
    """Plane A backups (`deploy-mcp backup create|list|restore|verify`, docs/operations.md#backups): a Postgres
    dump and the secrets key, sealed with a backup key of the operator's, to a directory or an S3 bucket."""

    target: str | None = None
    """Where backups go: `file:///path/dir` (a directory or a mounted volume) or `s3://bucket/prefix`. Unset:
    `backup create` refuses to run (a default place would be a silent place nobody restores from)."""
    key: SecretStr | None = None
    """The backup key sealing every archive: 32 random bytes in base64 (`openssl rand -base64 32`). Several,
    comma-separated: the first seals, any of them opens (to change keys without losing old backups). Separate
    from `secrets_key` and kept outside the database and its backups, else a stolen backup opens itself."""
    key_file: Path | None = None
    """A file holding the backup key (a mounted Secret), instead of `key`."""
    keep: int | None = Field(None, ge=1, le=10_000)
    """Backups kept at the target: after a successful upload, the oldest beyond this many are deleted (never
    before, so a failing run deletes nothing). Unset: none deleted; `backup create --keep N` overrides."""
    max_age_hours: float = Field(26.0, gt=0, le=24 * 365)
    """The operator's `whoami` warns when the last successful backup is older than this many hours: a schedule
    that stopped running shows as well as one that fails. 26: the daily CronJob with two hours of slack."""
    endpoint_url: str | None = None
    """S3 endpoint (https://s3.eu-central-1.amazonaws.com, or a MinIO/Ceph/Garage URL). Unset: AWS's."""
    region: str | None = None
    """S3 region; set it for AWS (saves a location lookup) and for servers that check it."""
    access_key_id: str | None = None
    """S3 access key id; with `secret_access_key`. Unset: anonymous requests."""
    secret_access_key: SecretStr | None = None
    """S3 secret access key; never logged (best given by the environment, from a secret store)."""
    pg_bin_dir: Path | None = None
    """Directory holding `pg_dump` and `pg_restore` (as new as the server at least). Unset: the embedded
    Postgres's when installed, else PATH."""
    work_dir: Path | None = None
    """Scratch space of a restore (the sealed archive is downloaded there to be verified before anything is
    restored; nothing in clear is written). Unset: the system temp directory."""

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("file:///", "s3://")):
            raise ValueError("must be file:///absolute/dir or s3://bucket/prefix")
        if value.startswith("s3://") and "@" in value.split("/", 3)[2]:
            raise ValueError("must not carry credentials; set backup.access_key_id and backup.secret_access_key")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> BackupSettings:
        if self.key is not None and self.key_file is not None:
            raise ValueError("set one of backup.key and backup.key_file, not both")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("backup.access_key_id and backup.secret_access_key go together")
        return self

    def key_text(self) -> str | None:
        """The backup key setting's value (read from its file when configured so), or None."""
        if self.key is not None:
            return self.key.get_secret_value()
        if self.key_file is not None:
            return self.key_file.read_text()
        return None


class TelemetrySettings(Group):
    """What the processes tell an operator: Prometheus `/metrics`, OpenTelemetry traces, the log format
    (docs/operations.md#telemetry, docs/decisions/0016-telemetry.md)."""

    metrics: bool = True
    """Serve Prometheus `/metrics` beside /healthz and /readyz (the server's HTTP port, the worker's health port);
    off: 404 there. Unauthenticated like the probes, so it names no tenant, app or secret."""
    temporal_metrics_port: int = Field(0, ge=0, le=65535)
    """The Temporal SDK's own Prometheus endpoint (its Rust core serves it, on `worker.health_host`) in the
    worker; 0: off (the default for `make dev`, where the server and worker share one process)."""
    otlp_endpoint: str | None = None
    """OTLP/HTTP traces endpoint, e.g. `http://otel-collector:4318/v1/traces`; unset: no tracing SDK is loaded and
    spans are the API's no-ops."""
    service_name: str | None = None
    """`service.name` of the spans; unset: `deploy-mcp-server` or `deploy-mcp-worker`."""
    log_format: Literal["text", "json"] = "text"
    """`json`: one JSON object a line (time, level, logger, message, request id, tenant, tool, workflow id,
    release) for a log collector; `text`: lines for a terminal."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL of an OTLP/HTTP receiver (e.g. .../v1/traces)")
        return value
class DatabasesSettings(Group):
    """Databases the platform runs for apps (`database` tools, docs/tools/databases.md): Postgres of a supported
    major version, as a StatefulSet of the platform's own image, or a CloudNativePG Cluster where that is served."""

    images: dict[int, str] = Field(default_factory=lambda: {15: "ghcr.io/deploy-mcp/postgres:15"})
    """Postgres major version -> the image the StatefulSet runs; its keys are the versions agents may choose
    (the self-built image, `make image-postgres`, has 15: Debian bookworm's)."""
    default_version: int = 15
    """The major version of a database that names none; must be a key of `images`."""
    engine: Literal["auto", "statefulset", "cloudnative-pg"] = "auto"
    """auto: a CloudNativePG `Cluster` when the cluster serves postgresql.cnpg.io/v1 Clusters, else the
    StatefulSet; or force one."""
    cnpg_images: dict[int, str] = Field(default_factory=dict)
    """Major version -> `imageName` of CloudNativePG Clusters; a version missing here uses the operator's
    default image (which must then be pullable)."""
    volume_class: str = "fast"
    """The volume class (a key of cluster.storage_classes) of a database that names none."""
    default_size_gib: int = Field(5, ge=1, le=1024)
    """Size of a database that names none, GiB."""
    max_size_gib: int = Field(100, ge=1, le=1024)
    """Largest database a tenant may ask for, GiB (the project's storage quota applies as well)."""
    ready_timeout_seconds: int = Field(300, ge=30, le=3600)
    """How long create/rotate/restore wait for the database to be Ready before reporting failure."""
    backup_schedule: str = "17 3 * * *"
    """Cron schedule of every database's logical dump (a CronJob in the platform namespace), UTC."""
    backup_keep: int = Field(7, ge=1, le=1000)
    """Dumps kept per database: after a successful one, the oldest beyond this many are deleted."""
    backup_max_age_days: int = Field(30, ge=1, le=3650)
    """Dumps older than this are deleted too (a successful newer one always stays)."""
    platform_namespace: str = "deploy-mcp-system"
    """The platform's namespace: the backup CronJobs run there, with the backup Secret Plane A backups use."""
    platform_image: str = "ghcr.io/deploy-mcp/deploy-mcp:0.1.0"
    """The image the backup jobs run (`deploy-mcp db-dump`); the platform's own, as the worker's pod runs."""

    @model_validator(mode="after")
    def _default_supported(self) -> DatabasesSettings:
        if self.default_version not in self.images:
            raise ValueError(f"databases.default_version {self.default_version} has no image: add it to "
                             f"databases.images (now {sorted(self.images)})")
        return self

    def supported_versions(self) -> list[int]:
        return sorted(self.images)


class Settings(BaseSettings):
    """Everything a command is configured with; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="forbid", validate_default=True,
        use_attribute_docstrings=True,
    )

    state_dir: Path = Field(default_factory=default_state_dir)
    """Data of the embedded services (Postgres, Temporal), the dev secrets key, builds and PID files."""
    secrets_key: SecretStr | None = None
    """Fernet key encrypting secret values at rest; several, comma-separated, to rotate: the first encrypts, all
    decrypt (`deploy-mcp secrets rotate` re-encrypts under the first, then the others can go). Unset: generated
    once into <state_dir>/secrets.key (fine for dev; set it explicitly in production)."""
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    dev: DevSettings = Field(default_factory=DevSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    preflight: PreflightSettings = Field(default_factory=PreflightSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    apps: AppsSettings = Field(default_factory=AppsSettings)
    releases: ReleasesSettings = Field(default_factory=ReleasesSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    progress: ProgressSettings = Field(default_factory=ProgressSettings)
    tools: ToolsSettings = Field(default_factory=ToolsSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    image_registry: ImageRegistrySettings = Field(default_factory=ImageRegistrySettings)
    harbor: HarborSettings = Field(default_factory=HarborSettings)
    github_app: GitHubAppSettings = Field(default_factory=GitHubAppSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    git: GitSettings = Field(default_factory=GitSettings)
    build: BuilderSettings = Field(default_factory=BuilderSettings)
    loki: LokiSettings = Field(default_factory=LokiSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    databases: DatabasesSettings = Field(default_factory=DatabasesSettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # earlier sources win; each flat-name source sits right below its grouped counterpart
        sources: list[PydanticBaseSettingsSource] = [
            Regrouped(settings_cls, init_settings), env_settings, RenamedEnv.flat(settings_cls)]
        config_file = os.environ.get("DEPLOY_MCP_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"DEPLOY_MCP_CONFIG names {config_file}, which is not a file")
            sources.append(Regrouped(settings_cls, TomlConfigSettingsSource(settings_cls, toml_file=config_file)))
        sources.append(RenamedEnv.conventional(settings_cls))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """The settings, with `overrides` (grouped, `http={"port": 9000}`, or flat, `http_port=9000`) on top;
    None means not given."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
