"""Opening the platform's connections once per process: the store, Temporal, and the server built on them."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from mcp_server.auth import operator_principal
from mcp_server.server import DeployMCP, ServerDeps, build_server
from mcp_server.settings import Settings
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows, connect
from tools.context import PlatformConfig
from tools.ports import LogStore
from workflows.adapters.github_app import GitHubApp, GitHubAppError
from workflows.adapters.loki import LokiClient, LokiLogStore
from workflows.adapters.registry import OciRegistry
from workflows.domain.secretbox import SecretBox
from workflows.render.pull_secret import PULL_SECRET_NAME

log = logging.getLogger(__name__)


def require_database_url(settings: Settings) -> str:
    url = settings.database.url
    if not url:
        raise SystemExit(
            "deploy-mcp: no database. Set DATABASE_URL (or DEPLOY_MCP_DATABASE__URL), or run `deploy-mcp dev`, "
            "which starts an embedded Postgres."
        )
    return url


def platform_config(settings: Settings) -> PlatformConfig:
    return PlatformConfig(
        apps_domain=settings.apps.domain(), progress_wait_seconds=settings.progress.wait_seconds,
        apps_url_port=settings.apps.url_port,
        runtime_class=settings.cluster.runtime_class or None, ingress_class=settings.cluster.ingress_class,
        ready_timeout_seconds=settings.releases.ready_timeout_seconds,
        rollback_window_seconds=settings.releases.rollback_window_seconds,
        retain_releases=settings.releases.retention_count, retain_days=settings.releases.retention_days,
        storage_classes=dict(settings.cluster.storage_classes), registry=settings.image_registry.host,
        git_allowed_hosts=tuple(settings.git.allowed_hosts), git_ca_file=settings.git.ca_file,
        image_pull_secret=PULL_SECRET_NAME if settings.harbor.url else None,
    )


def open_github_app(settings: Settings) -> GitHubApp | None:
    """The platform's GitHub App when configured; its key is checked now (it must sign a JWT), so a wrong key
    stops the process at start rather than failing builds. Close it with `aclose()`."""
    if settings.github_app.id is None:
        return None
    try:
        pem = settings.github_app.private_key_pem()
    except OSError as e:
        raise SystemExit(f"deploy-mcp: cannot read github_app.private_key_file: {e.strerror}") from None
    assert pem is not None
    app = GitHubApp(settings.github_app.id, pem, settings.github_app.api_url, hosts=settings.github_app.hosts,
                    tenant_owners=settings.github_app.owners)
    try:
        app.app_jwt()
    except GitHubAppError as e:
        raise SystemExit(f"deploy-mcp: {e}") from None
    return app


def load_secretbox(settings: Settings) -> SecretBox:
    """The configured key, else one generated once into the state directory (0600), which suits `dev`."""
    if settings.secrets_key is not None:
        return SecretBox(settings.secrets_key.get_secret_value())
    path = settings.state_dir / "secrets.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(SecretBox.generate_key())
        log.warning("generated a secrets key in %s; set DEPLOY_MCP_SECRETS_KEY in production", path)
    return SecretBox(path.read_text().strip())


@asynccontextmanager
async def open_log_store(settings: Settings, *, with_workflows: bool) -> AsyncIterator[LogStore | None]:
    """Loki when configured; else the pod log API of the cluster the platform reconciles (dev); else none,
    and the log tools say so. A cluster that cannot be reached here costs the logs, not the server."""
    if settings.loki.url:
        loki = LokiLogStore(LokiClient(settings.loki.url, tenant=settings.loki.tenant))
        try:
            yield loki
        finally:
            await loki.aclose()
        return
    kubeconfig = settings.cluster.kubeconfig
    if with_workflows and (kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST")):
        # Imported here, not at the top: kubernetes_asyncio loads ~960 generated modules (about 38 MB of a
        # server's resident memory) that a server reading its logs from Loki never uses.
        from workflows.adapters.kube import Kube
        from workflows.adapters.kube_logs import KubeLogStore, KubePodLogs

        try:
            kube = await Kube.connect(kubeconfig)
        except Exception as e:
            log.warning("no log store: cannot load the cluster config (%s: %s)", type(e).__name__, e)
        else:
            try:
                yield KubeLogStore(KubePodLogs(kube))
            finally:
                await kube.close()
            return
    yield None


@asynccontextmanager
async def server_deps(settings: Settings, database_url: str, *, with_workflows: bool = True
                      ) -> AsyncIterator[ServerDeps]:
    """The server's clients. Without workflows (no cluster) the read tools still work."""
    store = await PgStore.open(database_url)
    registry = OciRegistry(insecure_hosts=settings.image_registry.insecure_hosts)
    github_app = None
    try:
        github_app = open_github_app(settings)
        workflows = None
        if with_workflows:
            workflows = TemporalWorkflows(await connect(settings), settings.temporal.task_queue)
        async with open_log_store(settings, with_workflows=with_workflows) as logs:
            yield ServerDeps(store=store, config=platform_config(settings), workflows=workflows, images=registry,
                             secretbox=load_secretbox(settings), logs=logs, github_app=github_app,
                             rate_limits=settings.rate_limits)
    finally:
        await registry.aclose()
        await store.close()
        if github_app is not None:
            await github_app.aclose()


def make_server(settings: Settings, deps: ServerDeps, transport: str) -> DeployMCP:
    if transport == "http":
        return build_server(deps, transport="http", public_url=settings.http.mcp_url())
    return build_server(deps, transport=transport, principal=operator_principal(settings))


def http_server(settings: Settings, server: DeployMCP) -> uvicorn.Server:
    app = server.streamable_http_app(streamable_http_path=settings.http.path, host=settings.http.host)
    config = uvicorn.Config(app, host=settings.http.host, port=settings.http.port, log_level="warning",
                            lifespan="on")
    return uvicorn.Server(config)
