"""Shared by the bench scripts: the platform on embedded services and the testbed, in one process, with the
fake Longhorn beside it as in the tests (no storage controller runs on the testbed)."""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from mcp_server.devenv.embedded import EmbeddedPostgres, TemporalDevServer, Testbed
from mcp_server.devenv.platform import Platform, platform_settings, running_platform
from mcp_server.store import migrate
from tests.fakes.fake_longhorn import fake_longhorn
from workflows.domain.names import namespace_name
from workflows.domain.specs import AppConfig, ClusterCaps, Guardrails, HealthCheck, ReleaseSpec, Resources
from workflows.render.namespace import namespace_objects
from workflows.render.release import app_ingress, app_service, release_deployment, release_secret

TINY = {"cpu_millicores": 10, "cpu_limit_millicores": 100, "memory_mib": 32}


def quiet() -> None:
    """Bench output is the table: request logs of httpx (set to INFO by the MCP SDK's logging) are noise."""
    for name in ("httpx", "mcp", "temporalio"):
        logging.getLogger(name).setLevel(logging.WARNING)


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class CannotMeasure(SystemExit):
    """A figure the bench could not measure: it says why and exits non-zero, printing no number for it."""

    def __init__(self, why: str) -> None:
        print(f"cannot measure: {why}", file=sys.stderr)
        super().__init__(1)


@dataclass
class Report:
    """The bench's table: each row a measured series (seconds), printed in `unit`; then one `ratio` line per
    (measure, floor) pair, both measured in this run. A row with no values stops the bench (non-zero)."""

    unit: str = "ms"
    rows: list[tuple[str, list[float]]] = field(default_factory=list)
    ratios: list[tuple[str, str, tuple[str, ...], float | None]] = field(default_factory=list)

    def add(self, name: str, seconds: Sequence[float]) -> list[float]:
        values = [float(v) for v in seconds]
        if not values:
            raise CannotMeasure(f"{name}: no run finished")
        self.rows.append((name, values))
        return values

    def ratio(self, label: str, measure: str, floor: str | Sequence[str], goal: float | None = None) -> None:
        """`label`: p50 of `measure` over the p50 of `floor`, a row or several rows summed (a composed floor).
        Rows are named, never parsed: a name may itself hold a '+'."""
        self.ratios.append((label, measure, (floor,) if isinstance(floor, str) else tuple(floor), goal))

    def _p50(self, names: tuple[str, ...]) -> float:
        total = 0.0
        for name in names:
            values = dict(self.rows).get(name)
            if values is None:
                raise CannotMeasure(f"{name}: not measured")
            total += statistics.median(values)
        return total

    def print(self, title: str) -> None:
        scale = 1000.0 if self.unit == "ms" else 1.0
        print(title)
        width = max(len(n) for n, _ in self.rows) + 2
        print(f"{'measure':{width}} {'n':>4} {'p50 ' + self.unit:>9} {'p99 ' + self.unit:>9} {'max ' + self.unit:>9}")
        for name, values in self.rows:
            v = [x * scale for x in values]
            print(f"{name:{width}} {len(v):>4} {pct(v, 50):>9.2f} {pct(v, 99):>9.2f} {max(v):>9.2f}")
        for label, measure, floor, goal in self.ratios:
            r = self._p50((measure,)) / self._p50(floor)
            verdict = "" if goal is None else f" (goal < {goal:g}x: {'met' if r < goal else 'NOT met'})"
            print(f"ratio {label}: {r:.2f}x{verdict}")


@contextmanager
def services() -> Iterator[tuple[str, str, Testbed]]:
    """Postgres + Temporal dev server in a temp dir, and the testbed (started here unless it already runs)."""
    work = Path(tempfile.mkdtemp(prefix="deploy-mcp-bench-"))
    os.chmod(work, 0o755)  # noqa: S103 - the embedded Postgres runs as its own user
    pg, temporal, tb = EmbeddedPostgres(work / "pg"), TemporalDevServer(work / "temporal"), Testbed()
    started_testbed = False
    try:
        url, address = pg.start(), temporal.start()
        if not tb.running()["kubelet"]:
            tb.build()
            tb.down()
            tb.up(node=True, nodes=2)
            started_testbed = True
        yield url, address, tb
    finally:
        if started_testbed:
            tb.down()
        temporal.stop()
        pg.stop()


