"""The seed's end-to-end slice — git push -> build -> deploy -> logs -> rollback -> node failure reschedule
-> volume persists — through the MCP protocol only, as an agent would drive the platform. Shared by the e2e
test (which asserts) and bench/slice.py (which times). Each step is timed and named, so a failure says
which step broke and what it saw. Part of the dev and test harness, not the product."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp.client import Client
from mcp.types import CallToolResult

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.git_server import git_cmd
from mcp_server.devenv.platform import Platform

CGI = """#!/busybox sh
echo 'Content-Type: text/plain'
echo
n=$(/busybox cat /data/count 2>/dev/null || echo 0)
n=$((n+1))
echo $n > /data/count
echo "$(/busybox cat /www/version) $n"
"""
DOCKERFILE = """FROM {base}
COPY version /www/version
COPY hit /www/cgi-bin/hit
CMD ["/busybox", "httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
"""


class SliceFailed(AssertionError):
    pass


@dataclass
class Slice:
    platform: Platform
    testbed: Testbed
    git_url: str
    work: Path
    token: str
    edge_http_port: int
    host: str = ""
    times: dict[str, float] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    log: Callable[[str], None] = print

    async def step(self, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        t = time.monotonic()
        try:
            result = await fn()
        except Exception as e:
            raise SliceFailed(f"slice step {name!r} failed after {time.monotonic() - t:.1f} s: {e}") from e
        self.times[name] = time.monotonic() - t
        self.log(f"slice: {name:28} {self.times[name]:7.1f} s")
        return result

    async def call(self, c: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(tool)
        r: CallToolResult = await c.call_tool(tool, args)
        if r.is_error:
            raise SliceFailed(f"{tool} returned an error: {r.content[0].text}")  # type: ignore[union-attr]
        content: dict[str, Any] | None = r.structured_content
        assert content is not None
        return content

    async def hit(self, expect_version: str, timeout: float = 120) -> int:
        """GET /cgi-bin/hit through the edge until it answers with `expect_version`; returns the counter."""
        deadline, last = time.monotonic() + timeout, ""
        async with httpx.AsyncClient(timeout=5) as h:
            while time.monotonic() < deadline:
                try:
                    r = await h.get(f"http://127.0.0.1:{self.edge_http_port}/cgi-bin/hit", headers={"Host": self.host})
                    last = f"{r.status_code} {r.text.strip()[:100]}"
                    version, _, count = r.text.strip().partition(" ")
                    if r.status_code == 200 and version == expect_version:
                        return int(count)
                except httpx.HTTPError as e:
                    last = repr(e)
                await asyncio.sleep(0.3)
        raise SliceFailed(f"the app never answered {expect_version} through the edge; last: {last}")

    def commit(self, version: str) -> str:
        (self.work / "version").write_text(version)
        git_cmd("add", ".", cwd=self.work)
        git_cmd("commit", "-q", "-m", version, cwd=self.work)
        git_cmd("push", "-q", "origin", "main", cwd=self.work)
        return git_cmd("rev-parse", "HEAD", cwd=self.work)

    async def run(self) -> dict[str, float]:
        p = self.platform
        async with p.client() as c:
            await self.call(c, "set_git_credentials", {"host": "127.0.0.1", "token": self.token})
            sha1 = self.commit("v1")

            async def create() -> dict[str, Any]:
                return await self.call(c, "create_app", {
                    "project": "slice", "name": "web", "port": 8080, "shutdown_grace_seconds": 1,
                    "source": {"git": {"url": self.git_url}}, "wait_seconds": 300,
                    "health_check": {"type": "http", "path": "/version", "period_seconds": 1},
                    "volumes": [{"name": "data", "size_gib": 1, "mount_path": "/data"}]})

            v1 = await self.step("build + release v1", create)
            if v1["phase"] != "succeeded":
                raise SliceFailed(f"create_app did not succeed: {v1}")
            self.host = v1["url"].removeprefix("https://").split(":")[0]
            count = await self.step("v1 answers", lambda: self.hit("v1"))

            sha2 = self.commit("v2")
            v2 = await self.step("build + release v2", lambda: self.call(
                c, "deploy", {"project": "slice", "app": "web", "wait_seconds": 300}))
            if v2["phase"] != "succeeded" or v2["image_digest"] == v1["image_digest"]:
                raise SliceFailed(f"deploy of the new commit did not release a new image: {v2}")
            count2 = await self.step("v2 answers", lambda: self.hit("v2"))
            if count2 <= count:
                raise SliceFailed(f"the counter went back from {count} to {count2} across the deploy")
            build_logs = await self.call(c, "builds", {"project": "slice", "app": "web",
                                                               "deployment_id": v2["deployment_id"]})
            built = build_logs["app_output"]["lines"]
            if not any("STEP" in x["line"] for x in built) or sha2[:12] not in str(build_logs):
                raise SliceFailed(f"v2's build lines are missing: {built[:5]}")
            runtime = await self.call(c, "logs", {"project": "slice", "app": "web",
                                                              "contains": "response:200"})
            if not runtime["app_output"]["lines"]:
                everything = await self.call(c, "logs", {"project": "slice", "app": "web", "limit": 20})
                raise SliceFailed("no request line in the runtime logs; last lines: "
                                  f"{everything['app_output']['lines']}")

            back = await self.step("rollback switch", lambda: self.call(c, "rollback", {"project": "slice",
                                                                                       "app": "web"}))
            if back["release"] != "web-r1" or back["image_digest"] != v1["image_digest"]:
                raise SliceFailed(f"rollback did not restore v1: {back}")
            count3 = await self.step("v1 answers again", lambda: self.hit("v1"))
            if count3 <= count2:
                raise SliceFailed(f"the counter went back from {count2} to {count3} across the rollback")

            app = await p.deps.store.get_app(p.tenant, "slice", "web")
            assert app is not None
            pods = await p.kube.list_objects("v1", "Pod", app.namespace, label_selector="deploy-mcp/release=web-r1")
            node = next(x["spec"]["nodeName"] for x in pods if not x["metadata"].get("deletionTimestamp"))
            self.log(f"slice: killing {node}, which runs the app")
            await asyncio.to_thread(self.testbed.stop_node, node)
            self.killed = node
            count4 = await self.step("rescheduled after node death", lambda: self.hit("v1", timeout=240))
            if count4 <= count3:
                raise SliceFailed(f"the counter on the volume went back from {count3} to {count4} after the move")
            moved = [x["spec"].get("nodeName") for x in await p.kube.list_objects(
                "v1", "Pod", app.namespace, label_selector="deploy-mcp/release=web-r1")
                if not x["metadata"].get("deletionTimestamp")]
            if node in moved:
                raise SliceFailed(f"the app still runs on the dead node {node}: {moved}")

            audit = await self.call(c, "get_audit_log", {"limit": 200})
            seen = {e["tool"] for e in audit["entries"]}
            missing = set(self.calls[:-1]) - seen
            if missing or self.token in str(audit) or any(e["principal"] != "agent" for e in audit["entries"]):
                raise SliceFailed(f"the audit log misses {missing} or shows the token or another principal")
        self.sha = (sha1, sha2)
        return self.times

    killed: str | None = None
    sha: tuple[str, str] = ("", "")


def make_slice_repo(repos: Path, work: Path, name: str, base: str, clone_url: str) -> None:
    git_cmd("init", "-q", "--bare", "-b", "main", str(repos / f"{name}.git"), cwd=repos)
    git_cmd("init", "-q", "-b", "main", str(work), cwd=work)
    (work / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    hit = work / "hit"
    hit.write_text(CGI)
    hit.chmod(0o755)
    git_cmd("remote", "add", "origin", clone_url, cwd=work)
