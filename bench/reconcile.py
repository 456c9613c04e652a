"""The reconciler when nothing changed: 100 serving apps on the testbed, no drift, and a pass over each (the
`reconcile_app` activity's work: the app's row lock, rendering, the API reads, comparing, the observation row),
sequential and with the worker's `concurrent_passes`; beside the floor measured in the same run: the very same
API requests (recorded during the first sweep) replayed raw, sequentially. A pass that finds drift or repairs
anything makes the bench stop (it measures the steady state only).

Run: .venv/bin/python bench/reconcile.py [--apps N]   (root: needs the testbed's nodes)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubernetes_asyncio.client.exceptions import ApiException
from temporalio.client import Client

from bench._harness import TINY, CannotMeasure, Report, platform, quiet, services
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform
from mcp_server.startup import load_secretbox
from mcp_server.worker import reconcile_config
from workflows.activities.reconcile import ReconcileActivities
from workflows.domain.reconcile_contract import ReconcilePass

Request = tuple[str, str, list[tuple[str, Any]] | None]


async def create_apps(p: Platform, image: str, n: int) -> list[UUID]:
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> UUID:
        async with gate, p.client() as c:
            r = await c.call_tool("create_app", {"project": f"r{i // 10}", "name": f"a{i}", "port": 8080,
                                                 "source": {"image": image}, "resources": TINY, "wait_seconds": 240,
                                                 "shutdown_grace_seconds": 1})
        if not r.structured_content or r.structured_content.get("phase") != "succeeded":
            raise CannotMeasure(f"app a{i} did not become serving: {r.structured_content or r.content}")
        app = await p.deps.store.get_app(p.tenant, f"r{i // 10}", f"a{i}")
        assert app is not None
        return app.id

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def sweep(reconciler: ReconcileActivities, apps: list[UUID], concurrency: int) -> list[float]:
    gate = asyncio.Semaphore(concurrency)
    times: list[float] = []

    async def one(app_id: UUID) -> None:
        async with gate:
            t = time.perf_counter()
            result = await reconciler._reconcile(ReconcilePass(app_id=app_id))
            times.append(time.perf_counter() - t)
        if result.state != "observed" or result.drift or result.repaired or not result.healthy:
            raise CannotMeasure(f"app {app_id}: not the steady state: {result.model_dump(exclude_none=True)}")

    await asyncio.gather(*(one(a) for a in apps))
    return times


async def raw_replay(p: Platform, requests: list[Request]) -> float:
    t = time.perf_counter()
    for method, path, query in requests:
        try:
            await p.kube.api.call_api(path, method, query_params=query or [],
                                      header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
                                      response_types_map={200: "object"})
        except ApiException as e:  # an optional object the pass asked for and found absent: the same round trip
            if e.status != 404:
                raise
    return time.perf_counter() - t


async def main(n: int) -> None:
    quiet()
    with services() as (url, address, tb):
        await push_image("127.0.0.1:5000", "bench/rec", "v1", busybox_web_files("steady"), cmd=BUSYBOX_HTTPD)
        # the platform's own loops stay off: the bench drives the passes itself
        async with platform(url, address, tb) as p:
            apps = await create_apps(p, "127.0.0.1:5000/bench/rec:v1", n)
            temporal = await Client.connect(address)
            reconciler = ReconcileActivities(p.kube, p.deps.store, load_secretbox(p.settings),  # type: ignore[arg-type]
                                             reconcile_config(p.settings), temporal=temporal)
            requests: list[Request] = []
            call = p.kube._call

            async def recording(method: str, path: str, what: str, **kw: Any) -> Any:
                requests.append((method, path, kw.get("query")))
                return await call(method, path, what, **kw)

            p.kube._call = recording  # type: ignore[method-assign]
            first = await sweep(reconciler, apps, 1)
            p.kube._call = call  # type: ignore[method-assign]
            if any(m != "GET" for m, _, _ in requests):
                raise CannotMeasure(f"a steady-state sweep wrote: {[r for r in requests if r[0] != 'GET'][:3]}")
            sequential = [sum(await sweep(reconciler, apps, 1)) for _ in range(3)]
            walls = []
            for _ in range(3):
                t = time.perf_counter()
                await sweep(reconciler, apps, p.settings.reconcile.concurrent_passes)
                walls.append(time.perf_counter() - t)
            per_pass = await sweep(reconciler, apps, 1)
            floor = [await raw_replay(p, requests) for _ in range(3)]
    report = Report()
    report.add(f"one pass, no drift (first sweep, {n} apps)", first)
    report.add("one pass, no drift", per_pass)
    report.add(f"sweep of {n} apps, one pass at a time", sequential)
    report.add(f"sweep of {n} apps, concurrent_passes at once (wall)", walls)
    report.add(f"floor: the sweep's {len(requests)} API reads, raw, one at a time", floor)
    report.ratio("sequential sweep / its raw API reads", f"sweep of {n} apps, one pass at a time",
                 f"floor: the sweep's {len(requests)} API reads, raw, one at a time")
    report.print(f"reconcile, {n} serving apps, nothing drifted ({len(requests) / n:.1f} API reads per pass)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=100)
    asyncio.run(main(ap.parse_args().apps))
