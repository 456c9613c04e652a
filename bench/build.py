"""build: time from `deploy` of a new commit (git source) to the release succeeding, with each builder, beside
floors measured in the same run:
- local builder (buildah): the same shallow clone + `buildah bud` + `buildah push` run by hand;
- build Job (`builder=buildkit`, with the fake step tools of tests/fakes/fake_buildkit.py, since no BuildKit
  runs here, so this measures the platform's orchestration, not a real build): a bare one-container Job on
  the build node, applied and waited to completion through the API, and the same with an init container
  before it (the build Job's clone and build steps are two containers, which the kubelet starts one after
  the other), printed beside it;
- and the release floor (the built image's objects by `kubectl apply` + `kubectl rollout status`, probed as
  the deployed app is: it names no health check, so a TCP probe at the default period), since a deploy also
  releases what it built: each ratio compares the deploy with build floor + release floor.
Goals (issue 20): under 1.2x the composed floor with the local builder, 1.3x with the build Job.

Run: .venv/bin/python bench/build.py [--runs N]   (root: needs the testbed's nodes and buildah)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import TINY, Report, kubectl_times, platform, quiet, services, timeline
from mcp_server.devenv.git_server import GitHttpsServer, git_cmd, self_signed_tls
from mcp_server.devenv.images import BUSYBOX_HTTPD, build_image, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform
from tests.fakes.fake_buildkit import push_fake_build_images
from workflows.adapters.kube import Kube
from workflows.domain.build_spec import BuildImages

REGISTRY = "127.0.0.1:5000"
TOKEN = "bench-0nly-git-token-for-builds"
APP_FILES = busybox_web_files("built for the bench")


class Repo:
    """A bare repo served by the https git server and a work tree that commits a new version per run."""

    def __init__(self, repos: Path, name: str, dockerfile: str) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="bench-git-"))
        self.bare = repos / f"{name}.git"
        git_cmd("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=repos)
        git_cmd("init", "-q", "-b", "main", str(self.work), cwd=self.work)
        (self.work / "Dockerfile").write_text(dockerfile)
        self.commit("v0")

    def commit(self, version: str) -> str:
        (self.work / "index.html").write_text(version)
        git_cmd("add", ".", cwd=self.work)
        git_cmd("commit", "-q", "-m", version, cwd=self.work)
        git_cmd("push", "-q", str(self.bare), "main", cwd=self.work)
        return git_cmd("rev-parse", "HEAD", cwd=self.work)


TIMELINES: dict[str, list[str]] = {}
"""The last deploy's workflow timeline of each app (read after it was timed), printed under the figures."""


async def timed_deploy(p: Platform, url: str, app: str, first: bool) -> float:
    args: dict[str, Any] = {"project": "bench", "source": {"git": {"url": url}}, "wait_seconds": 300}
    wall, t = time.time(), time.perf_counter()
    async with p.client() as c:
        if first:
            r = await c.call_tool("create_app", args | {"name": app, "port": 8080, "resources": TINY,
                                                        "shutdown_grace_seconds": 1})
        else:
            r = await c.call_tool("deploy", args | {"app": app})
    elapsed = time.perf_counter() - t
    assert r.structured_content and r.structured_content["phase"] == "succeeded", r.content
    if not first:
        workflow_id = str(r.structured_content["workflow_id"])
        TIMELINES[app] = await timeline(p.settings.temporal.address or "", workflow_id, wall)
    return elapsed


async def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, f"{argv[:3]} failed: {err.decode()[-500:]}"


async def raw_buildah(url: str, ca: Path, image: str, root: Path) -> float:
    """The floor of the local builder: clone, bud, push, by hand with the same storage options."""
    src = Path(tempfile.mkdtemp(prefix="bench-raw-"))
    env = os.environ | {"GIT_SSL_CAINFO": str(ca), "GIT_TERMINAL_PROMPT": "0"}
    base = ["buildah", "--storage-driver", "vfs", "--root", str(root / "root"), "--runroot", str(root / "run")]
    t = time.perf_counter()
    try:
        auth = f"http.extraHeader=Authorization: {GitHttpsServer.basic(TOKEN)}"
        await run(["git", "-c", auth, "clone", "-q", "--depth", "1", url, str(src / "src")], env)
        await run([*base, "bud", "--isolation", "chroot", "--layers", "--tls-verify=false", "-q", "-t", image,
                   str(src / "src")])
        await run([*base, "push", "--tls-verify=false", image, f"docker://{image}"])
        return time.perf_counter() - t
    finally:
        shutil.rmtree(src, ignore_errors=True)


