"""Git sources end to end on the testbed, through an MCP client: a repository made by the test and served
over HTTPS by a real `git http-backend` (token required) -> `create_app` -> a real build (the local
builder, buildah) -> the image in the testbed's registry by digest -> a release on the testbed that answers
HTTP -> `get_build_logs` shows the build's lines. The same commit deployed again builds once; a failing
Dockerfile step fails the deployment with the step and its last lines while the previous release serves;
the git token appears in no audit row, log line, tool output or cluster object.

A repository on a GitHub host (the settings name 127.0.0.1 as one, and a FAKE GitHub API, tests/fakes/
fake_github.py served over HTTP, as `github_api_url`) deploys with no `set_git_credentials` call: the platform's
GitHub App mints installation tokens (the git server accepts exactly those); with the app's installation gone
before the build, the deployment fails with a message naming the fix."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.git_server import GitHttpsServer, git_cmd, self_signed_tls
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from mcp_server.store import PgStore
from tests.fakes.fake_github import FakeGitHub, fake_app_key, fake_github_running
from tests.support.platform import ok, running_platform

pytestmark = [
    pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("buildah") is None,
                       reason="the local builder needs root and buildah (CI has both)"),
]
REGISTRY = "127.0.0.1:5000"
TOKEN = "glpat-Test0nly0Token0For0Builds0xyz"
API_KEY = "sk-build-secret-read-by-a-run-mount"
APP_ID = 272727
APP_KEYS = fake_app_key()


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
    settings = platform_settings(database_url, temporal_address, needs_node,
                                 git={"allowed_hosts": ["127.0.0.1"], "ca_file": tls[0]},
                                 build={"dir": workdir / "builds"})
    async with running_platform(settings) as p:
        yield p


def make_repo(repos: Path, name: str, base: str, *, reads_secret: bool = False) -> str:
    """A repo with `main` (a Dockerfile app serving "built one"; with `reads_secret`, a RUN step printing the
    sha256 of the build secret API_KEY) and `broken` (a failing RUN step)."""
    work = Path(tempfile.mkdtemp(prefix="git-work-"))
    git_cmd("init", "-q", "--bare", "-b", "main", str(repos / f"{name}.git"), cwd=repos)  # name may be owner/repo
    git_cmd("init", "-q", "-b", "main", str(work), cwd=work)
    (work / "index.html").write_text("built one")
    read_secret = 'RUN --mount=type=secret,id=API_KEY ["/busybox", "sha256sum", "/run/secrets/API_KEY"]\n' \
        if reads_secret else ""
    (work / "Dockerfile").write_text(f"FROM {base}\nCOPY index.html /www/index.html\n{read_secret}"
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
    sha = make_repo(repos, repo, f"{REGISTRY}/{p.tenant}/base:v1", reads_secret=True)
    url = git_server.url(f"{repo}.git")
    async with p.client() as c:
        no_creds = await c.call_tool("create_app", {"project": "git", "name": "web", "port": 8080,
                                                    "source": {"git": {"url": url}}})
        assert no_creds.is_error and "set_git_credentials" in no_creds.content[0].text  # type: ignore[union-attr]
        ok(await c.call_tool("set_git_credentials", {"host": "127.0.0.1", "token": TOKEN}))
        first = ok(await c.call_tool("create_app", {"project": "git", "name": "web", "port": 8080,
                                                    "source": {"git": {"url": url}}, "wait_seconds": 300,
                                                    "secrets": {"API_KEY": API_KEY}}))
        assert first["phase"] == "succeeded", first
        app = await p.deps.store.get_app(p.tenant, "git", "web")
        assert app is not None
        assert await serving_text(p, app.namespace) == "built one"
        detail = ok(await c.call_tool("deployments", {"deployment_id": first["deployment_id"]}))
        assert detail["commit_sha"] == sha and detail["image"] == f"{REGISTRY}/{p.tenant}/web"
        async with httpx.AsyncClient() as h:  # the image is in the registry under the commit, by that digest
            head = await h.head(f"http://{REGISTRY}/v2/{p.tenant}/web/manifests/{sha}",
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                                   "application/vnd.docker.distribution.manifest.v2+json"})
        assert head.headers["docker-content-digest"] == first["image_digest"]
        logs = ok(await c.call_tool("builds", {"project": "git", "app": "web",
                                                       "deployment_id": first["deployment_id"]}))
        text = "\n".join(x["line"] for x in logs["app_output"]["lines"])
        assert "STEP" in text and "pushed" in text and logs["build"]["status"] == "succeeded"
        assert f"{hashlib.sha256(API_KEY.encode()).hexdigest()}  /run/secrets/API_KEY" in text  # a build secret

        again = ok(await c.call_tool("deploy", {"project": "git", "app": "web", "env": {"MODE": "again"}}))
        assert again["phase"] == "succeeded" and again["image_digest"] == first["image_digest"]
        builds = ok(await c.call_tool("builds", {"project": "git", "app": "web"}))
        assert [b["status"] for b in builds["builds"]] == ["succeeded"]  # the same commit built once

        broken = ok(await c.call_tool("deploy", {"project": "git", "app": "web",
                                                 "source": {"git": {"url": url, "ref": "broken"}}}))
        assert broken["phase"] == "failed" and broken["error"]["reason"] == "BuildFailed", broken
        # the failing step's last lines come with the result (no second call), apart and marked untrusted
        assert broken["app_output"]["untrusted"] and "error: missing dep" in "\n".join(broken["app_output"]["lines"])
        evidence = "\n".join(broken["error"]["evidence"] + broken["app_output"]["lines"])
        assert "RUN" in evidence
        assert await serving_text(p, app.namespace) == "built one"  # the previous release keeps serving
        failed_logs = ok(await c.call_tool("builds", {"project": "git", "app": "web",
                                                              "deployment_id": broken["deployment_id"]}))
        assert failed_logs["build"]["failed_step"] and "RUN" in failed_logs["build"]["failed_step"]
        audit = ok(await c.call_tool("get_audit_log", {"limit": 200}))
        outputs = str([first, detail, logs, again, builds, broken, failed_logs, audit])
    assert TOKEN not in outputs
    assert isinstance(p.deps.store, PgStore)  # ServerDeps names the port; raw SQL needs the pool
    async with p.deps.store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT arguments::text AS a FROM audit_events")).fetchall()
        lines = await (await conn.execute("SELECT line FROM build_log_lines")).fetchall()
    assert TOKEN not in str(rows) and TOKEN not in str(lines)
    assert API_KEY not in outputs and API_KEY not in str(rows) and API_KEY not in str(lines)
    assert '"token": "[redacted]"' in str([r["a"] for r in rows]).replace("'", '"') or "[redacted]" in str(rows)
    for kind in ("Secret", "ConfigMap"):
        objs = await p.kube.list_objects("v1", kind, app.namespace)
        assert TOKEN not in str(objs)


async def test_github_repository_deploys_with_app_tokens_and_no_stored_credentials(
        database_url: str, temporal_address: str, needs_node: Testbed, tls: tuple[Path, Path], workdir: Path,
        repos: Path) -> None:
    fake = FakeGitHub(APP_ID, APP_KEYS[1])
    server = GitHttpsServer(repos, *tls, token="", tokens=lambda: [t["token"] for t in fake.issued])
    server.start()
    try:
        async with fake_github_running(fake) as api:
            settings = platform_settings(
                database_url, temporal_address, needs_node, git={"allowed_hosts": ["127.0.0.1"], "ca_file": tls[0]},
                build={"dir": workdir / "builds"},
                github_app={"id": APP_ID, "private_key": APP_KEYS[0], "api_url": api, "hosts": ["127.0.0.1"]})
            async with running_platform(settings) as p:
                await _github_app_deploys(p, fake, server, repos)
    finally:
        server.stop()


async def _github_app_deploys(p: Platform, fake: FakeGitHub, server: GitHttpsServer, repos: Path) -> None:
    await push_image(REGISTRY, f"{p.tenant}/base", "v1", busybox_web_files(""), cmd=BUSYBOX_HTTPD)
    base = f"{REGISTRY}/{p.tenant}/base:v1"
    repo, gone = f"app-{p.tenant}", f"gone-{p.tenant}"
    sha = make_repo(repos, f"acme/{repo}", base)
    make_repo(repos, f"acme/{gone}", base)
    fake.install("acme", repo, gone)
    async with p.client() as c:
        first = ok(await c.call_tool("create_app", {"project": "gh", "name": "web", "port": 8080, "wait_seconds": 300,
                                                    "source": {"git": {"url": server.url(f"acme/{repo}.git")}}}))
        assert first["phase"] == "succeeded", first
        app = await p.deps.store.get_app(p.tenant, "gh", "web")
        assert app is not None
        assert await serving_text(p, app.namespace) == "built one"
        detail = ok(await c.call_tool("deployments", {"deployment_id": first["deployment_id"]}))
        assert detail["commit_sha"] == sha
        assert len(fake.issued) == 2, "one token for resolving the branch (server), one for the checkout (worker)"
        assert {auth for _, _, auth in server.seen if auth} <= {server.basic(t["token"]) for t in fake.issued}
        logs = ok(await c.call_tool("builds", {"project": "gh", "app": "web",
                                                       "deployment_id": first["deployment_id"]}))
        text = "\n".join(x["line"] for x in logs["app_output"]["lines"])
        assert f"using a GitHub App installation token for acme/{repo}" in text and "pushed" in text

        # The app's installation goes away after the call resolved the branch, before the build runs.
        await p.stop_worker()
        pending = ok(await c.call_tool("create_app", {"project": "gh", "name": "gone", "port": 8080,
                                                      "wait_seconds": 0,
                                                      "source": {"git": {"url": server.url(f"acme/{gone}.git")}}}))
        fake.installations.clear()
        await p.start_worker()
        failed = pending
        for _ in range(600):
            failed = ok(await c.call_tool("deployments", {"deployment_id": pending["deployment_id"]}))
            if failed["phase"] in ("failed", "succeeded"):
                break
            await asyncio.sleep(0.25)
        assert failed["phase"] == "failed" and failed["error"]["reason"] == "BuildFailed", failed
        message = failed["error"]["message"]
        assert f"GitHub App {APP_ID} is not installed on acme/{gone}" in message
        assert "install the app on the account acme" in message and "set_git_credentials" in message
        audit = ok(await c.call_tool("get_audit_log", {"limit": 200}))
        assert "set_git_credentials" not in {e["tool"] for e in audit["entries"]}
        outputs = str([first, detail, logs, pending, failed, audit])
    assert isinstance(p.deps.store, PgStore)  # ServerDeps names the port; raw SQL needs the pool
    async with p.deps.store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT * FROM audit_events")).fetchall()
        lines = await (await conn.execute("SELECT line FROM build_log_lines")).fetchall()
    objects = [await p.kube.list_objects("v1", kind, app.namespace) for kind in ("Secret", "ConfigMap")]
    everything = outputs + str(rows) + str(lines) + str(objects)
    assert fake.issued and all(t["token"] not in everything for t in fake.issued)
    assert "ghs_" not in everything
