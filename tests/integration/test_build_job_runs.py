"""The production builder (`builder: buildkit`) end to end on the testbed, through an MCP client: `create_app`
with a git source -> the worker starts a build Job on the build-pool node (node2, labelled and tainted
pool=build for this test) with the git token in a short-lived Secret -> the Job's steps run (the rendered
clone and build scripts, unchanged, on busybox) -> the worker streams their lines into the build log, reads the
pushed digest from the build step and releases it -> the app answers HTTP. BuildKit, git and Railpack cannot run
here, so the steps' tools are fakes (tests/fakes/fake_buildkit.py); what is real is everything around them:
the API server, the scheduler, the kubelet running the Job, the log API, the registry, the release. Harbor (a
fake of its v2.0 API) gives the tenant's robot, which the build pushes with and the release pulls with."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.git_server import GitHttpsServer, git_cmd, self_signed_tls
from mcp_server.devenv.images import BUSYBOX_HTTPD, build_image, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from mcp_server.store import PgStore
from tests.fakes.fake_buildkit import push_fake_build_images
from tests.fakes.fake_harbor import FAKE_ADMIN, fake_harbor_running
from tests.support.platform import ok, running_platform, worker_process
from workflows.adapters.kube import Kube
from workflows.domain.build_spec import BuildImages

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(900)]
REGISTRY = "127.0.0.1:5000"
TOKEN = "glpat-J0b0Builds0Token0Only0In0Secrets"
API_KEY = "sk-build-secret-0nly-by-reference"
BUILD_NODE = "node2"
APP_FILES = busybox_web_files("built by a job")


@pytest.fixture(scope="module")
def tls() -> tuple[Path, Path]:
    return self_signed_tls(Path(tempfile.mkdtemp(prefix="git-tls-")))


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
async def build_pool(needs_node: Testbed) -> AsyncIterator[str]:
    """node2 becomes the build pool (label pool=build, taint pool=build:NoSchedule) for the test."""
    kube = await Kube.connect(needs_node.kubeconfig)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": BUILD_NODE}}
    try:
        await kube.patch(node, {"metadata": {"labels": {"pool": "build"}}, "spec": {"taints": [
            {"key": "pool", "value": "build", "effect": "NoSchedule"}]}})
        yield BUILD_NODE
    finally:
        await kube.patch(node, {"metadata": {"labels": {"pool": "run"}}, "spec": {"taints": None}})
        await kube.close()


@asynccontextmanager
async def job_platform(database_url: str, temporal_address: str, testbed: Testbed, tls: tuple[Path, Path],
                       *, start_worker: bool) -> AsyncIterator[Platform]:
    digest = build_image(APP_FILES, cmd=BUSYBOX_HTTPD).digest  # what the fake buildctl reports it pushed
    images = await push_fake_build_images(REGISTRY, "jobtest", digest)
    async with fake_harbor_running() as (_, harbor_url):
        settings = platform_settings(
            database_url, temporal_address, testbed, git={"allowed_hosts": ["127.0.0.1"], "ca_file": tls[0]},
            build={"builder": "buildkit", "namespace": f"builds-{uuid.uuid4().hex[:6]}",
                   "images": BuildImages(**images), "buildkit_addr": "tcp://fake-buildkitd.invalid:1234",
                   "cpu_millicores": 200, "memory_mib": 128},
            harbor={"url": harbor_url, "username": FAKE_ADMIN[0], "password": FAKE_ADMIN[1]})
        async with running_platform(settings, start_worker=start_worker) as p:
            try:
                yield p
            finally:
                await p.kube.delete("v1", "Namespace", None, settings.build.namespace)


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed, tls: tuple[Path, Path],
                   build_pool: str) -> AsyncIterator[Platform]:
    async with job_platform(database_url, temporal_address, needs_node, tls, start_worker=True) as p:
        yield p


@pytest.fixture
async def platform_without_worker(database_url: str, temporal_address: str, needs_node: Testbed,
                                  tls: tuple[Path, Path], build_pool: str) -> AsyncIterator[Platform]:
    async with job_platform(database_url, temporal_address, needs_node, tls, start_worker=False) as p:
        yield p


def make_repo(repos: Path, name: str) -> str:
    work = Path(tempfile.mkdtemp(prefix="git-work-"))
    git_cmd("init", "-q", "--bare", "-b", "main", str(repos / f"{name}.git"), cwd=repos)
    git_cmd("init", "-q", "-b", "main", str(work), cwd=work)
    (work / "index.html").write_text("built by a job")
    (work / "Dockerfile").write_text("FROM scratch\nCOPY index.html /www/index.html\n")
    git_cmd("add", ".", cwd=work)
    git_cmd("commit", "-q", "-m", "one", cwd=work)
    git_cmd("push", "-q", str(repos / f"{name}.git"), "main", cwd=work)
    return git_cmd("rev-parse", "HEAD", cwd=work)


async def build_log(c: Any, app: str, deployment_id: str) -> tuple[str, dict[str, Any]]:
    logs = ok(await c.call_tool("builds", {"project": "jobs", "app": app, "deployment_id": deployment_id,
                                                   "limit": 1000}))
    return "\n".join(x["line"] for x in logs["app_output"]["lines"]), logs


async def test_a_git_source_is_built_by_a_job_on_the_build_pool(platform: Platform, git_server: GitHttpsServer,
                                                                 repos: Path) -> None:
    p = platform
    sha = make_repo(repos, f"jobs-{p.tenant}")
    url = git_server.url(f"jobs-{p.tenant}.git")
    for name in ("web", "rp"):  # the fake buildctl "pushes" this image: put it where a real push would
        await push_image(REGISTRY, f"{p.tenant}/{name}", sha, APP_FILES, cmd=BUSYBOX_HTTPD)
    ns_builds = p.settings.build.namespace
    async with p.client() as c:
        ok(await c.call_tool("set_git_credentials", {"host": "127.0.0.1", "token": TOKEN}))
        web = ok(await c.call_tool("create_app", {"project": "jobs", "name": "web", "port": 8080,
                                                  "source": {"git": {"url": url}}, "wait_seconds": 300,
                                                  "secrets": {"API_KEY": API_KEY}}))
        assert web["phase"] == "succeeded", web
        app = await p.deps.store.get_app(p.tenant, "jobs", "web")
        assert app is not None
        assert await p.service_get(app.namespace, "web", expect="built by a job") == "built by a job"
        text, logs = await build_log(c, "web", web["deployment_id"])
        assert logs["build"]["status"] == "succeeded" and logs["build"]["builder"] == "buildkit-job"
        assert "building with dockerfile" in text and "fake git: initialised" in text and "#6 exporting" in text
        header = "Authorization: Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
        assert f"authorization sha256 {hashlib.sha256(header.encode()).hexdigest()}" in text  # the token arrived
        assert f"fake buildctl: pushing as robot${p.tenant}+deploy-mcp" in text  # the tenant's Harbor robot
        assert f"fake buildctl: secret API_KEY sha256 {hashlib.sha256(API_KEY.encode()).hexdigest()}" in text
        assert web["image_digest"] == build_image(APP_FILES, cmd=BUSYBOX_HTTPD).digest

        jobs = await p.kube.list_objects("batch/v1", "Job", ns_builds)
        pods = await p.kube.list_objects("v1", "Pod", ns_builds)
        assert len(jobs) == 1 and [x["spec"]["nodeName"] for x in pods] == [BUILD_NODE]
        pod_spec = jobs[0]["spec"]["template"]["spec"]
        assert "--frontend dockerfile.v0" in " ".join(pod_spec["containers"][0]["args"])
        push_secret = {"secretName": f"{jobs[0]['metadata']['name']}-registry", "defaultMode": 0o440,
                       "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
        assert {"name": "docker-config", "secret": push_secret} in pod_spec["volumes"]
        pull = await p.kube.get("v1", "Secret", app.namespace, "deploy-mcp-registry")
        assert pull is not None
        robot_secret = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"][REGISTRY]["password"]

        rp = ok(await c.call_tool("create_app", {"project": "jobs", "name": "rp", "port": 8080, "wait_seconds": 300,
                                                 "source": {"git": {"url": url, "builder": "railpack"}}}))
        assert rp["phase"] == "succeeded", rp
        rp_text, _ = await build_log(c, "rp", rp["deployment_id"])
        assert "step plan" in rp_text and "fake railpack: planned" in rp_text and "(gateway.v0)" in rp_text

        broken = ok(await c.call_tool("create_app", {"project": "jobs", "name": "broken", "port": 8080,
                                                     "source": {"git": {"url": url}}, "wait_seconds": 300}))
        assert broken["phase"] == "failed" and broken["error"]["reason"] == "BuildFailed", broken
        evidence = "\n".join(broken["error"]["evidence"] + (broken["app_output"] or {}).get("lines", []))
        assert "step: build" in evidence and "exit code: 7" in evidence, evidence
        _, broken_logs = await build_log(c, "broken", broken["deployment_id"])
        assert broken_logs["build"]["status"] == "failed" and broken_logs["build"]["failed_step"] == "build"
        audit = ok(await c.call_tool("get_audit_log", {"limit": 200}))
        outputs = json.dumps([web, logs, rp, broken, broken_logs, audit])

    assert await p.kube.list_objects("v1", "Secret", ns_builds, label_selector="deploy-mcp/build-id") == []
    jobs = await p.kube.list_objects("batch/v1", "Job", ns_builds)
    assert len(jobs) == 3 and all(x not in json.dumps(jobs) for x in (TOKEN, robot_secret, API_KEY))
    assert all(x not in outputs for x in (TOKEN, robot_secret, API_KEY))
    assert isinstance(p.deps.store, PgStore)  # ServerDeps names the port; raw SQL needs the pool
    async with p.deps.store.pool.connection() as conn:
        rows = await (await conn.execute("SELECT arguments::text AS a FROM audit_events")).fetchall()
        lines = await (await conn.execute("SELECT line FROM build_log_lines")).fetchall()
    assert TOKEN not in str(rows) and TOKEN not in str(lines)
    assert all(x not in str(rows) and x not in str(lines) for x in (robot_secret, API_KEY))


async def test_a_worker_killed_mid_build_rejoins_the_running_job(platform_without_worker: Platform,
                                                                git_server: GitHttpsServer, repos: Path,
                                                                workdir: Path) -> None:
    """The worker dies (SIGKILL) while the build Job's long RUN step runs; another worker takes the build over
    once the activity's heartbeat lapses: it rejoins the same Job (no second build), streams the rest of its
    lines, and releases the image; the short-lived git Secret is gone afterwards."""
    p = platform_without_worker
    sha = make_repo(repos, f"slow-{p.tenant}")
    await push_image(REGISTRY, f"{p.tenant}/slow", sha, APP_FILES, cmd=BUSYBOX_HTTPD)
    ns_builds = p.settings.build.namespace
    run_dir = workdir / f"build-workers-{p.tenant}"
    first = worker_process(p.settings, run_dir, "build-worker-a")
    first.start()
    second = None
    try:
        async with p.client() as c:
            ok(await c.call_tool("set_git_credentials", {"host": "127.0.0.1", "token": TOKEN}))
            slow = ok(await c.call_tool("create_app", {
                "project": "jobs", "name": "slow", "port": 8080, "wait_seconds": 0,
                "source": {"git": {"url": git_server.url(f"slow-{p.tenant}.git")}}}))
            deployment_id = uuid.UUID(slow["deployment_id"])
            deadline = asyncio.get_running_loop().time() + 180
            text = ""
            while True:  # kill it once the long step is under way (the build's record comes first)
                r = await c.call_tool("builds", {"project": "jobs", "app": "slow",
                                                         "deployment_id": slow["deployment_id"], "limit": 1000})
                if not r.is_error and r.structured_content is not None:
                    text = "\n".join(x["line"] for x in r.structured_content["app_output"]["lines"])
                    if "still working" in text:
                        break
                assert asyncio.get_running_loop().time() < deadline, f"the build never reached its RUN step: {text}"
                await asyncio.sleep(0.5)
            first.stop()
            second = worker_process(p.settings, run_dir, "build-worker-b")
            second.start()
            deadline = asyncio.get_running_loop().time() + 300
            while (d := await p.deps.store.get_deployment(p.tenant, deployment_id)) is not None and (
                    d.phase not in ("succeeded", "failed")):
                assert asyncio.get_running_loop().time() < deadline, f"deploy stuck in {d.phase} after the kill"
                await asyncio.sleep(1)
            assert d is not None and d.phase == "succeeded", d and d.error
            text, logs = await build_log(c, "slow", slow["deployment_id"])
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert logs["build"]["status"] == "succeeded"
    assert "#5 DONE 20.0s" in text and "#6 pushing manifest" in text
    jobs = await p.kube.list_objects("batch/v1", "Job", ns_builds)
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]  # rejoined, not built twice
    assert await p.kube.list_objects("v1", "Secret", ns_builds, label_selector="deploy-mcp/build-id") == []
    app = await p.deps.store.get_app(p.tenant, "jobs", "slow")
    assert app is not None
    assert await p.service_get(app.namespace, "slow", expect="built by a job") == "built by a job"
