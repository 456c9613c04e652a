"""`deploy-mcp dev` as a user runs it: starts its embedded Postgres and Temporal, serves MCP over HTTP, prints
client configs with a working token; Ctrl-C (SIGINT) stops every process it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import StdioServerParameters
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.devenv.processes import free_port, process_starttime


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    parents: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = (int(x) for x in line.split())
        parents.setdefault(pp, []).append(p)
    found, todo = set(), [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            found.add(c)
            todo.append(c)
    return found


async def _whoami(url: str, token: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as h, \
            Client(streamable_http_client(url, http_client=h)) as c:
        r = await c.call_tool("whoami", {})
    content: dict[str, Any] | None = r.structured_content
    assert content is not None
    return content


async def _whoami_stdio(command: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    params = StdioServerParameters(command=command, args=args, env=dict(os.environ) | env)
    async with Client(params) as c:
        r = await c.call_tool("whoami", {})
    content: dict[str, Any] | None = r.structured_content
    assert content is not None
    return content


@pytest.mark.timeout(300)
def test_dev_serves_and_ctrl_c_stops_everything(workdir: Path) -> None:
    state = workdir / "dev-state"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KUBECONFIG")}
    env |= {"DEPLOY_MCP_STATE_DIR": str(state), "DEPLOY_MCP_HTTP_PORT": str(port)}
    exe = Path(sys.executable).parent / "deploy-mcp"
    proc = subprocess.Popen([str(exe), "dev", "--cluster", "none"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "ready. Ctrl-C stops everything." in line:
                break
        text = "".join(lines)
        assert "ready." in text, text
        assert "cluster: none (--cluster none)" in text
        token_match = re.search(r"Bearer (dmcp_[A-Za-z0-9_-]+)", text)
        assert token_match, text
        stdio_line = next(line for line in lines if '"args": ["serve", "--transport", "stdio"]' in line)
        stdio = json.loads(stdio_line.strip())
        assert stdio["mcpServers"]["deploy-mcp"]["env"]["DEPLOY_MCP_STATE_DIR"] == str(state)
        children = _children(proc.pid)
        assert len(children) >= 2  # postgres and temporal (postgres forks its own workers too)
        who = anyio.run(_whoami, f"http://127.0.0.1:{port}/mcp", token_match.group(1))
        assert who["tenant"] == "local" and who["subject"] == "dev" and who["via"] == "http-token"
        # the printed stdio config works as printed (what Claude Desktop would run)
        server = stdio["mcpServers"]["deploy-mcp"]
        assert "DEPLOY_MCP_TEMPORAL_ADDRESS" in server["env"]
        local = anyio.run(_whoami_stdio, server["command"], server["args"], server["env"])
        assert local["via"] == "stdio" and local["subject"] == "operator"
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + rest
    time.sleep(0.5)
    alive = [c for c in children if process_starttime(c) is not None]
    assert not alive, f"still running after Ctrl-C: {alive}"
    assert "stopping what dev started" in rest
