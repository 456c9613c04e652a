"""Logs: what the exact paging, masking and capping of `logs` cost over Loki's own API.

Starts the fake Loki (tests/fakes/fake_loki.py) in a child process, so time and memory below are the client
side only, loads 10,000 lines of one app (1,000 in one nanosecond, some long, some holding a secret), and
prints, measured in the same run:
(a) fetching all 10,000 lines in 200-line pages through LokiLogStore + the tool's page path (`read_capped`:
    cursor paging, masking, re-checking, clipping, caps): time, and peak memory with tracemalloc;
(b) one 200-line page through the same path;
(c) the floor: the very same query_range requests made with httpx alone (GET + JSON decode).

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from mcp_server.devenv.processes import free_port
from tools.logs import MAX_PAGE_BYTES, Budget, read_capped
from workflows.adapters.loki import LokiClient, LokiLogStore, LokiStream
from workflows.domain.log_paging import Direction, LogQuery
from workflows.domain.masking import SecretMasker

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk_live_7Qe9xLmN2pVb"
LINES = 10_000
PAGE = 200
SELECTOR = {"tenant": "acme", "project": "shop", "app": "web", "stream": "runtime"}


class RecordingLokiClient(LokiClient):
    """Notes every query_range request, so the floor replays exactly the same ones."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls: list[dict[str, str | int]] = []

    async def query_range(self, query: str, start_ns: int, end_ns: int, limit: int,
                          direction: Direction) -> list[LokiStream]:
        self.calls.append({"query": query, "start": start_ns, "end": end_ns, "limit": limit, "direction": direction})
        return await super().query_range(query, start_ns, end_ns, limit, direction)


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


async def all_pages(store: LokiLogStore, since_ns: int, masker: SecretMasker) -> int:
    q = LogQuery(selector=SELECTOR, since_ns=since_ns, limit=PAGE)
    seen = 0
    while True:
        page = await read_capped(store, q, masker, Budget(lines=PAGE, bytes=MAX_PAGE_BYTES))
        seen += len(page.views)
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


async def timed(fn: Callable[[], Awaitable[int]], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def peak(fn: Callable[[], Awaitable[int]]) -> int:
    tracemalloc.start()
    try:
        await fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


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


async def bench(url: str, runs: int) -> None:
    since = time.time_ns() - 3600 * 10**9
    loader = LokiClient(url)
    await loader.push(dataset(since + 60 * 10**9))
    await loader.aclose()
    masker = SecretMasker({"API_KEY": SECRET, "DB_URL": "postgres://app:pw-0192@db/app"})
    client = RecordingLokiClient(url)
    store = LokiLogStore(client)
    http = httpx.AsyncClient(base_url=url, timeout=30.0)
    try:
        assert await all_pages(store, since, masker) == LINES, "the bench must see every line exactly once"
        full_calls = list(client.calls)
        client.calls.clear()
        await one_page(store, since, masker)
        page_calls = list(client.calls)
        assert await raw_replay(http, full_calls) >= LINES

        rows = [
            ("(a) all 10,000 lines, tool path", await timed(lambda: all_pages(store, since, masker), runs),
             await peak(lambda: all_pages(store, since, masker)), len(full_calls)),
            ("(c) same requests, raw httpx", await timed(lambda: raw_replay(http, full_calls), runs),
             await peak(lambda: raw_replay(http, full_calls)), len(full_calls)),
            ("(b) one 200-line page, tool path", await timed(lambda: one_page(store, since, masker), runs * 5),
             await peak(lambda: one_page(store, since, masker)), len(page_calls)),
            ("(c) same request, raw httpx", await timed(lambda: raw_replay(http, page_calls), runs * 5),
             await peak(lambda: raw_replay(http, page_calls)), len(page_calls)),
        ]
    finally:
        await http.aclose()
        await store.aclose()
    print(f"logs: {LINES:,} lines (1,000 in one nanosecond), {PAGE}-line pages, fake Loki in a child process; "
          f"median of {runs} runs (page rows: {runs * 5})")
    print(f"{'':36} {'time':>10} {'peak memory':>12} {'requests':>9}")
    for name, seconds, peak_bytes, requests in rows:
        print(f"{name:36} {seconds * 1000:8.1f} ms {peak_bytes / 2**20:8.2f} MiB {requests:9d}")
    print(f"tool path / raw floor: all lines {rows[0][1] / rows[1][1]:.2f}x, one page {rows[2][1] / rows[3][1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    # The fake serves from a child process we started; it is stopped by its own handle, nothing broader.
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.fake_loki", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        asyncio.run(bench(url, args.runs))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
