"""How the production builder reads a build Job's state: the pod and Job status shapes the API server returns
(batch/v1 Job conditions, core/v1 container states) mapped to the build's outcome and failing step."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from workflows.activities.build_job import JobBuilder, JobBuilderSettings, _failure, _finished, _stuck, _unschedulable
from workflows.domain.build_contract import BuildInput
from workflows.domain.build_spec import BuildImages, reserved_build_secret
from workflows.domain.credentials import GitCredentials
from workflows.render.build_job import build_job, build_secrets_body

IMAGES = BuildImages(clone="r/git:1", railpack="r/railpack:1", buildctl="r/buildctl:1")
SETTINGS = JobBuilderSettings(namespace="deploy-mcp-builds", buildkit_addr="tcp://buildkitd:1234", images=IMAGES,
                              registry="registry.example.com")
SHA = "b" * 40


def build_input(**kw: Any) -> BuildInput:
    return BuildInput(tenant="acme", project="shop", app="web", app_id=uuid.uuid4(),
                      git_url="https://git.example.com/a/w.git", commit_sha=SHA,
                      image_repo="registry.example.com/acme/web", **kw)


def test_spec_names_the_image_cache_secret_and_deadline() -> None:
    jobs = JobBuilder(None, SETTINGS)  # type: ignore[arg-type]  # spec() talks to no cluster
    spec = jobs.spec(build_input(timeout_seconds=30), "abc123", "dockerfile", GitCredentials(token="t0ken-value"))
    assert spec.image == f"registry.example.com/acme/web:{SHA}" and spec.job_name == "build-abc123"
    assert spec.cache_ref == "registry.example.com/acme/buildcache:web"
    assert spec.git_secret == "build-abc123-git" and spec.git_auth == "token"
    assert spec.deadline_seconds == 60  # the Job's floor, whatever the caller asked
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----"
    ssh = jobs.spec(build_input(), "abc123", "railpack", GitCredentials(ssh_private_key=key))
    assert ssh.git_auth == "ssh" and ssh.deadline_seconds == 1800
    assert jobs.spec(build_input(), "abc123", "railpack", None).git_secret is None


def job(*conditions: dict[str, Any], deadline: int = 900) -> dict[str, Any]:
    return {"spec": {"activeDeadlineSeconds": deadline}, "status": {"conditions": list(conditions)}}


def pod(init: list[dict[str, Any]], main: list[dict[str, Any]], conditions: list[dict[str, Any]] | None = None,
        ) -> dict[str, Any]:
    return {"metadata": {"name": "build-x-abcde"},
            "status": {"initContainerStatuses": init, "containerStatuses": main, "conditions": conditions or []}}


def terminated(name: str, code: int) -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code, "reason": "Error" if code else "Completed"}}}


def test_finished_reads_the_job_conditions() -> None:
    assert _finished(job()) is None
    assert _finished(job({"type": "Complete", "status": "True"})) == "Complete"
    assert _finished(job({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"})) == "Failed"
    assert _finished(job({"type": "Failed", "status": "False"})) is None


def test_a_failed_job_names_the_first_failing_step_and_its_last_lines() -> None:
    failed = job({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"})
    p = pod([terminated("clone", 0)], [terminated("build", 1)])
    tails = {"clone": deque(["ok"]), "build": deque(["#5 ERROR: exit code: 7"])}
    out = _failure(failed, p, ["clone", "build"], tails)
    assert (out.failed_step, out.last_lines) == ("build", ("#5 ERROR: exit code: 7",))
    assert "exit code 1" in (out.error or "")
    clone_failed = _failure(failed, pod([terminated("clone", 128)], [{"name": "build", "state": {"waiting": {
        "reason": "PodInitializing"}}}]), ["clone", "build"], tails)
    assert clone_failed.failed_step == "clone"


def test_a_job_past_its_deadline_says_so() -> None:
    out = _failure(job({"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}, deadline=600), None,
                   ["clone", "build"], {"clone": deque(), "build": deque()})
    assert out.failed_step == "deadline" and "600 s" in (out.error or "")


def test_a_step_whose_image_cannot_be_pulled_is_stuck_and_named() -> None:
    statuses = {"clone": {"name": "clone", "image": "r/git:1", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "r/git:1"'}}}}
    assert _stuck(statuses) == ("clone", 'ImagePullBackOff: Back-off pulling image "r/git:1"')
    assert _stuck({"clone": {"name": "clone", "state": {"waiting": {"reason": "PodInitializing"}}}}) is None


def test_an_unschedulable_pod_gives_the_schedulers_reason() -> None:
    message = "0/2 nodes are available: 2 node(s) didn't match node selector."
    assert _unschedulable(pod([], [], [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                        "message": message}])) == message
    assert _unschedulable(pod([], [], [{"type": "PodScheduled", "status": "True"}])) is None


def test_build_secrets_go_by_name_into_a_secret_of_their_own() -> None:
    jobs = JobBuilder(None, SETTINGS)  # type: ignore[arg-type]
    spec = jobs.spec(build_input(), "abc123", "railpack", None, build_secret_names=("API_KEY", "NPM_TOKEN"))
    assert spec.build_secrets_secret == "build-abc123-secrets"
    body = build_secrets_body(spec, {"API_KEY": "k3y-value", "NPM_TOKEN": "npm-t0ken", "NOT_ASKED": "x"})
    assert body["metadata"]["name"] == "build-abc123-secrets" and body["immutable"] is True
    assert {k: base64.b64decode(v).decode() for k, v in body["data"].items()} == {
        "API_KEY": "k3y-value", "NPM_TOKEN": "npm-t0ken"}
    job = json.dumps(build_job(spec))
    assert "k3y-value" not in job and "--secret" in job and "id=API_KEY,env=API_KEY" in job
    assert [reserved_build_secret(n) for n in ("GIT_TOKEN", "PATH", "DEPLOY_MCP_X", "API_KEY")] == [
        True, True, True, False]


DIGEST = "sha256:" + "c" * 64


class FakeJobApi:
    """The three reads `_follow` makes, answering as the API server does for a build pod whose steps have run:
    the Job's conditions are whatever the test says (the controller may not have marked it yet)."""

    def __init__(self, build_log: list[str], job_conditions: list[dict[str, Any]]) -> None:
        self.build_log = build_log
        self.job_conditions = job_conditions
        self.job_reads = 0

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        self.job_reads += 1
        return job(*self.job_conditions)

    async def list_objects(self, api_version: str, kind: str, namespace: str | None,
                           label_selector: str | None = None) -> list[dict[str, Any]]:
        return [pod([terminated("clone", 0)], [{"name": "build", "state": {"running": {}}}])]

    async def follow_pod_log(self, namespace: str, pod: str, container: str, *,
                             max_seconds: float = 3600) -> AsyncIterator[str]:
        for line in (self.build_log if container == "build" else ["cloned"]):
            yield line


