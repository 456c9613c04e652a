"""The build workflow's activities: record the build, check out the commit, build and push the image, stream
its lines to the build log, record the outcome. The image is built by buildah here (the `local` builder) or,
with `jobs` set (the `buildkit` builder), by a BuildKit Job on `pool=build` (`workflows.activities.build_job`).

Credentials for the git host are read and decrypted here (or, for a repository on the GitHub the platform's
GitHub App serves, an installation token is minted just before the checkout: `credentials_for` says which
wins), used for the checkout or handed to the build Job in a Secret deleted with the build, and dropped: they
never enter workflow history, a log line (build lines are masked of them), or an error message.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.activities.build_job import JobBuilder
from workflows.activities.metrics import BUILD_SECONDS
from workflows.activities.stores import BuildStore
from workflows.adapters.buildah import (
    BuilderMissing,
    BuildFailed,
    PushFailed,
    build_and_push,
    build_dir,
    find_dockerfile,
)
from workflows.adapters.git import GitAuthError, GitError, RepoNotFound, checkout
from workflows.adapters.github_app import ChosenCredentials, GitHubApp, GitHubUnavailable, credentials_for
from workflows.adapters.kube import KubeError
from workflows.adapters.loki import LokiClient, LokiStream
from workflows.domain.build_contract import BuildDone, BuildInput, BuildStarted
from workflows.domain.build_spec import reserved_build_secret
from workflows.domain.credentials import GitCredentials, RobotCredentials
from workflows.domain.git_urls import GitUrl, parse_git_url
from workflows.domain.log_paging import LogStoreUnavailable
from workflows.domain.masking import SecretMasker
from workflows.domain.secretbox import SecretBox


@dataclass(frozen=True)
class BuildSettings:
    registry_insecure: bool = True
    storage_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "deploy-mcp-buildah")
    work_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "deploy-mcp-builds")
    ca_file: Path | None = None


class RobotSource(Protocol):
    """The tenant's registry robot (Harbor), which build Jobs push with (`HarborActivities`)."""

    async def robot_credentials(self, tenant: str) -> RobotCredentials: ...


class BuildLineSink:
    """Buffers build output and appends it to the build log in batches (one write per second or 200 lines):
    the store always (what `get_build_logs` pages), and Loki too when configured, labelled as the log agent
    labels runtime lines but with stream=build."""

    def __init__(self, store: BuildStore, build_id: Any, masker: SecretMasker, inp: BuildInput | None = None,
                 loki: LokiClient | None = None) -> None:
        self.store, self.build_id, self.masker = store, build_id, masker
        self.seq, self.flushed_at = 0, time.monotonic()
        self.buffer: list[str] = []
        self.loki = loki
        self.labels = {"tenant": inp.tenant, "project": inp.project, "app": inp.app, "commit_sha": inp.commit_sha,
                       "deployment_id": str(inp.deployment_id or ""), "stream": "build"} if inp else {}

    async def __call__(self, line: str) -> None:
        self.buffer.append(self.masker.mask(line.rstrip("\n"))[:4096])
        if len(self.buffer) >= 200 or time.monotonic() - self.flushed_at > 1:
            await self.flush()

    async def flush(self) -> None:
        if self.buffer:
            lines, self.buffer = self.buffer, []
            await self.store.append_build_lines(self.build_id, self.seq, lines)
            self.seq += len(lines)
            if self.loki is not None:
                now = time.time_ns()
                try:
                    await self.loki.push([LokiStream(labels=self.labels, values=[
                        (now + i, line) for i, line in enumerate(lines)])])
                except LogStoreUnavailable as e:  # the store has the lines; Loki gets the next batch
                    activity.logger.warning("build lines not pushed to Loki: %s", e)
        self.flushed_at = time.monotonic()
        if activity.in_activity():
            activity.heartbeat(self.seq)


