"""Fuzzing the tools over MCP: the platform a fuzz run talks to, the calls it makes and the properties every
call must keep. Shared by tests/integration/test_fuzz_tools.py (a bounded, derandomized run in `make test`)
and bench/fuzz.py (a longer one).

Calls: for every tool of tools/list (through a real `Client`), arguments drawn from its `inputSchema` as served
(hypothesis-jsonschema), names of the seeded objects mixed in so calls get past the lookups, and one leaf (or
a map key) swapped for a hostile value: NUL, lone surrogates, 1 MiB, path traversal, URLs to private and
metadata addresses, `--option` refs, shell metacharacters. Arguments that make a call wait on the worker
(`wait_seconds`, `follow_seconds`) are pinned to 0: no worker runs, and waiting is not what is fuzzed.

Properties, checked after each call: no internal error (no "Error executing tool", no exception in the client,
no audit row saying "internal error"); exactly one new audit row; and a refused call changed no row of any
table (a checksum of every table but the audit trail) and started or cancelled no workflow.

The platform: real Postgres, a real Temporal server (no worker: a start only needs the server), a real OCI
registry (Debian's docker-registry) holding the seeded app's image; the log store and the cluster-reading
`diagnose` are stood in (no cluster runs here).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from mcp.client import Client
from mcp.types import CallToolResult, TextContent

from mcp_server.devenv.images import push_image
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from workflows.domain.database_observation import DatabaseObservation, ObserveInput
from workflows.domain.diagnose_contract import DiagnoseInput, Diagnosis
from workflows.domain.log_paging import LogPage, LogQuery
from workflows.domain.scaling_contract import AppMetrics, MetricsInput, ScaleInput, ScaleResult

MIB = 1 << 20
HOSTILE: tuple[str, ...] = (
    "sh\x00op", "\x00", "web\x00", "x" * MIB, "\ud800", "a\udfffb", "\udbff\udfff",
    "../../etc/passwd", "..", "/data/../../etc", "%2e%2e%2f", "web/../../x",
    "http://169.254.169.254/latest/meta-data/", "169.254.169.254/latest/app:v1", "10.0.0.1:5000/a/web:v1",
    "http://10.0.0.1/", "[::1]:5000/a/web:v1", "https://[::1]/o/r.git", "localhost:5000/a/web:v1",
    "https://localhost/o/r.git", "https://169.254.169.254/o/r.git", "git@10.0.0.1:o/r", "ssh://[::1]/o/r",
    "file:///etc/passwd", "--upload-pack=touch /tmp/pwned", "-oProxyCommand=id", "--help",
    "$(id)", "`id`", "; rm -rf /", "a|b", "a && b", "x\ny", "\r\nX-Injected: 1", "' OR '1'='1", "{{7*7}}",
    "%s%n", "", " ", "\u202egnp.exe", "\ufeffweb", "\U0001f600", "A" * 300,
)
# Calls whose arguments would make the server wait for a worker that is not there.
PINNED = {"wait_seconds": 0, "follow_seconds": 0}


@dataclass
class Seeded:
    """What the seed created, by the argument names that refer to it."""

    known: dict[str, list[Any]] = field(default_factory=dict)


class RecordingWorkflows(TemporalWorkflows):
    """The real Temporal port, remembering every workflow it started or cancelled; `diagnose` (a read-only
    activity on the cluster, which does not run here) answers "no pods"."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def _start(self, wf: str, arg: object, workflow_id: str) -> None:
        await super()._start(wf, arg, workflow_id)
        self.started.append(workflow_id)

    async def cancel(self, workflow_id: str) -> None:
        await super().cancel(workflow_id)
        self.cancelled.append(workflow_id)

    async def diagnose(self, inp: DiagnoseInput) -> Diagnosis:
        return Diagnosis(healthy=False)

    async def run_scale(self, workflow_id: str, inp: ScaleInput, wait_seconds: float) -> ScaleResult | None:
        await self._start("scale-app", inp, workflow_id)  # no worker here: started, never finished
        return None

    async def app_metrics(self, inp: MetricsInput) -> AppMetrics:
        return AppMetrics(notes=["the app has no pods"])

    async def observe_database(self, inp: ObserveInput) -> DatabaseObservation:
        return DatabaseObservation()



class EmptyLogs:
    """A log store with no lines (no cluster, no Loki here): the tools' own checks are what is fuzzed."""

    source = "stand-in"

    async def read(self, q: LogQuery) -> LogPage:
        from workflows.domain.log_paging import Cursor

        start = q.cursor or Cursor(ts_ns=q.since_ns, skip=0, direction=q.direction, query=q.fingerprint())
        return LogPage(lines=[], start=start, next_cursor=None, source=self.source)

    async def labels(self, selector: dict[str, str]) -> dict[str, list[str]]:
        return {}


