"""A new agent's first session on the testbed, over MCP only (issue 19's "done when"), with deploy on push and
previews for real. The example app (examples/hello's page, its Dockerfile on the testbed's local base image) is
in a repository on the local git server; signed deliveries are posted to the platform's own HTTP endpoint:

- tools/list fits the token budget; create_app from git waits until it serves; its URL answers a plain HTTP
  client (the standard library's, through the edge); its build's output and its runtime log line read back;
- a push of a new commit to `main` -> the new page serves at the app's URL; `rollback` -> the first page again;
- a pull request opened -> the preview app `hello-pr1` answers at its own URL with the pull request's page;
- the pull request closed -> the preview is deleted and its URL stops answering; the app still serves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.git_server import GitHttpsServer, git_cmd, self_signed_tls
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from mcp_server.devenv.processes import free_port
from mcp_server.server import build_server
from mcp_server.wiring import http_server
from tests.conftest import Edge
from tests.support.git_deliveries import delivery_headers, encode, pull_request_payload, push_payload
from tests.support.platform import ok, running_platform
from tests.support.serving import serving
from tools.surface import TOOL_LIST_BUDGET, list_tokens

pytestmark = [
    pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("buildah") is None,
                       reason="the local builder needs root and buildah (CI has both)"),
]
REGISTRY = "127.0.0.1:5000"
TOKEN = "glpat-Test0nly0Token0For0PushHooks0"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"
STARTED = "hello: serving /www on 8080"


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed, workdir: Path
                   ) -> AsyncIterator[tuple[Platform, Path]]:
    tls = self_signed_tls(Path(tempfile.mkdtemp(prefix="hooks-tls-")))
    settings = platform_settings(database_url, temporal_address, needs_node, http={"port": free_port()},
                                 git={"allowed_hosts": ["127.0.0.1"], "ca_file": tls[0]},
                                 build={"dir": workdir / "hook-builds"})
    async with running_platform(settings) as p:
        server = http_server(settings, build_server(p.deps, transport="http", public_url=settings.http.mcp_url()))
        async with serving(server):  # the webhook endpoint, beside the MCP one
            yield p, tls[0].parent


def example_repo(repos: Path, work: Path, base: str) -> None:
    """examples/hello as a repository: its page, and its Dockerfile on the testbed's base (no Docker Hub here)."""
    git_cmd("init", "-q", "--bare", "-b", "main", str(repos / "hello.git"), cwd=repos)
    git_cmd("init", "-q", "-b", "main", str(work), cwd=work)
    (work / "index.html").write_text((EXAMPLE / "index.html").read_text())
    (work / "Dockerfile").write_text(f"FROM {base}\nCOPY index.html /www/index.html\n"
                                     f'CMD ["/busybox", "sh", "-c", "echo {STARTED}; exec /busybox httpd -f -p 8080 '
                                     f'-h /www"]\n')
    git_cmd("add", ".", cwd=work)
    git_cmd("commit", "-q", "-m", "the example", cwd=work)
    git_cmd("push", "-q", str(repos / "hello.git"), "main", cwd=work)


def commit(repos: Path, work: Path, branch: str, page: str) -> str:
    git_cmd("checkout", "-q", "-B", branch, cwd=work)
    (work / "index.html").write_text(page)
    git_cmd("commit", "-q", "-am", page, cwd=work)
    git_cmd("push", "-q", "-f", str(repos / "hello.git"), branch, cwd=work)
    return git_cmd("rev-parse", "HEAD", cwd=work)


async def via_edge(edge: Edge, url: str, expect: str | None, timeout: float = 300) -> None:
    """GET the app's URL through the edge until it answers `expect` (None: until it stops answering 200)."""
    host = url.split("://", 1)[1].split("/")[0].split(":")[0]
    deadline, last = time.monotonic() + timeout, ""
    async with httpx.AsyncClient(timeout=5, trust_env=False) as h:
        while time.monotonic() < deadline:
            try:
                r = await h.get(f"http://127.0.0.1:{edge.http_port}/", headers={"Host": host})
                last = f"{r.status_code} {r.text.strip()[:80]}"
                if expect is None and r.status_code != 200:
                    return
                if expect is not None and r.status_code == 200 and r.text.strip() == expect:
                    return
            except httpx.HTTPError as e:
                last = repr(e)
                if expect is None:
                    return
            await asyncio.sleep(0.5)
    raise AssertionError(f"{url} via the edge: wanted {expect!r}; last {last}")


def plain_get(edge: Edge, url: str) -> str:
    """The app's page as any HTTP client gets it: urllib, to the edge's loopback port, the URL's host as Host."""
    host = url.split("://", 1)[1].split("/")[0].split(":")[0]
    req = urllib.request.Request(f"http://127.0.0.1:{edge.http_port}/", headers={"Host": host})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
        assert r.status == 200
        return str(r.read().decode()).strip()