async def follow(api: FakeJobApi) -> Any:
    jobs = JobBuilder(api, SETTINGS)  # type: ignore[arg-type]
    spec = jobs.spec(build_input(), "abc123", "dockerfile", None)
    lines: list[str] = []

    async def sink(line: str) -> None:
        lines.append(line)

    return await asyncio.wait_for(jobs._follow(spec, sink, lambda: None), 5), lines


async def test_the_build_is_done_when_its_last_line_names_the_pushed_digest() -> None:
    api = FakeJobApi(["#8 pushing layers done", f"DEPLOY_MCP_DIGEST={DIGEST}"], job_conditions=[])
    outcome, lines = await follow(api)
    assert (outcome.status, outcome.digest) == ("succeeded", DIGEST)
    assert api.job_reads == 1 and "cloned" in lines and f"DEPLOY_MCP_DIGEST={DIGEST}" in lines


async def test_a_build_log_without_a_digest_waits_for_the_job_and_fails_naming_it() -> None:
    api = FakeJobApi(["#8 ERROR: failed to push"], job_conditions=[])

    async def complete_later() -> None:
        await asyncio.sleep(0.5)
        api.job_conditions.append({"type": "Complete", "status": "True"})

    task = asyncio.create_task(complete_later())
    outcome, _ = await follow(api)
    await task
    assert outcome.status == "failed" and outcome.failed_step == "build"
    assert "without printing the pushed image's digest" in (outcome.error or "")
    assert api.job_reads > 2  # it went on reading the Job, quickly, until the controller marked it