class BuildActivities:
    def __init__(self, store: BuildStore, secretbox: SecretBox, settings: BuildSettings | None = None,
                 loki: LokiClient | None = None, github_app: GitHubApp | None = None,
                 jobs: JobBuilder | None = None, robots: RobotSource | None = None) -> None:
        self.store = store
        self.jobs = jobs
        self.robots = robots
        self.secretbox = secretbox
        self.settings = settings or BuildSettings()
        self.loki = loki
        self.github_app = github_app

    @activity.defn
    async def build_start(self, inp: BuildInput) -> BuildStarted:
        builder = "buildkit-job" if self.jobs is not None else "local-buildah"  # recorded on the build's row
        return await self.store.start_build(inp, activity.info().workflow_id or "", builder)

    async def _stored_credentials(self, tenant: str, host: str) -> GitCredentials | None:
        found = await self.store.git_credentials(tenant, host)
        if found is None:
            return None
        kind, username, ciphertext = found
        return GitCredentials.stored(kind, username, self.secretbox.open(ciphertext)["secret"])

    async def _credentials(self, tenant: str, url: str) -> ChosenCredentials:
        """The tenant's credentials for the host when they fit the URL, else a GitHub App installation token
        (minted now) when the app covers the URL, else none. GitHubUnavailable propagates."""
        git_url = parse_git_url(url)
        stored = await self._stored_credentials(tenant, git_url.host)
        return await credentials_for(git_url, stored, self.github_app, tenant)

    async def _checkout(self, started: BuildStarted, chosen: ChosenCredentials, src: Path,
                        sink: BuildLineSink) -> BuildDone | None:
        """Check the commit out into `src`; a BuildDone when that failed for good."""
        inp = started.request
        git_url = parse_git_url(inp.git_url)
        try:
            await checkout(git_url, inp.commit_sha, src, chosen.credentials, ca_file=self.settings.ca_file)
        except GitError as e:
            if e.retryable:
                await sink(f"deploy-mcp: checkout failed: {e}")
                await sink.flush()
                raise ApplicationError(str(e), type="GitUnavailable") from e
            message = str(e)
            if isinstance(e, GitAuthError | RepoNotFound):
                message = chosen.explain(git_url, e)
                self._forget(chosen, git_url)
            await sink(f"deploy-mcp: checkout failed: {message}")
            await sink.flush()
            return BuildDone(build_id=started.build_id, status="failed", failed_step="checkout", error=message)
        return None

    def _forget(self, chosen: ChosenCredentials, git_url: GitUrl) -> None:
        if chosen.source == "github-app" and self.github_app is not None:
            self.github_app.forget(git_url)

    @activity.defn
    async def build_image(self, started: BuildStarted) -> BuildDone:
        """One build; its wall time goes to `deploy_mcp_build_duration_seconds` (outcome `error`: it raised, and
        Temporal retries it or fails the build)."""
        began = time.monotonic()
        builder = "buildkit" if self.jobs is not None else "local"
        outcome = "error"
        try:
            done = await self._build_image(started)
            outcome = done.status
            return done
        finally:
            BUILD_SECONDS.labels(builder=builder, outcome=outcome).observe(time.monotonic() - began)

    async def _build_image(self, started: BuildStarted) -> BuildDone:
        inp = started.request
        sink = BuildLineSink(self.store, started.build_id, SecretMasker({}), inp, self.loki)
        self.settings.work_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=self.settings.work_root))
        try:
            git_url = parse_git_url(inp.git_url)
            await sink(f"deploy-mcp: checking out {inp.commit_sha[:12]} of {git_url.url}")
            try:
                chosen = await self._credentials(inp.tenant, inp.git_url)
            except GitHubUnavailable as e:
                await sink(f"deploy-mcp: no GitHub App token for the checkout: {e}")
                await sink.flush()
                raise ApplicationError(str(e), type="GitHubUnavailable") from e
            build_secrets = await self._build_secrets(inp)
            sink.masker = SecretMasker(chosen.secrets() | {f"secret:{k}": v for k, v in build_secrets.items()})
            if chosen.source == "github-app":
                await sink(f"deploy-mcp: using a GitHub App installation token for {git_url.repo_path}")
            if self.jobs is not None:
                return await self._build_on_cluster(started, chosen, sink, work, build_secrets)
            failed = await self._checkout(started, chosen, work / "src", sink)
            if failed is not None:
                return failed
            image = f"{inp.image_repo}:{inp.commit_sha}"
            await sink(f"deploy-mcp: building {image}")
            try:
                result = await build_and_push(
                    work / "src", inp.subdir, image, registry_insecure=self.settings.registry_insecure,
                    storage_root=self.settings.storage_root, on_line=sink, builder=inp.builder, secrets=build_secrets,
                    timeout=inp.timeout_seconds,
                )
            except (BuildFailed, BuilderMissing) as e:
                step = getattr(e, "step", None)
                await sink(f"deploy-mcp: build failed{f' at {step}' if step else ''}: {e}")
                await sink.flush()
                return BuildDone(build_id=started.build_id, status="failed", failed_step=step, error=str(e),
                                 last_lines=list(getattr(e, "last_lines", []))[-15:])
            except PushFailed as e:
                await sink(f"deploy-mcp: push failed: {e}")
                await sink.flush()
                if e.retryable:
                    raise ApplicationError(str(e), type="PushFailed") from e
                return BuildDone(build_id=started.build_id, status="failed", failed_step="push", error=str(e))
            await sink(f"deploy-mcp: pushed {result.pinned}")
            await sink.flush()
            return BuildDone(build_id=started.build_id, status="succeeded", digest=result.digest,
                             image=f"{inp.image_repo}@{result.digest}")
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _build_secrets(self, inp: BuildInput) -> dict[str, str]:
        """The app's secrets (the version its deployment pinned), which the build may read by name."""
        if inp.secrets_version <= 0:
            return {}
        sealed = await self.store.secret_ciphertext(inp.app_id, inp.secrets_version)
        if sealed is None:
            raise ApplicationError(f"secrets version {inp.secrets_version} of the app is missing",
                                   type="SecretsMissing", non_retryable=True)
        return {str(k): str(v) for k, v in self.secretbox.open(sealed).items()}

    async def _build_on_cluster(self, started: BuildStarted, chosen: ChosenCredentials, sink: BuildLineSink,
                                work: Path, build_secrets: dict[str, str]) -> BuildDone:
        """The production path: a build Job on the build pool (see workflows.activities.build_job)."""
        assert self.jobs is not None
        inp = started.request
        builder = inp.builder
        if builder == "auto":  # the Job's steps depend on it, so look at the commit first (a shallow checkout)
            failed = await self._checkout(started, chosen, work / "src", sink)
            if failed is not None:
                return failed
            try:
                found = find_dockerfile(build_dir(work / "src", inp.subdir), work / "src")
            except BuildFailed as e:
                await sink.flush()
                return BuildDone(build_id=started.build_id, status="failed", failed_step="checkout", error=str(e))
            builder = "dockerfile" if found is not None else "railpack"
            await sink(f"deploy-mcp: {'a Dockerfile' if found else 'no Dockerfile'}: building with {builder}")
        creds = chosen.credentials
        robot = await self.robots.robot_credentials(inp.tenant) if self.robots is not None else None
        names = tuple(sorted(n for n in build_secrets if not reserved_build_secret(n)))
        for name in sorted(set(build_secrets) - set(names)):
            await sink(f"deploy-mcp: secret {name} is not given to the build (the build Job reserves the name)")
        spec = self.jobs.spec(inp, started.build_id.hex, builder, creds, robot, names)
        try:
            outcome = await self.jobs.build(spec, creds, sink, heartbeat=lambda: activity.heartbeat(sink.seq),
                                            robot=robot, build_secrets=build_secrets)
        except KubeError as e:
            await sink.flush()
            if e.failure.retryable:
                raise ApplicationError(str(e), type="KubernetesUnavailable") from e
            return BuildDone(build_id=started.build_id, status="failed", failed_step="job", error=str(e))
        if outcome.status == "failed":
            await sink(f"deploy-mcp: build failed at {outcome.failed_step}: {outcome.error}")
            await sink.flush()
            if outcome.retryable:
                raise ApplicationError(outcome.error or "the build Job failed", type="BuildJobLost")
            return BuildDone(build_id=started.build_id, status="failed", failed_step=outcome.failed_step,
                             error=outcome.error, last_lines=[sink.masker.mask(x) for x in outcome.last_lines])
        await sink(f"deploy-mcp: pushed {inp.image_repo}@{outcome.digest}")
        await sink.flush()
        return BuildDone(build_id=started.build_id, status="succeeded", digest=outcome.digest,
                         image=f"{inp.image_repo}@{outcome.digest}")

    @activity.defn
    async def build_finish(self, done: BuildDone) -> None:
        await self.store.finish_build(done)

    def all(self) -> list[Callable[..., Any]]:
        return [self.build_start, self.build_image, self.build_finish]
