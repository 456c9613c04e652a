"""`make dev` to the first app serving, as a new user sees it: the seconds from starting `deploy-mcp dev` (fresh
state: a new Postgres, Temporal, testbed and edge) to its "ready" line, then from there through the first deploy
it prints (create_app of the example app over its streamable HTTP endpoint, with its token) to the app
answering through dev's edge. The floor, measured in the same run: the testbed alone brought up with one node,
which dev waits for before the platform can start; the ratio is dev's start over it.

Run: .venv/bin/python bench/dev_first_serving.py   (root: dev runs the testbed's node; nothing else may run it)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from bench._harness import CannotMeasure, Report
from mcp_server.devenv.dev import EDGE_HTTP_PORT
from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.processes import free_port


def testbed_floor(tb: Testbed) -> float:
    t = time.perf_counter()
    tb.up(node=True)
    elapsed = time.perf_counter() - t
    tb.down()
    return elapsed


def start_dev(state: Path, port: int) -> tuple[subprocess.Popen[str], float, str, dict[str, Any]]:
    """dev started; (process, seconds to "ready", token, the printed first create_app arguments)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KUBECONFIG")}
    env |= {"DEPLOY_MCP_STATE_DIR": str(state), "DEPLOY_MCP_HTTP_PORT": str(port)}
    exe = Path(sys.executable).parent / "deploy-mcp"
    t = time.perf_counter()
    proc = subprocess.Popen([str(exe), "dev"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    while time.perf_counter() - t < 600:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "ready. Ctrl-C stops everything." in line:
            ready = time.perf_counter() - t
            text = "".join(lines)
            tokens = re.findall(r"Bearer (dmcp_[A-Za-z0-9_-]+)", text)
            first = next((json.loads(x) for x in (s.strip() for s in lines) if x.startswith('{"project"')), None)
            if not tokens or first is None:
                proc.send_signal(signal.SIGINT)
                raise CannotMeasure(f"dev printed no token or no first call:\n{text[-2000:]}")
            return proc, ready, str(tokens[-1]), first
    proc.kill()
    raise CannotMeasure("dev never said ready:\n" + "".join(lines)[-2000:])


def stop_dev(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


async def first_deploy(url: str, token: str, args: dict[str, Any]) -> str:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=300) as h, \
            Client(streamable_http_client(url, http_client=h)) as c:
        r = await c.call_tool("create_app", args | {"wait_seconds": 240})
    created = r.structured_content or {}
    if r.is_error or created.get("phase") != "succeeded":
        raise CannotMeasure(f"the first create_app did not succeed: {created or r.content}")
    return str(created["url"]).split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]


def answers(host: str) -> bool:
    try:
        r = httpx.get(f"http://127.0.0.1:{EDGE_HTTP_PORT}/", headers={"Host": host}, timeout=3, trust_env=False)
    except httpx.HTTPError:
        return False
    return r.status_code == 200


def main() -> None:
    tb = Testbed()
    if not tb.built():
        raise CannotMeasure("the testbed is not built (`deploy-mcp testbed build`)")
    if any(tb.running().values()):
        raise CannotMeasure("a testbed is running: dev brings its own (stop it with `deploy-mcp testbed down`)")
    floor = testbed_floor(tb)
    state = Path(tempfile.mkdtemp(prefix="bench-dev-"))
    os.chmod(state, 0o755)  # noqa: S103 (dev's embedded Postgres runs as its own user under root)
    port = free_port()
    proc, ready, token, args = start_dev(state, port)
    try:
        t = time.perf_counter()
        host = asyncio.run(first_deploy(f"http://127.0.0.1:{port}/mcp", token, args))
        while not answers(host):
            if time.perf_counter() - t > 120:
                raise CannotMeasure(f"{host} never answered through dev's edge")
            time.sleep(0.1)
        serving = time.perf_counter() - t
    finally:
        stop_dev(proc)
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
