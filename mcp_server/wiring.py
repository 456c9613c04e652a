"""Opening the platform's connections once per process: the store, Temporal, and the server built on them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import uvicorn

from mcp_server.auth import operator_principal
from mcp_server.cluster_planner import KubePlanner
from mcp_server.git_hooks import HOOKS_PATH
from mcp_server.health import database_check, temporal_check
from mcp_server.server import DeployMCP, ServerDeps, build_server
from mcp_server.settings import Settings

# open_github_app and require_database_url are still importable from here, where callers found them before
from mcp_server.startup import load_secretbox
from mcp_server.startup import open_github_app as open_github_app
from mcp_server.startup import require_database_url as require_database_url
from mcp_server.store import PgStore
from mcp_server.telemetry.metrics import backup_age, exposition
from mcp_server.temporal import TemporalWorkflows, connect
from tools.context import PlatformConfig
from tools.ports import LogStore
from tools.surface import Surface
from workflows.adapters.loki import LokiClient, LokiLogStore
from workflows.adapters.registry import OciRegistry
from workflows.render.pull_secret import PULL_SECRET_NAME

if TYPE_CHECKING:
    from workflows.adapters.kube import Kube

log = logging.getLogger(__name__)


def hooks_url(mcp_url: str) -> str:
    """Git webhooks are posted beside the MCP endpoint, on the same origin (`mcp_server.git_hooks`)."""
    parts = urlsplit(mcp_url)
    return f"{parts.scheme}://{parts.netloc}{HOOKS_PATH}"


def platform_config(settings: Settings) -> PlatformConfig:
    return PlatformConfig(
        apps_domain=settings.apps.domain(), progress_wait_seconds=settings.progress.wait_seconds,
        apps_url_port=settings.apps.url_port,
        runtime_class=settings.cluster.runtime_class or None, ingress_class=settings.cluster.ingress_class,
        node_failure_seconds=settings.cluster.node_failure_seconds,
        ready_timeout_seconds=settings.releases.ready_timeout_seconds,
        rollback_window_seconds=settings.releases.rollback_window_seconds,
        retain_releases=settings.releases.retention_count, retain_days=settings.releases.retention_days,
        storage_classes=dict(settings.cluster.storage_classes), registry=settings.image_registry.host,
        git_allowed_hosts=tuple(settings.git.allowed_hosts), git_ca_file=settings.git.ca_file,
        image_pull_secret=PULL_SECRET_NAME if settings.harbor.url else None,
        backup_max_age_hours=settings.backup.max_age_hours,
        reconcile_enabled=settings.reconcile.enabled,
        reconcile_stale_seconds=settings.reconcile.period_seconds * settings.reconcile.stale_after_periods,
        database_images=dict(settings.databases.images), database_default_version=settings.databases.default_version,
        database_volume_class=settings.databases.volume_class,
        database_default_size_gib=settings.databases.default_size_gib,
        database_max_size_gib=settings.databases.max_size_gib,
        database_ready_timeout_seconds=settings.databases.ready_timeout_seconds,
        edge_name=settings.dns.edge_name(settings.apps.domain()), edge_addresses=tuple(settings.dns.edge_addresses),
        domain_verify_hours=settings.dns.verify_timeout_hours,
        domain_max_backoff_seconds=settings.dns.verify_max_backoff_seconds,
        domain_recheck_seconds=settings.dns.recheck_seconds, max_domains_per_app=settings.dns.max_domains_per_app,
        hooks_url=hooks_url(settings.http.mcp_url()),
    )


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


def open_planner(settings: Settings, *, with_workflows: bool) -> KubePlanner | None:
    """Plans' dry run against the cluster the platform reconciles, the same one the pod-log reader reads (its
    own client, connected on the first plan); none without a cluster, and plans say `validated: false`."""
    kubeconfig = settings.cluster.kubeconfig
    if not (with_workflows and (kubeconfig or os.environ.get("KUBERNETES_SERVICE_HOST"))):
        return None

    async def connect() -> Kube:
        from workflows.adapters.kube import Kube  # see open_log_store: loaded only when a plan needs it

        return await Kube.connect(kubeconfig)

    return KubePlanner(connect)


@asynccontextmanager
async def server_deps(settings: Settings, database_url: str, *, with_workflows: bool = True
                      ) -> AsyncIterator[ServerDeps]:
    """The server's clients. Without workflows (no cluster) the read tools still work."""
    store = await PgStore.open(database_url, min_size=settings.database.pool_min_size,
                               max_size=settings.database.pool_max_size)
    registry = OciRegistry(insecure_hosts=settings.image_registry.insecure_hosts,
                           allowed_hosts=[settings.image_registry.host, *settings.image_registry.allowed_hosts])
    github_app = None
    try:
        github_app = open_github_app(settings)
        workflows = None
        checks = [database_check(store)]
        if with_workflows:
            workflows = TemporalWorkflows(await connect(settings), settings.temporal.task_queue)
            checks.append(temporal_check(workflows.client))
        planner = open_planner(settings, with_workflows=with_workflows)
        async with open_log_store(settings, with_workflows=with_workflows) as logs, \
                contextlib.AsyncExitStack() as stack:
            if planner is not None:
                stack.push_async_callback(planner.aclose)
            yield ServerDeps(store=store, config=platform_config(settings), workflows=workflows, images=registry,
                             planner=planner,
                             secretbox=load_secretbox(settings), logs=logs, github_app=github_app,
                             rate_limits=settings.rate_limits, health_checks=checks,
                             metrics=exposition([backup_age(store)]) if settings.telemetry.metrics else None,
                             surface=Surface(settings.tools.read_only, frozenset(settings.tools.toolsets)))
    finally:
        await registry.aclose()
        await store.close()
        if github_app is not None:
            await github_app.aclose()


def make_server(settings: Settings, deps: ServerDeps, transport: str) -> DeployMCP:
    if transport == "http":
        return build_server(deps, transport="http", public_url=settings.http.mcp_url(), oauth=settings.oauth)
    return build_server(deps, transport=transport, principal=operator_principal(settings))


class GracefulServer(uvicorn.Server):
    """uvicorn, stopped by SIGTERM or SIGINT through the event loop instead of its own signal handlers: those
    raise the signal again once the graceful shutdown is done, so the process would die of SIGTERM (exit
    143) instead of exiting 0 after letting its in-flight calls finish."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.bound = asyncio.Event()
        """Set once the listening socket is bound (uvicorn exits the process instead when it cannot bind)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.bound.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop, sig)
        except (RuntimeError, ValueError):  # not the main thread (tests serve from a task): no signals
            yield
            return
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _stop(self, sig: int) -> None:
        if self.should_exit:  # a second signal: stop waiting for the in-flight calls
            self.force_exit = True
            return
        log.info("%s: refusing new connections, letting in-flight calls finish (at most %g s)",
                 signal.Signals(sig).name, self.config.timeout_graceful_shutdown)
        self.should_exit = True


def http_server(settings: Settings, server: DeployMCP) -> GracefulServer:
    """uvicorn serving the MCP app (stateless unless `http.stateless` is off) beside /healthz and /readyz."""
    app = server.streamable_http_app(streamable_http_path=settings.http.path, host=settings.http.host,
                                     stateless_http=settings.http.stateless)
    config = uvicorn.Config(app, host=settings.http.host, port=settings.http.port, log_level="warning",
                            lifespan="on", timeout_graceful_shutdown=int(settings.http.shutdown_grace_seconds))
    return GracefulServer(config)
