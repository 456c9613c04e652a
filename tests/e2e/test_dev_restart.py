"""`deploy-mcp dev` stopped with Ctrl-C and started again, as a user does: dev tears its testbed down at exit
and starts an empty one next time, keeping its Postgres and Temporal state. Every recorded app must serve again
at its URL through dev's edge without any call (the reconciler re-applies it), on dev's default settings.

Runs with the drills, after every other test: dev brings its own testbed up and down."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import busybox_web_files, push_image
from mcp_server.devenv.processes import free_port
from tests.support.dev_process import DevProcess, edge_get

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.drill, pytest.mark.timeout(900)]
BOUND = 90.0  # seconds from "ready" to serving: dev's reconciler passes every 30 s, the first within one period


async def call(url: str, token: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=200) as h, \
            Client(streamable_http_client(url, http_client=h)) as c:
        r = await c.call_tool(tool, args)
    assert not r.is_error, r.content[0].text  # type: ignore[union-attr]
    content: dict[str, Any] | None = r.structured_content
    assert content is not None
    return content


def test_an_app_serves_again_after_dev_is_stopped_and_started(needs_node: Testbed, workdir: Path) -> None:
    needs_node.down()  # dev runs its own testbed, as on a user's machine
    try:
        restarted(DevProcess(workdir / "dev-restart", free_port()))
    finally:
        needs_node.up(node=True, nodes=2)  # the session's testbed again, for the drill after this one


def restarted(dev: DevProcess) -> None:
    """Create an app in dev, stop dev, start it again and wait for the app to serve; any failure carries what
    dev printed (dev runs in a child process, its log is nowhere else)."""
    mcp = dev.url
    dev.start()
    token = dev.token()
    try:
        anyio.run(functools.partial(push_image, "127.0.0.1:5000", "local/hello", "v1",
                                    busybox_web_files("hello from dev"),
                                    cmd=["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]))
        created = anyio.run(call, mcp, token, "create_app", {
            "project": "demo", "name": "hello", "source": {"image": "127.0.0.1:5000/local/hello:v1"},
            "port": 8080, "wait_seconds": 180})
        assert created["phase"] == "succeeded", created
        host = str(created["url"]).split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        deadline = time.monotonic() + 30
        while edge_get(host) != "hello from dev":
            assert time.monotonic() < deadline, f"{host} never served through dev's edge"
            time.sleep(0.3)
    except BaseException as e:
        code, rest = dev.stop()
        raise AssertionError(f"dev (exit {code}) printed:\n{(dev.output + rest)[-6000:]}") from e
    code, rest = dev.stop()
    assert code == 0 and "stopping what dev started" in rest, dev.output + rest

    dev.start()
    token = dev.token()
    try:
        ready = time.monotonic()
        while (got := edge_get(host)) != "hello from dev":
            assert time.monotonic() - ready < BOUND, f"after the restart {host} answers {got!r}"
            time.sleep(0.5)
        print(f"dev restart: the app served again {time.monotonic() - ready:.1f} s after dev was ready")
        # the pass that repaired says `degraded` (what it found); the next one, a period later, `running`
        while (shown := anyio.run(call, mcp, token, "apps", {"project": "demo", "app": "hello"}))[
                "status"] != "running":
            assert time.monotonic() - ready < BOUND + 40, shown
            time.sleep(1)
    except BaseException as e:
        code, rest = dev.stop()
        raise AssertionError(f"dev (exit {code}) printed:\n{(dev.output + rest)[-6000:]}") from e
    code, rest = dev.stop()
    assert code == 0, dev.output + rest
