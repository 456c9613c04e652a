"""Logs: what the exact paging, masking and capping of `logs` cost over Loki's own API.

Starts the fake Loki (tests/fakes/fake_loki.py) in a child process, so time and memory below are the client
side only, loads 10,000 lines of one app (1,000 in one nanosecond, some long, some holding a secret), and
prints, measured in the same run:
(a) fetching all 10,000 lines in 200-line pages through LokiLogStore + the tool's page path (`read_capped`:
    cursor paging, masking, re-checking, clipping, caps): time, and peak memory with tracemalloc;
(b) one 200-line page through the same path;
(c) the floor: the very same query_range requests made with httpx alone (GET + JSON decode).
Tool and floor runs alternate, so load on the machine hits both alike. Besides wall time it prints this
process's CPU time (the fake Loki's own work is in its process), the steadier figure on a loaded machine, and
`ratio` lines. It checks that the tool path returned every line exactly once with the secret masked, and that
the floor received the same lines; otherwise, or when the fake Loki is not ready, it exits non-zero and prints
no figure.

Run: .venv/bin/python bench/logs.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from mcp_server.devenv.processes import free_port
from tools.logs import MAX_PAGE_BYTES, Budget, read_capped
from workflows.adapters.loki import LokiClient, LokiLogStore, LokiStream
from workflows.domain.log_paging import Direction, LogQuery, LogQueryError, LogStoreUnavailable
from workflows.domain.masking import SecretMasker

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk_live_7Qe9xLmN2pVb"
LINES = 10_000
PAGE = 200
SELECTOR = {"tenant": "acme", "project": "shop", "app": "web", "stream": "runtime"}


class RecordingLokiClient(LokiClient):
    """Notes every query_range request and how many lines it answered, so the floor replays exactly the same
    requests and can be checked to have received the same lines."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: list[dict[str, str | int]] = []
        self.lines_answered = 0

    async def query_range(self, query: str, start_ns: int, end_ns: int, limit: int,
                          direction: Direction) -> list[LokiStream]:
        self.calls.append({"query": query, "start": start_ns, "end": end_ns, "limit": limit, "direction": direction})
        streams = await super().query_range(query, start_ns, end_ns, limit, direction)
        self.lines_answered += sum(len(s.values) for s in streams)
        return streams


class CannotMeasure(Exception):
    """The run did not do the work it claims to measure; no figure is printed."""


def dataset(base: int) -> list[LokiStream]:
    pods: dict[str, list[tuple[int, str]]] = {"web-r1-a": [], "web-r1-b": [], "web-r2-a": []}
    for i in range(LINES):
        ts = base + 5_000_000 if i < 1000 else base + 10_000_000 + (i // 4) * 1_000_000
        if i % 1000 == 3:
            text = f"#{i:05d} LONG " + "x" * 10_000
        elif i % 500 == 7:
            text = f"#{i:05d} connecting with password={SECRET}"
        else:
            text = f"#{i:05d} GET /items/{i} 200 in {i % 97}ms level={'error' if i % 10 == 0 else 'info'}"
        pods[list(pods)[i % 3]].append((ts, text))
    return [LokiStream({**SELECTOR, "pod": pod, "container": "web"}, values) for pod, values in pods.items()]


async def all_pages(store: LokiLogStore, since_ns: int, masker: SecretMasker,
                    check: list[str] | None = None) -> int:
    """Every line in PAGE-line pages; with `check`, the returned texts are appended to it (outside the timing)."""
    q = LogQuery(selector=SELECTOR, since_ns=since_ns, limit=PAGE)
    seen = 0
    while True:
        page = await read_capped(store, q, masker, Budget(lines=PAGE, bytes=MAX_PAGE_BYTES))
        seen += len(page.views)
        if check is not None:
            check.extend(v.line for v in page.views)
        if page.next_cursor is None:
            return seen
        q = q.model_copy(update={"cursor": page.next_cursor})


async def one_page(store: LokiLogStore, since_ns: int, masker: SecretMasker) -> int:
    q = LogQuery(selector=SELECTOR, since_ns=since_ns, limit=PAGE)
    return len((await read_capped(store, q, masker, Budget(lines=PAGE, bytes=MAX_PAGE_BYTES))).views)


async def raw_replay(http: httpx.AsyncClient, calls: list[dict[str, str | int]]) -> int:
    seen = 0
    for params in calls:
        resp = await http.get("/loki/api/v1/query_range", params=params)
        resp.raise_for_status()
        seen += sum(len(s["values"]) for s in resp.json()["data"]["result"])
    return seen


@dataclass
class Figures:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process only: the fake Loki's work is in its own
    peak: int = 0


async def once(fn: Callable[[], Awaitable[int]], expect: int, what: str, into: Figures) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    got = await fn()
    into.wall.append(time.perf_counter() - wall)
    into.cpu.append(time.process_time() - cpu)
    if got != expect:
        raise CannotMeasure(f"{what} saw {got} lines, expected {expect}")


async def paired(tool: Callable[[], Awaitable[int]], tool_lines: int, raw: Callable[[], Awaitable[int]],
                 raw_lines: int, runs: int, what: str) -> tuple[Figures, Figures]:
    """Tool and floor runs interleaved, so a load change on the machine hits both alike; then peak memory."""
    t, r = Figures(), Figures()
    for _ in range(runs):
        await once(tool, tool_lines, f"{what}, tool path", t)
        await once(raw, raw_lines, f"{what}, raw httpx", r)
    for fn, into in ((tool, t), (raw, r)):
        tracemalloc.start()
        try:
            await fn()
            into.peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return t, r


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the fake Loki exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"the fake Loki did not answer {url}/ready within {seconds:.0f} s")