async def seed(client: Client, store: PgStore, registry: str, tenant: str, project: str = "shop", app: str = "web",
               volume: str = "data") -> Seeded:
    """An app with a release and a secret, a bound volume with a ready snapshot, a build, in the client's
    tenant (`tenant`): what the fuzz's calls name, so they reach past the lookups."""
    async with httpx.AsyncClient(timeout=30) as h:
        await push_image(registry, f"{tenant}/{app}", "v1", {"index.html": b"hello"}, client=h)
    image = f"{registry}/{tenant}/{app}:v1"
    r = await client.call_tool("create_app", {"project": project, "name": app, "source": {"image": image},
                                              "port": 8080, "secrets": {"API_KEY": "s3cr3t-value"},
                                              "env": {"MODE": "x"}, "wait_seconds": 0})
    assert not r.is_error, text_of(r)
    assert r.structured_content is not None
    deployment_id, app_id = r.structured_content["deployment_id"], r.structured_content["app_id"]
    v = await client.call_tool("volume", {"action": "create", "project": project, "volume": volume, "size_gib": 1,
                                                 "wait_seconds": 0})
    assert not v.is_error, text_of(v)
    found = await store.get_volume(tenant, project, volume)
    assert found is not None
    async with store.pool.connection() as conn:
        await conn.execute("UPDATE volumes SET status = 'bound' WHERE id = %s", (found.id,))
        snap, _ = await store.record_snapshot(found.id, "snapshot", f"{volume}-snap-seed", "seed")
        await conn.execute("UPDATE volume_snapshots SET status = 'ready', ready_at = now() WHERE id = %s", (snap.id,))
        build = await (await conn.execute(
            "INSERT INTO builds (app_id, deployment_id, commit_sha, builder, status, workflow_id) "
            "VALUES (%s, %s, %s, 'dockerfile', 'failed', 'build/seed') RETURNING id",
            (app_id, deployment_id, "a" * 40))).fetchone()
        assert build is not None
        await conn.execute("INSERT INTO build_log_lines (build_id, seq, line) VALUES (%s, 0, 'step 1')",
                           (build["id"],))
    return Seeded(known={
        "project": [project], "app": [app], "name": [app, volume, "fresh"], "volume": [volume],
        "deployment_id": [deployment_id], "build_id": [str(build["id"])], "from_snapshot": [str(snap.id)],
        "to": [deployment_id], "confirm": [f"{project}/{app}", f"{project}/{volume}"],
        "mount_path": ["/data", "/srv/x"], "image": [image], "tool": ["create_app", "whoami"],
    })


def text_of(r: CallToolResult) -> str:
    return "\n".join(c.text for c in r.content if isinstance(c, TextContent))


# --- the calls --------------------------------------------------------------------------------------------------

Path = tuple[Any, ...]


