"""`deploy-mcp worker`: the Temporal worker that reconciles the cluster. Holds the clients the activities
use (Kubernetes, the store, the secrets key; Loki, Harbor and the GitHub App when configured) for the life of
the process."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from mcp_server.health import Named, database_check, serve_health, temporal_check
from mcp_server.platform_dns import ensure_platform_zone
from mcp_server.preflight import preflight_at_start
from mcp_server.settings import Settings
from mcp_server.startup import load_secretbox, open_github_app, require_database_url
from mcp_server.store import PgStore
from mcp_server.telemetry.metrics import exposition
from mcp_server.telemetry.temporal_runtime import metrics_runtime
from mcp_server.telemetry.workflow_metrics import WorkflowMetrics
from mcp_server.temporal import connect
from workflows.activities.build import BuildActivities, BuildSettings, RobotSource
from workflows.activities.build_job import JobBuilder, JobBuilderSettings
from workflows.activities.database import DatabaseActivities, DatabaseConfig
from workflows.activities.database_observe import DatabaseObserveActivities
from workflows.activities.deploy import DeployActivities
from workflows.activities.domains import DomainActivities, DomainConfig, KubeDomainCluster
from workflows.activities.harbor import HarborActivities
from workflows.activities.pod_metrics import MetricsActivities
from workflows.activities.reconcile import ReconcileActivities, ReconcileConfig
from workflows.activities.scaling import ScaleActivities
from workflows.activities.stores import BuildStore
from workflows.activities.volume import VolumeActivities
from workflows.adapters.github_app import GitHubApp
from workflows.adapters.harbor import HarborClient
from workflows.adapters.kube import Kube
from workflows.adapters.loki import LokiClient
from workflows.build import BuildWorkflow
from workflows.database import DatabaseObserveWorkflow, DatabaseWorkflow
from workflows.delete import DeleteAppWorkflow
from workflows.deploy import DeployWorkflow
from workflows.diagnose import DiagnoseWorkflow
from workflows.domain.reconcile_contract import SweepInput
from workflows.domain.workflow_ids import reconcile_sweep_workflow_id
from workflows.domains import DomainWorkflow
from workflows.reconcile import ReconcileSweepWorkflow, ReconcileWorkflow
from workflows.render.pull_secret import PULL_SECRET_NAME
from workflows.scale import AppMetricsWorkflow, ScaleWorkflow
from workflows.volume import VolumeWorkflow

log = logging.getLogger(__name__)

# The platform's own workflow modules pass through the sandbox instead of being re-imported for every run (that
# cost a warm rollback ~7 ms before its switch step, bench/workflow_sandbox.py); decision 0023. The tests' workers
# keep the default sandbox, which re-imports and checks every workflow.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows"))

# Here, not in `mcp_server.temporal`: the definitions import their activity classes, which only the worker
# needs (the server starts workflows by name).
WORKFLOWS = [DeployWorkflow, DeleteAppWorkflow, DiagnoseWorkflow, VolumeWorkflow, BuildWorkflow, ReconcileWorkflow,
             ReconcileSweepWorkflow, ScaleWorkflow, AppMetricsWorkflow, DatabaseWorkflow, DatabaseObserveWorkflow,
             DomainWorkflow]


def build_activities(settings: Settings, store: BuildStore, *, loki: LokiClient | None = None,
                     github_app: GitHubApp | None = None, kube: Kube | None = None,
                     robots: RobotSource | None = None) -> BuildActivities:
    """The build activities as `settings` configure them (the local builder's directories, or the build Jobs
    with `kube`; the git CA, the registry's transport; the GitHub App's tokens for repositories on its hosts;
    the tenants' Harbor robots for pushing)."""
    build_root = settings.build.dir or settings.state_dir / "builds"
    return BuildActivities(store, load_secretbox(settings), BuildSettings(
        storage_root=build_root / "buildah", work_root=build_root / "work", ca_file=settings.git.ca_file,
        registry_insecure=settings.image_registry.host.split(":")[0] in settings.image_registry.insecure_hosts),
        loki=loki, github_app=github_app, jobs=job_builder(kube, settings) if kube is not None else None,
        robots=robots)


@dataclass
class WorkerClients:
    """A configured worker and the clients its process shares with the health checks and the preflight."""

    worker: Worker
    store: PgStore
    kube: Kube


@asynccontextmanager
async def worker(settings: Settings, client: Client | None = None) -> AsyncIterator[Worker]:
    """A configured, not yet running worker with its clients; they close when the context exits."""
    async with worker_clients(settings, client) as parts:
        yield parts.worker


@asynccontextmanager
async def worker_clients(settings: Settings, client: Client | None = None) -> AsyncIterator[WorkerClients]:
    """`worker`, with the store and the cluster client it opened."""
    client = client or await connect(settings, runtime=metrics_runtime(settings))
    kube = await Kube.connect(settings.cluster.kubeconfig)
    store = await PgStore.open(require_database_url(settings), min_size=1, max_size=5)
    loki = LokiClient(settings.loki.url, tenant=settings.loki.tenant) if settings.loki.url else None
    harbor = harbor_client(settings)
    github_app = None
    try:
        github_app = open_github_app(settings)
        caps = await kube.caps()
        log.info("cluster: Kubernetes 1.%s, PDB %s, HPA %s, metrics API %s", caps.minor, caps.pdb_api, caps.hpa_api,
                 "served" if caps.metrics_api else "not served")
        if github_app is not None:
            log.info("GitHub App %s mints clone tokens for %s", github_app.app_id, ", ".join(github_app.hosts))
        secretbox = load_secretbox(settings)
        volumes = VolumeActivities(kube, store)
        databases = DatabaseActivities(kube, store, secretbox, database_config(settings))
        domains = DomainActivities(store, domain_config(settings), KubeDomainCluster(kube))
        registry = HarborActivities(kube, store, secretbox, harbor, settings.image_registry.host,
                                    settings.harbor.retention_keep_last)
        reconciler = ReconcileActivities(kube, store, secretbox, reconcile_config(settings), temporal=client,
                                         pull_secrets=registry.ensure_pull_secret if harbor is not None else None)
        activities = DeployActivities(kube, store, secretbox, temporal=client,
                                      on_serving=reconciler.ensure_loop if settings.reconcile.enabled else None)
        builds = build_activities(settings, store, loki=loki, github_app=github_app, kube=kube,
                                  robots=registry if harbor is not None else None)
        w = Worker(
            client, task_queue=settings.temporal.task_queue, workflows=WORKFLOWS,
            activities=activities.all() + volumes.all() + builds.all() + registry.all() + reconciler.all()
            + ScaleActivities(kube, store, temporal=client).all() + MetricsActivities(kube).all() + databases.all()
            + DatabaseObserveActivities(kube).all()
            + domains.all(),
            max_concurrent_activities=50, interceptors=[WorkflowMetrics()], workflow_runner=WORKFLOW_RUNNER,
            graceful_shutdown_timeout=timedelta(seconds=settings.worker.shutdown_grace_seconds))
        if settings.reconcile.enabled:
            await start_sweeper(client, settings)
        await ensure_platform_zone(settings)
        yield WorkerClients(w, store, kube)
    finally:
        if github_app is not None:
            await github_app.aclose()
        if harbor is not None:
            await harbor.aclose()
        if loki is not None:
            await loki.aclose()
        await store.close()
        await kube.close()


def database_config(settings: Settings) -> DatabaseConfig:
    d = settings.databases
    return DatabaseConfig(platform_namespace=d.platform_namespace, platform_image=d.platform_image, engine=d.engine,
                          backup_schedule=d.backup_schedule, backup_keep=d.backup_keep,
                          backup_max_age_days=d.backup_max_age_days)


def domain_config(settings: Settings) -> DomainConfig:
    """What a custom-domain check compares DNS with, and what a verified domain's objects are rendered with."""
    d = settings.dns
    return DomainConfig(
        edge_name=d.edge_name(settings.apps.domain()), edge_addresses=tuple(d.edge_addresses),
        resolvers=tuple(d.resolvers), issuer=d.http01_issuer, ingress_class=settings.cluster.ingress_class,
        external_dns=d.provider == "external-dns")


def reconcile_config(settings: Settings) -> ReconcileConfig:
    """What a reconcile pass renders with: the same settings the server hands the deploy workflow."""
    r = settings.reconcile
    return ReconcileConfig(
        period_seconds=r.period_seconds, max_backoff_seconds=r.max_backoff_seconds, sweep_seconds=r.sweep_seconds,
        remove_orphans=r.remove_orphans, concurrent_passes=r.concurrent_passes,
        runtime_class=settings.cluster.runtime_class or None,
        node_failure_seconds=settings.cluster.node_failure_seconds,
        ingress_class=settings.cluster.ingress_class, storage_classes=dict(settings.cluster.storage_classes),
        image_pull_secret=PULL_SECRET_NAME if settings.harbor.url else None,
        database_images=dict(settings.databases.images), domain_issuer=settings.dns.http01_issuer,
        external_dns=settings.dns.provider == "external-dns")


async def start_sweeper(client: Client, settings: Settings) -> None:
    """Make sure the install's sweeper runs (started once, kept by Temporal; a worker starting again finds it).
    It starts every app's reconcile loop, so a platform whose cluster (or Temporal) starts empty serves its
    recorded apps again without any call. A Temporal that refuses just now costs the sweep until the next
    worker start, not the worker."""
    try:
        await client.start_workflow(
            "reconcile-sweep", SweepInput(), id=reconcile_sweep_workflow_id(settings.temporal.task_queue),
            task_queue=settings.temporal.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
    except RPCError as e:
        log.warning("the reconcile sweeper could not be started: %s", e)


def job_builder(kube: Kube, settings: Settings) -> JobBuilder | None:
    if settings.build.builder != "buildkit":
        return None
    return JobBuilder(kube, JobBuilderSettings(
        namespace=settings.build.namespace, buildkit_addr=settings.build.buildkit_addr,
        images=settings.build.images, registry=settings.image_registry.host,
        buildkit_tls_secret=settings.build.buildkit_tls_secret,
        registry_secret=settings.build.registry_secret, cpu_millicores=settings.build.cpu_millicores,
        memory_mib=settings.build.memory_mib, pool=settings.build.pool))


def harbor_client(settings: Settings) -> HarborClient | None:
    if not settings.harbor.url:
        return None
    assert settings.harbor.username and settings.harbor.password is not None  # HarborSettings checks them together
    log.info("Harbor: %s (robot accounts and pull secrets per tenant)", settings.harbor.url)
    return HarborClient(settings.harbor.url, settings.harbor.username, settings.harbor.password.get_secret_value(),
                        ca_file=settings.harbor.ca_file)


def worker_checks(w: Worker, store: PgStore) -> list[Named]:
    """Readiness of a worker: polling its task queue (running, not shutting down), Temporal answering, the
    database answering (the store activities need it)."""

    async def polling() -> str | None:
        return None if w.is_running and not w.is_shutdown else "the worker is not polling its task queue"

    return [Named("worker", polling), temporal_check(w.client), database_check(store)]


async def run_until_signalled(w: Worker, store: PgStore, settings: Settings, *, standalone: bool = True,
                              beside: Callable[[], Coroutine[Any, Any, object]] | None = None) -> None:
    """Run `w` with its health endpoints until SIGTERM or SIGINT, then shut it down: no new tasks are polled,
    running activities get `worker.shutdown_grace_seconds` to finish, then they are cancelled and Temporal
    retries them on another worker (their heartbeat or start-to-close timeout). Not `standalone` (inside
    `deploy-mcp dev`, whose HTTP server owns the signals): no signal handlers, no health port; cancel it.
    `beside` runs once beside the polling (the preflight: it must not delay the start, nor a SIGTERM)."""
    extra = asyncio.create_task(beside(), name="beside-worker") if beside is not None else None
    try:
        if standalone:
            await _run_signalled(w, store, settings)
        else:
            await w.run()
    finally:
        if extra is not None and not extra.done():
            extra.cancel()
            await asyncio.gather(extra, return_exceptions=True)


async def _run_signalled(w: Worker, store: PgStore, settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop(sig: signal.Signals) -> None:
        if not stopping:
            log.info("%s: draining (running activities get %g s)", sig.name, settings.worker.shutdown_grace_seconds)
            stopping.append(asyncio.ensure_future(w.shutdown()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    try:
        async with serve_health(settings.worker.health_host, settings.worker.health_port, worker_checks(w, store),
                                metrics=exposition() if settings.telemetry.metrics else None):
            await w.run()
        if stopping:
            await stopping[0]
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def run_worker(settings: Settings, *, standalone: bool = True) -> None:
    """`deploy-mcp worker` (standalone: signals and health endpoints its own), or the worker inside `dev`."""
    async with worker_clients(settings) as parts:
        def check() -> Coroutine[Any, Any, object]:
            return preflight_at_start(parts.kube, settings, parts.store)

        await run_until_signalled(parts.worker, parts.store, settings, standalone=standalone,
                                  beside=check if settings.worker.preflight_at_start else None)
