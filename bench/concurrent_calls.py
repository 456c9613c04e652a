"""100 concurrent create_app calls over streamable HTTP against `deploy-mcp serve` and `deploy-mcp worker` run
as real processes (errors, deployments created, acceptance p50/p99), printed beside a floor measured in the same
run (100 concurrent single-row INSERTs on the same database, on a pool of the server's size, + a Temporal workflow
start each), `ratio` lines (acceptance p50/p99 over the floor's), the goal (p99 < 100 ms, 0 errors) and the
resident memory of serve and worker at start and after the run. Exits 2, printing no figure, when it could not
measure (a service did not start, a measure got no answer at all); errors of some calls are figures.

No Kubernetes testbed: everything runs on loopback here (embedded Postgres, the Temporal dev server, Debian's
docker-registry for the image digest, and a stand-in API server that answers discovery and 503 to everything
else, so the worker starts and its deploy activities retry). This measures the control plane's acceptance of a
call, not deploys.

`serve` reads logs from Loki by default, as in production (a loopback URL nothing answers: no log tool is called
here), so it has no cluster client; `--serve-logs kube` gives it the kubeconfig instead, as `deploy-mcp dev` does
(the pod log API: the Kubernetes client is loaded, ~38 MB more).

`--rounds R` repeats the distinct-apps batch R-1 more times (new apps each time) and prints the RSS after each
round: memory that keeps growing round after round is a leak, memory that levels off is caches and arenas.

Run: .venv/bin/python bench/concurrent_calls.py [--calls N] [--serve-logs loki|kube] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2
import psycopg
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from psycopg_pool import AsyncConnectionPool
from temporalio import workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

from bench._harness import pct, quiet
from mcp_server.devenv.embedded import EmbeddedPostgres, TemporalDevServer
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, docker_registry, push_image
from mcp_server.devenv.processes import ManagedProcess, ServiceError, free_port, log_tail, port_open
from mcp_server.settings import DatabaseSettings

BIN = Path(sys.executable).parent
RSS_GOAL_MB = 150
CALLS_PER_MINUTE = 100_000  # the settings' ceiling: the bench token's burst must not meet the 120/min default
# the server's pool (settings database.pool_*; the bench leaves them at their defaults), so the floor queues for
# connections as the server does
POOL_MIN, POOL_MAX = DatabaseSettings().pool_min_size, DatabaseSettings().pool_max_size
P99_GOAL_MS = 100  # issue 20: acceptance under 100 concurrent calls, p99 under 100 ms with 0 errors


@workflow.defn(name="bench-empty", sandboxed=False)  # nothing to guard; the sandbox would re-import this script
class EmptyWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        return n


class StandInApiServer(BaseHTTPRequestHandler):
    """Discovery only (the worker reads /version, /apis/policy and /apis/autoscaling at start, `Kube.caps`);
    every other request is 503, so a deploy activity fails and retries as it would against an API server that
    is down."""

    def do_GET(self) -> None:
        answers: dict[str, Any] = {"/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0"},
                                   "/apis/policy": {"kind": "APIGroup", "name": "policy",
                                                    "versions": [{"groupVersion": "policy/v1", "version": "v1"}]},
                                   "/apis/autoscaling": {"kind": "APIGroup", "name": "autoscaling",
                                                         "versions": [{"groupVersion": "autoscaling/v2",
                                                                       "version": "v2"}]}}
        body = answers.get(self.path.split("?")[0])
        self._send(200 if body else 503, body or {"kind": "Status", "status": "Failure", "code": 503,
                                                  "message": "bench: no cluster"})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def stand_in_api_server(work: Path) -> Iterator[Path]:
    """A loopback stand-in API server and a kubeconfig naming it."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandInApiServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "bench",
        "clusters": [{"name": "bench", "cluster": {"server": f"http://127.0.0.1:{httpd.server_port}"}}],
        "users": [{"name": "bench", "user": {"token": "bench-not-a-secret"}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}]}))
    try:
        yield kubeconfig
    finally:
        httpd.shutdown()
        httpd.server_close()


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` and its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(proc.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used so far (its own threads; serve and worker start no processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cli(name: str, env: dict[str, str], run_dir: Path, *args: str) -> ManagedProcess:
    return ManagedProcess(name, [str(BIN / "deploy-mcp"), *args], run_dir, env=env)


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "deploy-mcp"), *args], env=env, capture_output=True, text=True, check=False,
                          timeout=120)
    if done.returncode != 0:
        raise ServiceError(f"deploy-mcp {' '.join(args)}: exit {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


async def worker_polls(address: str, queue: str, worker: ManagedProcess, timeout: float = 60) -> bool:
    """The worker polls `queue`; raises as soon as its process has exited (a start-up failure)."""
    client = await TemporalClient.connect(address)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.running_pid() is None:
            raise ServiceError(f"worker: exited before it polled {queue}; log {worker.log_file}:\n"
                               f"{log_tail(worker.log_file)}")
        r = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
        if r.pollers:
            return True
        await asyncio.sleep(0.2)
    return False


async def timed(coro: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    try:
        result = await coro
    except Exception as e:  # a failed call is counted, not raised: the bench reports errors
        result = e
    return time.perf_counter() - t, result


def error_text(result: Any) -> str | None:
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    if result.is_error:
        return str(result.content[0].text if result.content else result)
    return None


async def create_apps(url: str, token: str, image: str, calls: int, one_key: bool,
                      project: str = "bench") -> list[tuple[float, Any]]:
    """`calls` concurrent create_app on one MCP session, as one agent fanning out would."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as h, \
            Client(streamable_http_client(url, http_client=h)) as c:
        await c.call_tool("whoami", {})  # the session is set up before the clock runs

        def args(i: int) -> dict[str, Any]:
            a: dict[str, Any] = {"project": project, "name": "web" if one_key else f"web{i}", "port": 8080,
                                 "source": {"image": image}, "wait_seconds": 0}
            if one_key:
                a["idempotency_key"] = "bench-one-key"
            return a

        return await asyncio.gather(*(timed(c.call_tool("create_app", args(i))) for i in range(calls)))


async def floor(database_url: str, address: str, calls: int) -> tuple[list[float], int]:
    """`calls` concurrent (one INSERT on a pool of the server's size, then a workflow start without waiting)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_scratch (id uuid PRIMARY KEY, body jsonb NOT NULL)")
    client = await TemporalClient.connect(address)
    queue = f"bench-empty-{uuid.uuid4().hex[:6]}"

    async def one(pool: AsyncConnectionPool[Any], i: int) -> None:
        async with pool.connection() as c:
            await c.execute("INSERT INTO bench_scratch (id, body) VALUES (%s, %s)",
                            (uuid.uuid4(), json.dumps({"i": i})))
        await client.start_workflow(EmptyWorkflow.run, i, id=f"bench-empty-{uuid.uuid4()}", task_queue=queue)

    async with AsyncConnectionPool(database_url, min_size=POOL_MIN, max_size=POOL_MAX, open=False) as pool, \
            Worker(client, task_queue=queue, workflows=[EmptyWorkflow]):
        await pool.wait()
        results = await asyncio.gather(*(timed(one(pool, i)) for i in range(calls)))
    return [t for t, r in results], sum(1 for _, r in results if isinstance(r, BaseException))


async def count_deployments(database_url: str, tenant: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM deployments d JOIN apps a ON a.id = d.app_id JOIN projects p "
            "ON p.id = a.project_id JOIN tenants t ON t.id = p.tenant_id WHERE t.name = %s", (tenant,))
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def line(name: str, values: list[float], errors: int, extra: str = "") -> str:
    ms = [v * 1000 for v in values]
    if not ms:
        return f"{name:44} {0:>4} {errors:>6} {'-':>9} {'-':>9} {'-':>9} {extra}"
    return f"{name:44} {len(ms):>4} {errors:>6} {pct(ms, 50):>9.1f} {pct(ms, 99):>9.1f} {max(ms):>9.1f} {extra}"


async def main(calls: int, serve_logs: str, rounds: int) -> int:
    quiet()
    work = Path(tempfile.mkdtemp(prefix="deploy-mcp-bench-calls-"))
    os.chmod(work, 0o755)  # noqa: S103 - the embedded Postgres runs as its own user
    pg, temporal = EmbeddedPostgres(work / "pg"), TemporalDevServer(work / "temporal")
    with ExitStack() as stack:
        stack.callback(pg.stop)
        stack.callback(temporal.stop)
        database_url, address = pg.start(), temporal.start()
        registry = stack.enter_context(docker_registry(work / "registry"))
        kubeconfig = stack.enter_context(stand_in_api_server(work))
        await push_image(registry, "bench/web", "v1", busybox_web_files("bench"), cmd=BUSYBOX_HTTPD)
        image = f"{registry}/bench/web:v1"
        port, queue = free_port(), f"bench-{uuid.uuid4().hex[:6]}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("DEPLOY_MCP_")},
               "DATABASE_URL": database_url, "DEPLOY_MCP_TEMPORAL__ADDRESS": address,
               "DEPLOY_MCP_TEMPORAL__TASK_QUEUE": queue,
               "DEPLOY_MCP_SECRETS_KEY": Fernet.generate_key().decode(), "DEPLOY_MCP_STATE_DIR": str(work / "state"),
               "DEPLOY_MCP_HTTP__PORT": str(port),
               "DEPLOY_MCP_WORKER__HEALTH_PORT": str(free_port()),  # not 8766: another worker may hold it
               "DEPLOY_MCP_RATE_LIMITS__CALLS_PER_MINUTE": str(CALLS_PER_MINUTE),
               "DEPLOY_MCP_IMAGE_REGISTRY__HOST": registry}
        env.pop("KUBECONFIG", None)
        loki = {"DEPLOY_MCP_LOKI__URL": f"http://127.0.0.1:{free_port()}"}
        kube = {"DEPLOY_MCP_CLUSTER__KUBECONFIG": str(kubeconfig)}
        serve_env = {**env, **(loki if serve_logs == "loki" else kube)}
        worker_env = {**env, **kube, **(loki if serve_logs == "loki" else {})}
        run_cli(env, "migrate")
        tenant_a, tenant_b = f"a{uuid.uuid4().hex[:6]}", f"b{uuid.uuid4().hex[:6]}"
        token_a = run_cli(env, "token", "create", "--tenant", tenant_a, "--subject", "bench").splitlines()[0]
        token_b = run_cli(env, "token", "create", "--tenant", tenant_b, "--subject", "bench").splitlines()[0]
        serve = cli("serve", serve_env, work / "run", "serve", "--transport", "http")
        worker = cli("worker", worker_env, work / "run", "worker")
        stack.callback(worker.stop)
        stack.callback(serve.stop)
        serve.start()
        worker.start()
        serve.wait_ready(lambda: port_open("127.0.0.1", port), 60, "listening")
        if not await worker_polls(address, queue, worker):
            raise ServiceError(f"worker: not polling {queue} after 60 s; log {worker.log_file}")
        serve_pid, worker_pid = serve.running_pid(), worker.running_pid()
        assert serve_pid and worker_pid
        rss_start = (rss_mb(serve_pid), rss_mb(worker_pid))
        url = f"http://127.0.0.1:{port}/mcp"

        cpu = [(cpu_seconds(serve_pid), cpu_seconds(worker_pid))]
        distinct = await create_apps(url, token_a, image, calls, one_key=False)
        cpu.append((cpu_seconds(serve_pid), cpu_seconds(worker_pid)))
        same_key = await create_apps(url, token_b, image, calls, one_key=True)
        cpu.append((cpu_seconds(serve_pid), cpu_seconds(worker_pid)))
        floor_times, floor_errors = await floor(database_url, address, calls)
        await asyncio.sleep(5)  # the worker has picked up the deploys it was handed (its activities retry)
        deployments = (await count_deployments(database_url, tenant_a), await count_deployments(database_url, tenant_b))
        if serve.running_pid() is None or worker.running_pid() is None:
            raise ServiceError(f"serve or worker exited during the run; logs in {work / 'run'}")
        rss_end = (rss_mb(serve_pid), rss_mb(worker_pid))
        later = []
        for r in range(1, rounds):
            more = await create_apps(url, token_a, image, calls, one_key=False, project=f"bench{r}")
            later.append((sum(1 for _, x in more if error_text(x) is not None), rss_mb(serve_pid), rss_mb(worker_pid)))

    errors: list[str] = []
    rows, ratios, verdicts = [], [], []
    floor_ms = [t * 1000 for t in floor_times]
    if not floor_ms:
        raise ServiceError(f"the floor got no answers: all {floor_errors} INSERT + workflow starts failed")
    for name, key, results, goal, made in (
            (f"create_app x{calls}, distinct apps", "distinct", distinct, calls, deployments[0]),
            (f"create_app x{calls}, one idempotency key", "one_key", same_key, 1, deployments[1])):
        failed = [e for _, r in results if (e := error_text(r)) is not None]
        errors += failed
        ok = [t * 1000 for t, r in results if error_text(r) is None]
        if not ok:
            raise ServiceError(f"{name}: no call answered; first error: {failed[0][:300] if failed else '-'}")
        rows.append(line(name, [v / 1000 for v in ok], len(failed), f"deployments {made} (goal {goal})"))
        for q in (50, 99):
            ratios.append(f"ratio {key}_p{q}/floor_p{q} {pct(ok, q) / pct(floor_ms, q):.1f}x")
        met = pct(ok, 99) < P99_GOAL_MS and not failed and made == goal
        verdicts.append(f"goal {key}: p99 < {P99_GOAL_MS} ms, 0 errors, {goal} deployment(s): "
                        f"{'met' if met else 'NOT MET'} (p99 {pct(ok, 99):.1f} ms, {len(failed)} errors)")
    rows.append(line(f"floor: INSERT + workflow start x{calls}", floor_times, floor_errors,
                     f"(pool of {POOL_MIN}..{POOL_MAX}, as the server's)"))
    print("concurrent create_app over streamable HTTP (serve + worker as processes, no cluster: the worker's")
    print("deploy activities retry against a stand-in API server; this is the control plane's acceptance)")
    print(f"serve reads logs from {'Loki (no cluster client loaded)' if serve_logs == 'loki' else 'the pod log API'}")
    print(f"rate limit raised for the bench tokens: DEPLOY_MCP_RATE_LIMITS__CALLS_PER_MINUTE={CALLS_PER_MINUTE}")
    print(f"{'measure':44} {'n ok':>4} {'errors':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}")
    print("\n".join(rows))
    print("\n".join(ratios))
    print("\n".join(verdicts))
    # CPU is what load on a shared machine does not change: the serve process's work per call
    for i, key in enumerate(("distinct", "one_key")):
        (s0, w0), (s1, w1) = cpu[i], cpu[i + 1]
        print(f"CPU during the {key} batch: serve {(s1 - s0) * 1000 / calls:.1f} ms/call, "
              f"worker {(w1 - w0) * 1000 / calls:.1f} ms/call")
    for what, (start, end) in (("serve", (rss_start[0], rss_end[0])), ("worker", (rss_start[1], rss_end[1]))):
        verdict = "ok" if end < RSS_GOAL_MB else "OVER GOAL"
        print(f"RSS {what:6} at start {start:6.1f} MB, after the run {end:6.1f} MB "
              f"(goal < {RSS_GOAL_MB} MB: {verdict})")
    for r, (failed_r, serve_r, worker_r) in enumerate(later, start=2):
        print(f"round {r}: {calls} more distinct apps, {failed_r} errors; RSS serve {serve_r:6.1f} MB, "
              f"worker {worker_r:6.1f} MB")
    for e in sorted(set(errors))[:5]:
        print(f"error: {e[:300]}")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--serve-logs", choices=["loki", "kube"], default="loki")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    try:
        sys.exit(asyncio.run(main(a.calls, a.serve_logs, a.rounds)))
    except ServiceError as e:
        print(f"bench: could not measure: {e}", file=sys.stderr)
        sys.exit(2)
    except Exception as e:  # anything else that stopped the run: no figure was measured either
        print(f"bench: could not measure: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)