async def bench(url: str, runs: int) -> list[str]:
    since = time.time_ns() - 3600 * 10**9
    loader = LokiClient(url)
    await loader.push(dataset(since + 60 * 10**9))
    await loader.aclose()
    masker = SecretMasker({"API_KEY": SECRET, "DB_URL": "postgres://app:pw-0192@db/app"})
    client = RecordingLokiClient(url)
    store = LokiLogStore(client)
    http = httpx.AsyncClient(base_url=url, timeout=30.0)
    try:
        # One untimed pass that checks the measured path does all of its work: every line once, masked.
        texts: list[str] = []
        if (n := await all_pages(store, since, masker, texts)) != LINES:
            raise CannotMeasure(f"the tool path saw {n} lines, expected every one of the {LINES} exactly once")
        if len(set(t.split(" ", 1)[0] for t in texts)) != LINES:
            raise CannotMeasure("the tool path returned some line twice")
        masked = sum("[secret:API_KEY]" in t for t in texts)
        if any(SECRET in t for t in texts) or masked != LINES // 500:
            raise CannotMeasure(f"the secret was not masked as expected ({masked} masked lines)")
        full_calls, full_lines = list(client.calls), client.lines_answered
        client.calls.clear()
        client.lines_answered = 0
        if (n := await one_page(store, since, masker)) != PAGE:
            raise CannotMeasure(f"one page held {n} lines, expected {PAGE}")
        page_calls, page_lines = list(client.calls), client.lines_answered

        full = await paired(lambda: all_pages(store, since, masker), LINES,
                            lambda: raw_replay(http, full_calls), full_lines, runs, "all lines")
        page = await paired(lambda: one_page(store, since, masker), PAGE,
                            lambda: raw_replay(http, page_calls), page_lines, runs * 5, "one page")
    finally:
        await http.aclose()
        await store.aclose()

    out = [f"logs: {LINES:,} lines (1,000 in one nanosecond), {PAGE}-line pages, fake Loki in a child process; "
           f"medians of {runs} interleaved tool/raw runs (page rows: {runs * 5}); cpu = this process only",
           f"{'':36} {'wall':>10} {'client cpu':>11} {'peak memory':>12} {'requests':>9} {'lines in':>9}"]
    rows = [("(a) all 10,000 lines, tool path", full[0], len(full_calls), full_lines),
            ("(c) same requests, raw httpx", full[1], len(full_calls), full_lines),
            ("(b) one 200-line page, tool path", page[0], len(page_calls), page_lines),
            ("(c) same request, raw httpx", page[1], len(page_calls), page_lines)]
    for name, f, requests, lines_in in rows:
        out.append(f"{name:36} {statistics.median(f.wall) * 1000:7.1f} ms {statistics.median(f.cpu) * 1000:8.1f} ms "
                   f"{f.peak / 2**20:8.2f} MiB {requests:9d} {lines_in:9d}")
    for label, (tool, raw) in (("all_lines", full), ("one_page", page)):
        for kind in ("wall", "cpu"):
            t, r = statistics.median(getattr(tool, kind)), statistics.median(getattr(raw, kind))
            if t <= 0 or r <= 0:
                raise CannotMeasure(f"{label} {kind}: a median of 0 s cannot be compared")
            out.append(f"ratio {label}{'' if kind == 'wall' else '_cpu'} tool/raw {t / r:.2f}x")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    port = free_port()
    # The fake serves from a child process we started; it is stopped by its own handle, nothing broader.
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.fake_loki", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        try:
            lines = asyncio.run(bench(url, args.runs))
        except (CannotMeasure, httpx.HTTPError, LogStoreUnavailable, LogQueryError) as e:
            raise SystemExit(f"logs bench: cannot measure: {e}") from None
        print("\n".join(lines))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