def _leaves(value: Any, path: Path = ()) -> list[tuple[Path, bool]]:
    """(path, is_key) of every leaf of a JSON value, and of every map key (is_key: rename that key)."""
    out: list[tuple[Path, bool]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(((*path, k), True))
            out.extend(_leaves(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_leaves(v, (*path, i)))
    else:
        out.append((path, False))
    return out


def _replace(value: Any, path: Path, new: Any, is_key: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        if is_key and not rest:
            return {(new if k == head else k): v for k, v in value.items()}
        return {k: (_replace(v, rest, new, is_key) if k == head else v) for k, v in value.items()}
    return [(_replace(v, rest, new, is_key) if i == head else v) for i, v in enumerate(value)]


def _with_known(value: Any, known: Mapping[str, list[Any]], draw: Callable[[st.SearchStrategy[Any]], Any]) -> Any:
    """Some values swapped for the seeded objects' names (by argument name, at any depth)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            choices = known.get(k)
            if choices and not isinstance(v, dict | list) and draw(st.integers(0, 3)) > 0:
                out[k] = draw(st.sampled_from(choices))
            else:
                out[k] = _with_known(v, known, draw)
        return out
    if isinstance(value, list):
        return [_with_known(v, known, draw) for v in value]
    return value


def call_arguments(schema: dict[str, Any], known: Mapping[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments valid by `schema`, mostly naming the seeded objects, two calls in three with one hostile value
    (a leaf or a map key; sometimes a leaf of another type), some with an extra, unknown argument."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        drawn = draw(from_schema(schema))
        assert isinstance(drawn, dict)  # every inputSchema is an object
        args: dict[str, Any] = drawn
        args = _with_known(args, known, draw)
        leaves = _leaves(args)
        if leaves and draw(st.integers(0, 2)) > 0:
            path, is_key = draw(st.sampled_from(leaves))
            args = _replace(args, path, draw(st.sampled_from(HOSTILE)), is_key)
        if draw(st.integers(0, 19)) == 0:
            args[draw(st.sampled_from(HOSTILE[:12]))] = "extra"
        for k, v in PINNED.items():
            if k in args:
                args[k] = v
        return args

    return build()


# --- the properties ---------------------------------------------------------------------------------------------


@dataclass
class Tally:
    calls: int = 0
    refused: int = 0
    by_tool: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # (seconds, call), the 10 slowest


class Fuzzer:
    """Makes one call and checks what it left; `collect` keeps going after a broken property (the bench)."""

    def __init__(self, client: Client, store: PgStore, workflows: RecordingWorkflows, collect: bool = False,
                 bookkeeping: tuple[str, ...] = ()) -> None:
        """`bookkeeping`: tables a request writes before any tool runs (over HTTP, the token's last use)."""
        self.client, self.store, self.workflows, self.collect = client, store, workflows, collect
        self.bookkeeping = ("audit_events", "schema_migrations", *bookkeeping)
        self.tally = Tally()
        self._tables: list[str] = []

    async def _state(self) -> tuple[int, dict[str, str]]:
        async with self.store.pool.connection() as conn:
            if not self._tables:
                rows = await (await conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                    "AND table_type = 'BASE TABLE' ORDER BY 1")).fetchall()
                self._tables = [r["table_name"] for r in rows if r["table_name"] not in self.bookkeeping]
            sums = ", ".join(f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {t} t) "
                             f"AS {t}" for t in self._tables)
            row = await (await conn.execute(f"SELECT (SELECT max(id) FROM audit_events) AS audit, "
                                            f"(SELECT count(*) FROM audit_events) AS audits, {sums}")).fetchone()
        assert row is not None
        return int(row["audits"]), {t: row[t] for t in self._tables}

    def _fail(self, tool: str, args: dict[str, Any], problem: str) -> None:
        shown = {k: (v if len(repr(v)) < 200 else repr(v)[:200] + "...") for k, v in args.items()}
        message = f"{tool}({shown!r}): {problem}"
        self.tally.problems.append(message)
        if not self.collect:
            raise AssertionError(message)

    async def check(self, tool: str, args: dict[str, Any]) -> CallToolResult | None:
        """The call's result (None when the client could not send it), after checking its properties."""
        audits, before = await self._state()
        started, cancelled = len(self.workflows.started), len(self.workflows.cancelled)
        self.tally.calls += 1
        self.tally.by_tool[tool] = self.tally.by_tool.get(tool, 0) + 1
        t0 = time.monotonic()
        try:
            r = await self.client.call_tool(tool, args)
        except Exception as e:  # a protocol error, or the client could not even send it
            if isinstance(e, UnicodeEncodeError | ValueError) and _unsendable(args):
                return None  # JSON-RPC framing cannot carry a lone surrogate raw; over HTTP it arrives escaped
            self._fail(tool, args, f"the client raised {type(e).__name__}: {e}"[:500])
            return None
        took = time.monotonic() - t0
        self.tally.slowest = sorted([*self.tally.slowest, (took, f"{tool} {repr(args)[:150]}")], reverse=True)[:10]
        text = text_of(r)
        if text.startswith("Error executing tool") or "internal error" in text.lower():
            self._fail(tool, args, f"internal error: {text[:300]}")
        after_audits, after = await self._state()
        if after_audits != audits + 1:
            self._fail(tool, args, f"{after_audits - audits} audit rows instead of 1")
        async with self.store.pool.connection() as conn:
            last = await (await conn.execute("SELECT tool, outcome, error FROM audit_events ORDER BY id DESC "
                                             "LIMIT 1")).fetchone()
        if last is not None and (last["error"] or "").startswith("internal error"):
            self._fail(tool, args, f"the audit row says {last['error']}")
        if not r.is_error:
            return r
        self.tally.refused += 1
        changed = sorted(t for t in before if before[t] != after[t])
        if changed:
            self._fail(tool, args, f"refused ({text[:200]}) but wrote rows in {changed}")
        if len(self.workflows.started) != started or len(self.workflows.cancelled) != cancelled:
            self._fail(tool, args, f"refused ({text[:200]}) but started {self.workflows.started[started:]} / "
                                   f"cancelled {self.workflows.cancelled[cancelled:]}")
        return r


def _unsendable(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, dict):
        return any(_unsendable(k) or _unsendable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unsendable(v) for v in value)
    return False


async def fuzz_tools(fuzzer: Fuzzer, schemas: Mapping[str, dict[str, Any]], known: Mapping[str, list[Any]],
                     examples: int, seed: int | None = None) -> Tally:
    """`examples` calls per tool, generated by hypothesis in a worker thread while this loop serves them
    (hypothesis' runner is synchronous); derandomized unless a `seed` is given."""
    loop = asyncio.get_running_loop()

    def run(tool: str, schema: dict[str, Any]) -> None:
        @settings(max_examples=examples, derandomize=seed is None, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink],
                  print_blob=False)
        @given(call_arguments(schema, known))
        def one(args: dict[str, Any]) -> None:
            asyncio.run_coroutine_threadsafe(fuzzer.check(tool, args), loop).result(timeout=120)

        if seed is not None:
            from hypothesis import seed as with_seed

            one = with_seed(seed)(one)
        one()

    for tool, schema in schemas.items():
        await asyncio.to_thread(run, tool, schema)
    return fuzzer.tally


def new_task_queue() -> str:
    return f"fuzz-{uuid.uuid4().hex[:8]}"