async def bare_job(kube: Kube, namespace: str, image: str, two_steps: bool = False) -> float:
    """The floor of the build Job: one busybox container on the build node, applied and waited to Complete.
    `two_steps`: an init container before it, as the build Job's clone step comes before its build step (the
    kubelet starts the second container only once it has seen the first one exit)."""
    name = f"bare-{uuid.uuid4().hex[:8]}"
    step = {"image": image, "command": ["/bin/sh", "-c", "echo done"],
            "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
           "spec": {"backoffLimit": 0, "template": {"spec": {
               "restartPolicy": "Never", "nodeSelector": {"pool": "build"},
               "tolerations": [{"key": "pool", "operator": "Equal", "value": "build", "effect": "NoSchedule"}],
               **({"initContainers": [{"name": "first", **step}]} if two_steps else {}),
               "containers": [{"name": "step", **step}]}}}}
    t = time.perf_counter()
    await kube.apply(job)
    while True:
        got = await kube.get("batch/v1", "Job", namespace, name)
        if any(c.get("type") == "Complete" and c.get("status") == "True"
               for c in ((got or {}).get("status") or {}).get("conditions") or []):
            return time.perf_counter() - t
        await asyncio.sleep(0.05)


async def local_builder(url: str, address: str, tb: Any, server: GitHttpsServer, repos: Path, ca: Path,
                        runs: int) -> tuple[list[float], list[float], list[float]]:
    base = f"{REGISTRY}/bench/base:v1"
    repo = Repo(repos, f"local-{uuid.uuid4().hex[:6]}", f"FROM {base}\nCOPY index.html /www/index.html\n"
                'CMD ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n')
    clone_url = server.url(f"{repo.bare.name}")
    builds = Path(tempfile.mkdtemp(prefix="bench-builds-"))
    deploys, floors = [], []
    async with platform(url, address, tb, git={"allowed_hosts": ["127.0.0.1"], "ca_file": ca},
                        build={"dir": builds}) as p:
        async with p.client() as c:
            await c.call_tool("set_git_credentials", {"host": "127.0.0.1", "token": TOKEN})
        await timed_deploy(p, clone_url, "local", first=True)  # warm: pulls the base image once
        for i in range(runs):
            repo.commit(f"local v{i + 1}")
            deploys.append(await timed_deploy(p, clone_url, "local", first=False))
            repo.commit(f"raw v{i + 1}")
            floors.append(await raw_buildah(clone_url, ca, f"{REGISTRY}/bench/raw:{i}", builds / "raw"))
        releases = await asyncio.to_thread(kubectl_times, tb.kubeconfig, f"{REGISTRY}/bench/raw:0", runs, p.tenant,
                                           "local-floor-", health_check=None)
    return deploys, floors, releases


