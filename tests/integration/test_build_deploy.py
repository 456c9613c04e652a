"""Git sources end to end on the testbed, through an MCP client: a repository made by the test and served
over HTTPS by a real `git http-backend` (token required) -> `create_app` -> a real build (the local
builder, buildah) -> the image in the testbed's registry by digest -> a release on the testbed that answers
HTTP -> `get_build_logs` shows the build's lines. The same commit deployed again builds once; a failing
Dockerfile step fails the deployment with the step and its last lines while the previous release serves;
the git token appears in no audit row, log line, tool output or cluster object."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.types import CallToolResult

from mcp_server.embedded import Testbed
from tests.support.git_server import GitHttpsServer, git_cmd, self_signed_tls
from tests.support.oci import BUSYBOX_HTTPD, busybox_web_files, push_image
from tests.support.platform import Platform, platform_settings, running_platform

pytestmark = [
    pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("buildah") is None,
                       reason="the local builder needs root and buildah (CI has both)"),
]
REGISTRY = "127.0.0.1:5000"
TOKEN = "glpat-Test0nly0Token0For0Builds0xyz"


@pytest.fixture(scope="module")
def tls() -> tuple[Path, Path]:
    d = Path(tempfile.mkdtemp(prefix="git-tls-"))
    return self_signed_tls(d)


@pytest.fixture(scope="module")
def repos() -> Path:
    return Path(tempfile.mkdtemp(prefix="git-repos-"))


@pytest.fixture(scope="module")
def git_server(repos: Path, tls: tuple[Path, Path]) -> Iterator[GitHttpsServer]:
    server = GitHttpsServer(repos, *tls, TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed, tls: tuple[Path, Path],
                   workdir: Path) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node, git_allowed_hosts=["127.0.0.1"],
                                 git_ca_file=tls[0], build_dir=workdir / "builds")
    async with running_platform(settings) as p:
        yield p


def ok(r: CallToolResult) -> dict[str, Any]:
    assert not r.is_error, r.content[0].text  # type: ignore[union-attr]
    content: dict[str, Any] | None = r.structured_content
    assert content is not None
    return content


def make_repo(repos: Path, name: str, base: str) -> str:
    """A repo with `main` (a Dockerfile app serving "built one") and `broken` (a failing RUN step)."""
    work = Path(tempfile.mkdtemp(prefix="git-work-"))
    git_cmd("init", "-q", "--bare", "-b", "main", str(repos / f"{name}.git"), cwd=repos)
    git_cmd("init", "-q", "-b", "main", str(work), cwd=work)
    (work / "index.html").write_text("built one")
    (work / "Dockerfile").write_text(f"FROM {base}\nCOPY index.html /www/index.html\n"
                                     'CMD ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n')
    git_cmd("add", ".", cwd=work)
    git_cmd("commit", "-q", "-m", "one", cwd=work)
    main = git_cmd("rev-parse", "HEAD", cwd=work)
    git_cmd("checkout", "-q", "-b", "broken", cwd=work)
    failing = 'RUN ["/busybox", "sh", "-c", "echo compiling; echo error: missing dep; exit 7"]\n'
    (work / "Dockerfile").write_text(f"FROM {base}\nCOPY index.html /www/index.html\n{failing}")
    git_cmd("commit", "-q", "-am", "broken", cwd=work)
    git_cmd("push", "-q", str(repos / f"{name}.git"), "main", "broken", cwd=work)
    return main


async def serving_text(p: Platform, ns: str, expect: str = "built one") -> str:
    return await p.service_get(ns, "web", expect=expect)


async def test_git_source_builds_deploys_and_reuses_builds(platform: Platform, git_server: GitHttpsServer,
                                                           repos: Path) -> None:
    p = platform
    await push_image(REGISTRY, f"{p.tenant}/base", "v1", busybox_web_files(""), cmd=BUSYBOX_HTTPD)
    repo = f"app-{p.tenant}"
    sha = make_repo(repos, repo, f"{REGISTRY}/{p.tenant}/base:v1")
    url = git_server.url(f"{repo}.git")
    async with p.client() as c:
        no_creds = await c.call_tool("create_app", {"project": "git", "name": "web", "port": 8080,
                                                    "source": {"git": {"url": url}}})
        assert no_creds.is_error and "set_git_credentials" in no_creds.content[0].text  # type: ignore[union-attr]
        ok(await c.call_tool("set_git_credentials", {"host": "127.0.0.1", "token": TOKEN}))
        first = ok(await c.call_tool("create_app", {"project": "git", "name": "web", "port": 8080,
                                                    "source": {"git": {"url": url}}, "wait_seconds": 300}))
        assert first["phase"] == "succeeded", first
        app = await p.deps.store.get_app(p.tenant, "git", "web")
        assert app is not None
        assert await serving_text(p, app.namespace) == "built one"
        detail = ok(await c.call_tool("get_deployment", {"deployment_id": first["deployment_id"]}))
        assert detail["commit_sha"] == sha and detail["image"] == f"{REGISTRY}/{p.tenant}/web"
        async with httpx.AsyncClient() as h:  # the image is in the registry under the commit, by that digest
            head = await h.head(f"http://{REGISTRY}/v2/{p.tenant}/web/manifests/{sha}",
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                                   "application/vnd.docker.distribution.manifest.v2+json"})
        assert head.headers["docker-content-digest"] == first["image_digest"]
        logs = ok(await c.call_tool("get_build_logs", {"project": "git", "app": "web",
                                                       "deployment_id": first["deployment_id"]}))
        text = "\n".join(x["line"] for x in logs["lines"])
        assert "STEP" in text and "pushed" in text and logs["build"]["status"] == "succeeded"

        again = ok(await c.call_tool("deploy", {"project": "git", "app": "web", "env": {"MODE": "again"}}))
        assert again["phase"] == "succeeded" and again["image_digest"] == first["image_digest"]
        builds = ok(await c.call_tool("list_builds", {"project": "git", "app": "web"}))
        assert [b["status"] for b in builds["builds"]] == ["succeeded"]  # the same commit built once

        broken = ok(await c.call_tool("deploy", {"project": "git", "app": "web",
                                                 "source": {"git": {"url": url, "ref": "broken"}}}))
        assert broken["phase"] == "failed" and broken["error"]["reason"] == "BuildFailed", broken
        evidence = "\n".join(broken["error"]["evidence"])
        assert "RUN" in evidence and "error: missing dep" in evidence
        assert await serving_text(p, app.namespace) == "built one"  # the previous release keeps serving
        failed_logs = ok(await c.call_tool("get_build_logs", {"project": "git", "app": "web",
                                                              "deployment_id": broken["deployment_id"]}))
        assert failed_logs["build"]["failed_step"] and "RUN" in failed_logs["build"]["failed_step"]
        audit = ok(await c.call_tool("get_audit_log", {"limit": 200}))
        outputs = str([first, detail, logs, again, builds, broken, failed_logs, audit])
    assert TOKEN not in outputs
    async with p.deps.store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT arguments::text AS a FROM audit_events")).fetchall()
        lines = await (await conn.execute("SELECT line FROM build_log_lines")).fetchall()
    assert TOKEN not in str(rows) and TOKEN not in str(lines)
    assert '"token": "[redacted]"' in str([r["a"] for r in rows]).replace("'", '"') or "[redacted]" in str(rows)
    for kind in ("Secret", "ConfigMap"):
        objs = await p.kube.list_objects("v1", kind, app.namespace)
        assert TOKEN not in str(objs)