@asynccontextmanager
async def platform(url: str, address: str, tb: Testbed, *, start_worker: bool = True,
                   **overrides: object) -> AsyncIterator[Platform]:
    await migrate(url)
    settings = platform_settings(url, address, tb, **overrides)
    async with running_platform(settings, start_worker=start_worker, beside=[fake_longhorn]) as p:
        yield p


@workflow.defn(name="bench-empty", sandboxed=False)  # nothing to guard; the sandbox would re-import this script
class EmptyWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        return n


async def empty_workflow_times(address: str, runs: int) -> list[float]:
    """The durable floor: start an empty workflow and wait for its result, on a worker of this process."""
    client = await Client.connect(address)
    queue = f"bench-empty-{uuid.uuid4().hex[:6]}"
    times = []
    async with Worker(client, task_queue=queue, workflows=[EmptyWorkflow]):
        for i in range(runs):
            t = time.perf_counter()
            await client.execute_workflow(EmptyWorkflow.run, i, id=f"bench-empty-{uuid.uuid4()}", task_queue=queue)
            times.append(time.perf_counter() - t)
    return times


def kubectl_times(kubeconfig: Path, image: str, runs: int, tenant: str, prefix: str = "k", *,
                  health_check: HealthCheck | None) -> list[float]:
    """The release floor: the objects a release of `image` needs, `kubectl apply` + `kubectl rollout status`
    (projects `<prefix>0`, `<prefix>1`, ... of `tenant`, deleted after). `health_check` is the one the measured
    app runs with (None: none, a TCP probe): the probe's period decides when a started pod first counts as ready."""
    kubectl = [str(kubeconfig.parent.parent / "bin" / "kubectl"), f"--kubeconfig={kubeconfig}"]
    caps = ClusterCaps(minor=20, pdb_api="policy/v1beta1", network_policy_end_port=False)
    times = []
    for i in range(runs):
        project = f"{prefix}{i}"
        ns = namespace_name(tenant, project)
        config = AppConfig(port=8080, resources=Resources(**TINY),
                           health_check=health_check, shutdown_grace_seconds=1)
        spec = ReleaseSpec(tenant=tenant, project=project, app="web", namespace=ns, seq=1,
                           deployment_id=str(uuid.uuid4()), image=image, config=config, runtime_class="runc")
        objs = [*namespace_objects(tenant, project, ns, Guardrails(), caps), release_secret(spec, {}),
                release_deployment(spec), app_service(ns, tenant, project, "web", spec.release),
                app_ingress(ns, tenant, project, "web", f"web-{project}-{tenant}.apps.localhost", None, None)]
        doc = {"apiVersion": "v1", "kind": "List", "items": objs}
        t = time.perf_counter()
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(doc), text=True, check=True,
                       capture_output=True)
        subprocess.run([*kubectl, "-n", ns, "rollout", "status", "deploy/web-r1", "--timeout=120s"], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - t)
        subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], check=True, capture_output=True)
    return times


async def timeline(address: str, workflow_id: str, called_at: float) -> list[str]:
    """Where a workflow's time went, from its history: each activity's wait in the task queue and its run,
    each workflow task, each local activity's marker, as milliseconds since the tool was called (`called_at`,
    wall-clock seconds; the Temporal server runs on this machine, so its event times share the clock)."""
    client = await Client.connect(address)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names: dict[int, str] = {}
    lines: list[str] = []
    for e in history.events:
        at = (e.event_time.ToDatetime().timestamp() - called_at) * 1000
        kind = e.WhichOneof("attributes") or ""
        what = kind.removesuffix("_event_attributes")
        if kind == "activity_task_scheduled_event_attributes":
            names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
            what += f" {names[e.event_id]}"
        elif kind in ("activity_task_started_event_attributes", "activity_task_completed_event_attributes"):
            what += f" {names.get(getattr(e, kind).scheduled_event_id, '?')}"
        elif kind == "marker_recorded_event_attributes":
            data = e.marker_recorded_event_attributes.details.get("data")
            raw = data.payloads[0].data if data and data.payloads else b"{}"
            try:
                info = json.loads(raw)
            except ValueError:
                info = {}
            if isinstance(info, dict) and info.get("activity_type"):
                done = info.get("complete_time") or {}
                ended = (done.get("seconds", 0) + done.get("nanos", 0) / 1e9 - called_at) * 1000
                what += f" {info['activity_type']} (local, ended at {ended:.1f} ms)"
            elif e.marker_recorded_event_attributes.marker_name:
                what += f" {e.marker_recorded_event_attributes.marker_name}"
        lines.append(f"  {at:9.1f} ms  {what}")
    return lines