async def post(url: str, event: str, payload: dict[str, Any], secret: str) -> dict[str, Any]:
    body = encode(payload)
    async with httpx.AsyncClient(timeout=60, trust_env=False) as h:
        r = await h.post(url, content=body, headers=delivery_headers("github", event, body, secret))
    assert r.status_code in (200, 202), r.text
    result: dict[str, Any] = r.json()
    return result


async def wait_phase(p: Platform, deployment_id: str) -> str:
    async with p.client() as c:
        for _ in range(600):
            d = ok(await c.call_tool("deployments", {"deployment_id": deployment_id}))
            if d["phase"] in ("succeeded", "failed", "cancelled"):
                return str(d["phase"])
            await asyncio.sleep(1)
    raise AssertionError(f"deployment {deployment_id} never finished")


async def test_a_new_agents_first_session(platform: tuple[Platform, Path], edge: Edge) -> None:
    p, tls_dir = platform
    repos, work = Path(tempfile.mkdtemp(prefix="hooks-repos-")), Path(tempfile.mkdtemp(prefix="hooks-work-"))
    await push_image(REGISTRY, f"{p.tenant}/base", "v1", busybox_web_files(""), cmd=BUSYBOX_HTTPD)
    example_repo(repos, work, f"{REGISTRY}/{p.tenant}/base:v1")
    server = GitHttpsServer(repos, tls_dir / "cert.pem", tls_dir / "key.pem", TOKEN)
    server.start()
    try:
        page = (EXAMPLE / "index.html").read_text().strip()
        async with p.client() as c:
            listed = list_tokens((await c.list_tools()).tools)
            print(f"first session: tools/list {sum(listed.values())} tokens, {len(listed)} tools")
            assert sum(listed.values()) <= TOOL_LIST_BUDGET, listed
            ok(await c.call_tool("set_git_credentials", {"host": "127.0.0.1", "token": TOKEN}))
            first = ok(await c.call_tool("create_app", {
                "project": "hooks", "name": "hello", "port": 8080, "wait_seconds": 300,
                "source": {"git": {"url": server.url("hello.git"), "ref": "main"}}}))
            assert first["phase"] == "succeeded" and first["serving"], first
            await via_edge(edge, first["url"], page)
            assert await asyncio.to_thread(plain_get, edge, first["url"]) == page
            built = ok(await c.call_tool("builds", {"project": "hooks", "app": "hello"}))["builds"]
            assert [b["status"] for b in built] == ["succeeded"], built
            output = ok(await c.call_tool("builds", {"project": "hooks", "app": "hello",
                                                     "deployment_id": first["deployment_id"]}))
            assert any("COPY index.html" in x["line"] for x in output["app_output"]["lines"]), output
            for _ in range(60):  # the pod's first line, through the pod log API (no Loki on the testbed)
                ran = ok(await c.call_tool("logs", {"project": "hooks", "app": "hello", "since": "15m"}))
                if STARTED in [x["line"] for x in ran["app_output"]["lines"]]:
                    break
                await asyncio.sleep(1)
            assert STARTED in [x["line"] for x in ran["app_output"]["lines"]], ran
            conn = ok(await c.call_tool("push_deploys", {"project": "hooks", "app": "hello", "action": "connect",
                                                         "branch": "main"}))
        hook, secret = conn["webhook_url"], conn["webhook_secret"]

        sha = commit(repos, work, "main", "pushed two")
        pushed = await post(hook, "push", push_payload("main", sha, repo="hooks/hello"), secret)
        assert await wait_phase(p, pushed["deployment_id"]) == "succeeded"
        await via_edge(edge, first["url"], "pushed two")
        async with p.client() as c:
            back = ok(await c.call_tool("rollback", {"project": "hooks", "app": "hello", "wait_seconds": 120}))
        assert back["phase"] == "succeeded" and back["serving"], back
        await via_edge(edge, first["url"], page)

        head = commit(repos, work, "feature", "preview one")
        opened = await post(hook, "pull_request", pull_request_payload("opened", 1, head, repo="hooks/hello"), secret)
        assert opened["app"] == "hooks/hello-pr1"
        assert await wait_phase(p, opened["deployment_id"]) == "succeeded"
        async with p.client() as c:
            preview = ok(await c.call_tool("apps", {"project": "hooks", "app": "hello-pr1"}))
        assert preview["url"] != first["url"]
        await via_edge(edge, preview["url"], "preview one")

        closed = await post(hook, "pull_request", pull_request_payload("closed", 1, head, repo="hooks/hello"), secret)
        assert closed["outcome"] == "removed"
        await via_edge(edge, preview["url"], None)
        names: list[str] = []
        async with p.client() as c:
            for _ in range(120):  # the delete workflow marks the app deleted once its objects are gone
                names = [a["name"] for a in ok(await c.call_tool("apps", {"project": "hooks"}))["apps"]]
                if names == ["hello"]:
                    break
                await asyncio.sleep(1)
        assert names == ["hello"]
        await via_edge(edge, first["url"], page)
    finally:
        server.stop()