async def job_builder(url: str, address: str, tb: Any, server: GitHttpsServer, repos: Path, ca: Path,
                      runs: int) -> tuple[list[float], list[float], list[float], list[float]]:
    digest = build_image(APP_FILES, cmd=BUSYBOX_HTTPD).digest
    images = await push_fake_build_images(REGISTRY, "bench", digest)
    repo = Repo(repos, f"job-{uuid.uuid4().hex[:6]}", "FROM scratch\nCOPY index.html /www/index.html\n")
    clone_url = server.url(f"{repo.bare.name}")
    namespace = f"bench-builds-{uuid.uuid4().hex[:6]}"
    kube = await Kube.connect(tb.kubeconfig)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node2"}}
    await kube.patch(node, {"metadata": {"labels": {"pool": "build"}},
                            "spec": {"taints": [{"key": "pool", "value": "build", "effect": "NoSchedule"}]}})
    deploys, floors, two_step_floors = [], [], []
    try:
        async with platform(url, address, tb, git={"allowed_hosts": ["127.0.0.1"], "ca_file": ca}, build={
                "builder": "buildkit", "namespace": namespace, "images": BuildImages(**images),
                "buildkit_addr": "tcp://fake-buildkitd.invalid:1234", "cpu_millicores": 200, "memory_mib": 128,
        }) as p:
            async with p.client() as c:
                await c.call_tool("set_git_credentials", {"host": "127.0.0.1", "token": TOKEN})

            async def deploy(first: bool) -> float:
                sha = git_cmd("rev-parse", "HEAD", cwd=repo.work)  # what the fake buildctl "pushes"
                await push_image(REGISTRY, f"{p.tenant}/job", sha, APP_FILES, cmd=BUSYBOX_HTTPD)
                return await timed_deploy(p, clone_url, "job", first)

            await deploy(first=True)  # warm: pulls the step images onto the node
            for i in range(runs):
                repo.commit(f"job v{i + 1}")
                deploys.append(await deploy(first=False))
                floors.append(await bare_job(kube, namespace, images["clone"]))
                two_step_floors.append(await bare_job(kube, namespace, images["clone"], two_steps=True))
            await kube.delete("v1", "Namespace", None, namespace)
            sha = git_cmd("rev-parse", "HEAD", cwd=repo.work)
            releases = await asyncio.to_thread(kubectl_times, tb.kubeconfig, f"{REGISTRY}/{p.tenant}/job:{sha}", runs,
                                               p.tenant, "job-floor-", health_check=None)
    finally:
        await kube.patch(node, {"metadata": {"labels": {"pool": "run"}}, "spec": {"taints": None}})
        await kube.close()
    return deploys, floors, two_step_floors, releases


async def main(runs: int) -> None:
    quiet()
    tls_dir = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    cert, key = self_signed_tls(tls_dir)
    repos = Path(tempfile.mkdtemp(prefix="bench-repos-"))
    server = GitHttpsServer(repos, cert, key, TOKEN)
    server.start()
    try:
        with services() as (url, address, tb):
            await push_image(REGISTRY, "bench/base", "v1", busybox_web_files(""), cmd=BUSYBOX_HTTPD)
            local, local_floor, local_release = await local_builder(url, address, tb, server, repos, cert, runs)
            job, job_floor, job_two_steps, job_release = await job_builder(url, address, tb, server, repos, cert, runs)
    finally:
        server.stop()
    report = Report(unit="s")
    report.add("local builder: deploy(new commit) -> succeeded", local)
    report.add("floor: git clone + buildah bud + buildah push by hand", local_floor)
    report.add("floor: release of that image (kubectl apply + rollout status)", local_release)
    report.add("build Job (fake tools): deploy(new commit) -> succeeded", job)
    report.add("floor: a bare one-container Job on the build node", job_floor)
    report.add("floor: a bare Job of two steps (init container + container)", job_two_steps)
    report.add("floor: release of the Job's image (kubectl apply + rollout status)", job_release)
    report.ratio("local builder / (build by hand + release)", "local builder: deploy(new commit) -> succeeded",
                 ("floor: git clone + buildah bud + buildah push by hand",
                  "floor: release of that image (kubectl apply + rollout status)"), goal=1.2)
    report.ratio("build Job / (bare Job + release)", "build Job (fake tools): deploy(new commit) -> succeeded",
                 ("floor: a bare one-container Job on the build node",
                  "floor: release of the Job's image (kubectl apply + rollout status)"), goal=1.3)
    report.ratio("build Job / (bare two-step Job + release)", "build Job (fake tools): deploy(new commit) -> succeeded",
                 ("floor: a bare Job of two steps (init container + container)",
                  "floor: release of the Job's image (kubectl apply + rollout status)"))
    report.print("deploy of a new commit on the testbed")
    for app, lines in TIMELINES.items():
        print(f"the last deploy of {app!r}, from its workflow's history:")
        print("\n".join(lines))

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    asyncio.run(main(ap.parse_args().runs))
