"""`make dev` to the first app serving, as a new user sees it: the seconds from starting `deploy-mcp dev` (fresh
state: a new Postgres, Temporal, testbed and edge) to its "ready" line, then from there through the first deploy
it prints (create_app of the example app over its streamable HTTP endpoint, with its token) to the app
answering through dev's edge. The floor, measured in the same run: the testbed alone brought up with one node,
which dev waits for before the platform can start; the ratio is dev's start over it.

Run: .venv/bin/python bench/dev_first_serving.py   (root: dev runs the testbed's node; nothing else may run it)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from bench._harness import CannotMeasure, Report
from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.processes import free_port
from tests.support.dev_process import DevNotReady, DevProcess, edge_get


def testbed_floor(tb: Testbed) -> float:
    t = time.perf_counter()
    tb.up(node=True)
    elapsed = time.perf_counter() - t
    tb.down()
    return elapsed


async def first_deploy(url: str, token: str, args: dict[str, Any]) -> str:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=300) as h, \
            Client(streamable_http_client(url, http_client=h)) as c:
        r = await c.call_tool("create_app", args | {"wait_seconds": 240})
    created = r.structured_content or {}
    if r.is_error or created.get("phase") != "succeeded":
        raise CannotMeasure(f"the first create_app did not succeed: {created or r.content}")
    return str(created["url"]).split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]


def main() -> None:
    tb = Testbed()
    if not tb.built():
        raise CannotMeasure("the testbed is not built (`deploy-mcp testbed build`)")
    if any(tb.running().values()):
        raise CannotMeasure("a testbed is running: dev brings its own (stop it with `deploy-mcp testbed down`)")
    floor = testbed_floor(tb)
    state = Path(tempfile.mkdtemp(prefix="bench-dev-"))
    os.chmod(state, 0o755)  # noqa: S103 (dev's embedded Postgres runs as its own user under root)
    dev = DevProcess(state, free_port())
    try:
        ready = dev.start(timeout=600)
        token, args = dev.token(), dev.first_call()
    except DevNotReady as e:
        raise CannotMeasure(str(e)) from e
    try:
        t = time.perf_counter()
        host = asyncio.run(first_deploy(dev.url, token, args))
        while edge_get(host) is None:
            if time.perf_counter() - t > 120:
                raise CannotMeasure(f"{host} never answered through dev's edge")
            time.sleep(0.1)
        serving = time.perf_counter() - t
    finally:
        dev.stop()
    report = Report(unit="s")
    report.add("dev start -> ready (fresh state)", [ready])
    report.add("ready -> the first app serving at its URL", [serving])
    report.add("dev start -> the first app serving", [ready + serving])
    report.add("floor: the testbed alone up with one node", [floor])
    report.ratio("dev start -> ready / testbed up", "dev start -> ready (fresh state)",
                 "floor: the testbed alone up with one node")
    report.print("make dev, first minute")


if __name__ == "__main__":
    main()
