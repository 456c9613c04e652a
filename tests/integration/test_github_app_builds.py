"""Builds of GitHub repositories with the platform's GitHub App, without the testbed.

- A FAKE GitHub REST API (tests/fakes/fake_github.py, served over HTTP on loopback and named as
  `github_api_url`) verifies the app's JWT with the app's public key and issues installation tokens.
- A real git server on loopback over HTTPS (`git http-backend`, mcp_server/devenv/git_server.py) accepts exactly the
  tokens that fake issued so far (HTTP Basic `x-access-token:<token>`), nothing else; the settings name
  127.0.0.1 as a GitHub host, so `https://127.0.0.1:<port>/<owner>/<repo>.git` is a GitHub repository.
- Real Postgres and Temporal; the MCP server in process; the build workflow on a worker with the build
  activities as `deploy-mcp worker` configures them; the local builder (buildah) pushing to a real
  docker-registry.

What is checked:
- `create_app` with such a source and NO `set_git_credentials` resolves the branch with an installation token,
  and the build of that commit checks out with a token minted for it and pushes the image; the tokens appear in
  no audit row, no build log line and no tool output.
- Credentials the tenant set with `set_git_credentials` win over the app (the app is not even asked).
- The app not installed on the repository's owner: `create_app` refuses, naming both fixes; a build whose
  installation went away after the call fails at checkout, at once (not retried), with that message.
- GitHub unavailable: the tool says to try again; the build activity raises a retryable error.
- A token the git server refuses (the installation changed) is named as such and not reused from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.types import CallToolResult
from temporalio.client import Client as TemporalClient
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from mcp_server.devenv.git_server import GitHttpsServer, git_cmd, self_signed_tls
from mcp_server.devenv.images import busybox_web_files, docker_registry, push_image
from mcp_server.flat_settings import merge
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import Settings, load_settings
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from mcp_server.wiring import open_github_app, server_deps
from mcp_server.worker import build_activities
from tests.fakes.fake_github import FakeGitHub, fake_app_key, fake_github_running
from tests.support.platform import ok
from tools.context import Principal
from workflows.build import BuildWorkflow
from workflows.domain.build_contract import BuildInput, BuildOutput

APP_ID = 313131
KEYS = fake_app_key()
OWNER = "acme"
ALL_SCOPES = frozenset({"apps:read", "apps:write", "secrets:write", "volumes:write", "logs:read", "audit:read"})

needs_buildah = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("buildah") is None,
    reason="the local builder needs root (buildah chroot isolation) and buildah on PATH; CI runs as root with it",
)


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="deploy-mcp-github-builds-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls(scratch: Path) -> tuple[Path, Path]:
    d = scratch / "tls"
    d.mkdir()
    return self_signed_tls(d)


@pytest.fixture(scope="module")
def registry_host(scratch: Path) -> Iterator[str]:
    with docker_registry(scratch / "registry") as host:
        yield host


@pytest.fixture(scope="module")
def base_image(registry_host: str) -> str:
    asyncio.run(push_image(registry_host, "base/busybox", "v1", busybox_web_files("")))
    return f"{registry_host}/base/busybox:v1"


@pytest.fixture
def fake() -> FakeGitHub:
    return FakeGitHub(APP_ID, KEYS[1])


@pytest.fixture
def git_server(scratch: Path, tls: tuple[Path, Path], fake: FakeGitHub) -> Iterator[GitHttpsServer]:
    root = scratch / "repos"
    root.mkdir(exist_ok=True)
    server = GitHttpsServer(root, *tls, token="", tokens=lambda: [t["token"] for t in fake.issued])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_repo(server: GitHttpsServer, owner: str, name: str, base: str = "127.0.0.1:1/none:v1") -> str:
    """`owner/name.git` with one commit on main (a Dockerfile app); returns the commit."""
    work = Path(tempfile.mkdtemp(prefix="git-work-"))
    bare = server.root / owner / f"{name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    git_cmd("init", "-q", "--bare", "-b", "main", str(bare), cwd=server.root)
    git_cmd("init", "-q", "-b", "main", str(work), cwd=work)
    (work / "index.html").write_text("built with an installation token")
    (work / "Dockerfile").write_text(f"FROM {base}\nCOPY index.html /www/index.html\n")
    git_cmd("add", ".", cwd=work)
    git_cmd("commit", "-q", "-m", "one", cwd=work)
    git_cmd("push", "-q", str(bare), "main", cwd=work)
    shutil.rmtree(work, ignore_errors=True)
    return git_cmd("rev-parse", "main", cwd=bare)


@dataclass
class Env:
    settings: Settings
    deps: ServerDeps
    tenant: str

    def client(self) -> Client:
        principal = Principal(self.tenant, "agent", ALL_SCOPES, "memory")
        return Client(build_server(self.deps, transport="memory", principal=principal))

    @property
    def temporal(self) -> TemporalClient:
        assert isinstance(self.deps.workflows, TemporalWorkflows)
        return self.deps.workflows.client


@asynccontextmanager
async def platform(database_url: str, temporal_address: str, tls: tuple[Path, Path], github_api_url: str,
                   registry: str = "127.0.0.1:5000", **overrides: Any) -> AsyncIterator[Env]:
    """The MCP server on real Postgres and Temporal, its GitHub App talking to the fake. No deploy worker runs:
    a started deploy workflow waits; the build runs on `build_worker`."""
    settings = load_settings(**merge({
        "database": {"url": database_url}, "secrets_key": Fernet.generate_key().decode(),
        "temporal": {"address": temporal_address, "task_queue": f"tq-{uuid.uuid4().hex[:8]}"},
        "image_registry": {"host": registry, "insecure_hosts": ["127.0.0.1"]},
        "git": {"allowed_hosts": ["127.0.0.1"], "ca_file": tls[0]},
        "build": {"dir": Path(tempfile.mkdtemp(prefix="gh-builds-"))}, "progress": {"wait_seconds": 0},
        "github_app": {"id": APP_ID, "private_key": KEYS[0], "api_url": github_api_url, "hosts": ["127.0.0.1"]},
    }, overrides))
    async with server_deps(settings, database_url) as deps:
        yield Env(settings, deps, f"t{uuid.uuid4().hex[:6]}")


@asynccontextmanager
async def build_worker(env: Env) -> AsyncIterator[str]:
    """The build workflow and its activities, as `deploy-mcp worker` builds them (its own GitHub App client),
    on a task queue of their own; yields the queue."""
    store = await PgStore.open(env.settings.database.url or "", min_size=1, max_size=3)
    app = open_github_app(env.settings)
    queue = f"builds-{uuid.uuid4().hex[:8]}"
    try:
        activities = build_activities(env.settings, store, github_app=app)
        async with Worker(env.temporal, task_queue=queue, workflows=[BuildWorkflow], activities=activities.all()):
            yield queue
    finally:
        if app is not None:
            await app.aclose()
        await store.close()


def text(r: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in r.content)


async def build_input(env: Env, project: str, app: str, deployment_id: str) -> BuildInput:
    """What the deploy workflow hands its build (tools.releases._build_input), read back from the store."""
    row = await env.deps.store.get_app(env.tenant, project, app)
    d = await env.deps.store.get_deployment(env.tenant, uuid.UUID(deployment_id))
    assert row is not None and d is not None and d.commit_sha and d.image
    return BuildInput(tenant=env.tenant, project=project, app=app, app_id=row.id, deployment_id=d.id,
                      git_url=d.source["git"]["url"], commit_sha=d.commit_sha, image_repo=d.image)


async def stored_text(store: PgStore) -> str:
    """Every audit row and build log line, as text."""
    async with store.pool.connection() as conn:
        audit = await (await conn.execute("SELECT * FROM audit_events")).fetchall()
        lines = await (await conn.execute("SELECT line FROM build_log_lines")).fetchall()
        builds = await (await conn.execute("SELECT * FROM builds")).fetchall()
    return str(audit) + str(lines) + str(builds)


async def terminate(env: Env, workflow_id: str) -> None:
    """No deploy worker runs here: end the deploy workflow a call started (unless it is over already)."""
    with contextlib.suppress(RPCError):
        await env.temporal.get_workflow_handle(workflow_id).terminate("test over")


# -- tests ------------------------------------------------------------------------------------------------------


@needs_buildah
@pytest.mark.timeout(600)
async def test_create_app_builds_a_github_repository_with_installation_tokens(
    database_url: str, temporal_address: str, tls: tuple[Path, Path], registry_host: str, base_image: str,
    fake: FakeGitHub, git_server: GitHttpsServer,
) -> None:
    repo = f"shop-{uuid.uuid4().hex[:6]}"
    sha = make_repo(git_server, OWNER, repo, base_image)
    fake.install(OWNER, repo, installation_id=91)
    url = git_server.url(f"{OWNER}/{repo}.git")
    async with fake_github_running(fake) as api, platform(database_url, temporal_address, tls, api,
                                                          registry_host) as env:
        async with env.client() as c:
            created = ok(await c.call_tool("create_app", {"project": "gh", "name": "web", "port": 8080,
                                                          "source": {"git": {"url": url}}, "wait_seconds": 0}))
            detail = ok(await c.call_tool("deployments", {"deployment_id": created["deployment_id"]}))
            assert detail["commit_sha"] == sha, "the branch was resolved with the installation token"
            assert len(fake.issued) == 1 and fake.jwt_claims[-1]["iss"] == str(APP_ID)
            resolved_with = fake.issued[0]["token"]
            assert {auth for _, _, auth in git_server.seen if auth} == {git_server.basic(resolved_with)}

            inp = await build_input(env, "gh", "web", created["deployment_id"])
            before = len(git_server.seen)
            async with build_worker(env) as queue:
                built: BuildOutput = await env.temporal.execute_workflow(
                    "build", inp, id=f"build-test-{uuid.uuid4().hex[:8]}", task_queue=queue, result_type=BuildOutput)
            assert built.failure is None and built.digest, built
            assert len(fake.issued) == 2, "the build minted its own token just before the checkout"
            assert fake.issued[1]["repositories"] == [{"name": repo, "full_name": f"{OWNER}/{repo}"}]
            assert fake.issued[1]["permissions"] == {"contents": "read"}
            build_auth = {auth for _, _, auth in git_server.seen[before:]}
            assert build_auth == {git_server.basic(fake.issued[1]["token"])}
            async with httpx.AsyncClient() as h:  # the image is in the registry under the commit, by that digest
                head = await h.head(f"http://{registry_host}/v2/{env.tenant}/web/manifests/{sha}",
                                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                                       "application/vnd.docker.distribution.manifest.v2+json"})
            assert head.headers["docker-content-digest"] == built.digest

            logs = ok(await c.call_tool("builds", {"project": "gh", "app": "web",
                                                           "build_id": str(built.build_id)}))
            lines = "\n".join(x["line"] for x in logs["app_output"]["lines"])
            assert f"using a GitHub App installation token for {OWNER}/{repo}" in lines and "pushed" in lines
            audit = ok(await c.call_tool("get_audit_log", {"limit": 100}))
            assert "create_app" in {e["tool"] for e in audit["entries"]}
            assert "set_git_credentials" not in {e["tool"] for e in audit["entries"]}
            outputs = str([created, detail, logs, audit])
        await terminate(env, created["workflow_id"])
        assert isinstance(env.deps.store, PgStore)
        everything = outputs + await stored_text(env.deps.store)
    for issued in fake.issued:
        assert issued["token"] not in everything
    assert "ghs_" not in everything


async def test_tenant_credentials_win_over_the_app(
    database_url: str, temporal_address: str, tls: tuple[Path, Path], fake: FakeGitHub, git_server: GitHttpsServer,
) -> None:
    repo = f"blog-{uuid.uuid4().hex[:6]}"
    make_repo(git_server, OWNER, repo)
    fake.install(OWNER, repo)
    url = git_server.url(f"{OWNER}/{repo}.git")
    wrong = "glpat-a0tenant0token0the0server0refuses"
    async with fake_github_running(fake) as api, platform(database_url, temporal_address, tls, api) as env, \
            env.client() as c:
        ok(await c.call_tool("set_git_credentials", {"host": "127.0.0.1", "token": wrong}))
        refused = await c.call_tool("create_app", {"project": "gh", "name": "web", "port": 8080,
                                                   "source": {"git": {"url": url}}})
    assert refused.is_error and "refused the configured credentials" in text(refused)
    assert fake.requests == [], "the app was not asked: the tenant's credentials for the host win"
    assert git_server.seen and all(auth == git_server.basic(wrong) for _, _, auth in git_server.seen if auth)
    assert wrong not in text(refused)


async def test_app_not_installed_on_the_owner(
    database_url: str, temporal_address: str, tls: tuple[Path, Path], fake: FakeGitHub, git_server: GitHttpsServer,
) -> None:
    repo = f"shop-{uuid.uuid4().hex[:6]}"
    make_repo(git_server, "stranger", repo)
    make_repo(git_server, OWNER, repo)
    fake.install(OWNER, repo, installation_id=92)
    async with fake_github_running(fake) as api, platform(database_url, temporal_address, tls, api) as env:
        async with env.client() as c:
            # at the call: refused, naming both fixes; nothing recorded
            refused = await c.call_tool("create_app", {
                "project": "gh", "name": "other", "port": 8080,
                "source": {"git": {"url": git_server.url(f"stranger/{repo}.git")}}})
            message = text(refused)
            assert refused.is_error and "Invalid `source.git.url`" in message
            assert f"GitHub App {APP_ID} is not installed on stranger/{repo}" in message
            assert "install the platform's GitHub App on the GitHub account stranger" in message
            assert "set_git_credentials" in message and "127.0.0.1" in message
            assert await env.deps.store.get_app(env.tenant, "gh", "other") is None

            # in the build: the installation went away between the call and the build
            created = ok(await c.call_tool("create_app", {
                "project": "gh", "name": "web", "port": 8080,
                "source": {"git": {"url": git_server.url(f"{OWNER}/{repo}.git")}}, "wait_seconds": 0}))
            fake.installations.clear()
            asked = len(fake.requests)
            inp = await build_input(env, "gh", "web", created["deployment_id"])
            async with build_worker(env) as queue:
                built: BuildOutput = await env.temporal.execute_workflow(
                    "build", inp, id=f"build-test-{uuid.uuid4().hex[:8]}", task_queue=queue, result_type=BuildOutput)
            assert built.failure is not None and built.failure.reason == "BuildFailed"
            failure = built.failure.message
            assert f"GitHub App {APP_ID} is not installed on {OWNER}/{repo}" in failure
            assert f"install the app on the account {OWNER}" in failure and "set_git_credentials" in failure
            assert [(r.method, r.url.path) for r in fake.requests[asked:]] == [
                ("GET", f"/repos/{OWNER}/{repo}/installation")], "not retried: installing the app is the fix"
            logs = ok(await c.call_tool("builds", {"project": "gh", "app": "web",
                                                           "build_id": str(built.build_id)}))
            assert logs["build"]["status"] == "failed" and logs["build"]["failed_step"] == "checkout"
            assert any("not installed on" in x["line"] for x in logs["app_output"]["lines"])
        await terminate(env, created["workflow_id"])


async def test_an_account_bound_to_other_tenants_gives_this_tenant_no_token(
    database_url: str, temporal_address: str, tls: tuple[Path, Path], fake: FakeGitHub, git_server: GitHttpsServer,
) -> None:
    repo = f"shop-{uuid.uuid4().hex[:6]}"
    make_repo(git_server, OWNER, repo)
    fake.install(OWNER, repo, installation_id=93)
    async with fake_github_running(fake) as api, platform(database_url, temporal_address, tls, api,
                                                          github_app={"owners": {"another-tenant": [OWNER]}}) as env:
        async with env.client() as c:
            refused = await c.call_tool("create_app", {
                "project": "gh", "name": "web", "port": 8080,
                "source": {"git": {"url": git_server.url(f"{OWNER}/{repo}.git")}}})
        message = text(refused)
        assert refused.is_error and "Invalid `source.git.url`" in message
        assert f"does not serve the GitHub account {OWNER} to your tenant" in message and env.tenant in message
        assert "github_app_owners" in message and "set_git_credentials" in message
        assert not [r for r in fake.requests if r.url.path.endswith("/access_tokens")], "no token was minted"
        assert await env.deps.store.get_app(env.tenant, "gh", "web") is None


async def test_github_unavailable_is_retryable(
    database_url: str, temporal_address: str, tls: tuple[Path, Path], fake: FakeGitHub, git_server: GitHttpsServer,
) -> None:
    repo, other = f"shop-{uuid.uuid4().hex[:6]}", f"blog-{uuid.uuid4().hex[:6]}"
    make_repo(git_server, OWNER, repo)
    make_repo(git_server, OWNER, other)
    fake.install(OWNER, repo, other)
    async with fake_github_running(fake) as api, platform(database_url, temporal_address, tls, api) as env:
        async with env.client() as c:
            created = ok(await c.call_tool("create_app", {
                "project": "gh", "name": "web", "port": 8080,
                "source": {"git": {"url": git_server.url(f"{OWNER}/{repo}.git")}}, "wait_seconds": 0}))
            fake.fault = httpx.Response(502, json={"message": "Server Error"})
            down = await c.call_tool("create_app", {
                "project": "gh", "name": "blog", "port": 8080,
                "source": {"git": {"url": git_server.url(f"{OWNER}/{other}.git")}}})
            assert down.is_error and f"GitHub could not be asked for a token to read {OWNER}/{other}" in text(down)
            assert "Try again in a moment" in text(down)
        await terminate(env, created["workflow_id"])
        inp = await build_input(env, "gh", "web", created["deployment_id"])
        store = await PgStore.open(env.settings.database.url or "", min_size=1, max_size=2)
        app = open_github_app(env.settings)  # a worker's: nothing cached
        try:
            activities = build_activities(env.settings, store, github_app=app)
            started = await store.start_build(inp, "build/test", "local-buildah")
            with pytest.raises(ApplicationError) as info:
                await ActivityEnvironment().run(activities.build_image, started)
            assert info.value.type == "GitHubUnavailable" and not info.value.non_retryable
            assert "GitHub is unavailable" in info.value.message
        finally:
            if app is not None:
                await app.aclose()
            await store.close()


async def test_a_refused_app_token_names_the_installation_and_is_not_reused(
    database_url: str, temporal_address: str, tls: tuple[Path, Path], fake: FakeGitHub, git_server: GitHttpsServer,
) -> None:
    repo = f"shop-{uuid.uuid4().hex[:6]}"
    make_repo(git_server, OWNER, repo)
    fake.install(OWNER, repo)
    url = git_server.url(f"{OWNER}/{repo}.git")
    revoked: set[str] = set()
    git_server.tokens = lambda: [t["token"] for t in fake.issued if t["token"] not in revoked]
    async with fake_github_running(fake) as api, platform(database_url, temporal_address, tls, api) as env, \
            env.client() as c:
        first = ok(await c.call_tool("create_app", {"project": "gh", "name": "web", "port": 8080,
                                                    "source": {"git": {"url": url}}, "wait_seconds": 0}))
        revoked.add(fake.issued[0]["token"])  # e.g. the installation dropped the repository and got it back
        refused = await c.call_tool("deploy", {"project": "gh", "app": "web"})
        assert refused.is_error and "refused the GitHub App's installation token" in text(refused)
        assert f"installation on {OWNER} covers the repository" in text(refused)
        assert len(fake.issued) == 1, "the cached token was tried"
        again = ok(await c.call_tool("deploy", {"project": "gh", "app": "web", "wait_seconds": 0}))
        assert len(fake.issued) == 2, "the refused token was forgotten: a new one was minted"
        assert again["deployment_id"]
        outputs = text(refused) + str(again)
        for workflow_id in (first["workflow_id"], again["workflow_id"]):
            await terminate(env, workflow_id)
    assert all(t["token"] not in outputs for t in fake.issued)
