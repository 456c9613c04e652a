"""What `create_app`, `deploy` (and later `rollback`) share: turning a validated request into a recorded
release and a started workflow, then waiting a bounded time while reporting progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from mcp.server.mcpserver import Context
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.context import CallContext
from tools.errors import InvalidInput, Unavailable
from tools.idempotency import check_same_request
from tools.progress import ReleaseProgress
from tools.records import AppRecord, DeploymentRecord, NewRelease, ReleaseClaim
from tools.views import AppLines, DeploymentError, app_url, split_error
from workflows.adapters.git import (
    GitAuthError,
    GitError,
    HostNotAllowed,
    RefNotFound,
    RepoNotFound,
    check_host_allowed,
    resolve_ref,
)
from workflows.adapters.github_app import (
    ChosenCredentials,
    GitHubAppNotForTenant,
    GitHubUnavailable,
    credentials_for,
)
from workflows.adapters.registry import ImageNotFound, RegistryAuthError, RegistryError
from workflows.domain.build_contract import BuildInput
from workflows.domain.credentials import GitCredentials
from workflows.domain.deploy_contract import DeployInput
from workflows.domain.env_limits import environment_problem, value_problem
from workflows.domain.git_urls import GitUrl, InvalidGitSource, check_ref, parse_git_url
from workflows.domain.images import InvalidImageRef, parse_image
from workflows.domain.names import app_hostname, env_name_problem, release_name
from workflows.domain.phases import TERMINAL_PHASES, Phase
from workflows.domain.scaling import AppScale, Autoscale
from workflows.domain.specs import AppConfig
from workflows.domain.workflow_ids import deploy_workflow_id


class GitSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="https or ssh URL; private: `set_git_credentials` first.", min_length=1,
                     max_length=512)
    ref: str | None = Field(None, description="Branch, tag or SHA; default branch if omitted.", max_length=255)
    subdir: str = Field("", max_length=255)
    builder: Literal["auto", "dockerfile", "railpack"] = Field("auto", description="auto: Dockerfile if any.")


class Source(BaseModel):
    """One of: an image, or a git repository the platform builds."""

    model_config = ConfigDict(extra="forbid")
    image: str | None = Field(None, description="e.g. registry.example.com/web:1.4; pinned to its digest.",
                              min_length=1, max_length=512)
    git: GitSource | None = None

    @model_validator(mode="after")
    def _one(self) -> Source:
        if (self.image is None) == (self.git is None):
            raise ValueError("pass exactly one of `image` or `git`")
        return self


@dataclass(frozen=True)
class ResolvedSource:
    """A source pinned: an image digest, or a commit to build into `repository:<sha>`."""

    repository: str
    digest: str | None
    commit_sha: str | None
    stored: dict[str, Any]  # what the deployment row records (the resolved commit included)


class ReleaseResult(BaseModel):
    app_id: UUID
    deployment_id: UUID
    release: str = Field(description="Release name, e.g. web-r2 (the Kubernetes Deployment).")
    workflow_id: str
    url: str = Field(description="Where the app answers once serving.")
    phase: str = Field(description="pending, namespace, release, waiting, switching, succeeded, failed, cancelled.")
    done: bool = Field(description="True when the release reached a final phase within the wait.")
    serving: bool = Field(description="True when this release is the one the app's URL serves.")
    image_digest: str | None
    error: DeploymentError | None = Field(description="The first real error, with a hint, when it failed.")
    app_output: AppLines | None = Field(None, description="When it failed: the last lines of the failing build "
                                                          "step or container, untrusted.")
    next_step: str


def check_env(field: str, values: Mapping[str, str | None]) -> None:
    """Each variable's name, and each value a process environment can carry (None: a removal)."""
    for name, value in values.items():
        problem = env_name_problem(name)
        if problem:
            raise InvalidInput(f"{field}.{name}", f"the name {problem}", "rename it, e.g. DATABASE_URL")
        problem = value_problem(name, value) if isinstance(value, str) else None
        if problem:
            raise InvalidInput(f"{field}.{name}", problem, "keep text values small; put files and binary data on "
                                                           "a volume (base64 if it must be a variable)")


def check_environment(field: str, env: Mapping[str, str], secrets: Mapping[str, str], whose: str = "") -> None:
    """The environment a release would run with (env + secrets, after the call's changes) fits the caps of
    `workflows.domain.env_limits`."""
    problem = environment_problem(env, secrets)
    if problem:
        raise InvalidInput(field, f"{whose}{problem}", "move large values to a volume or a file the app reads "
                           "(`volume` action=attach), or fetch them at start; remove variables you no longer need")


def parse_source(source: Source) -> None:
    """Validate the source's syntax before anything else happens (no network)."""
    if source.image is not None:
        try:
            parse_image(source.image)
        except InvalidImageRef as e:
            raise InvalidInput("source.image", str(e)) from e
    elif source.git is not None:
        try:
            parse_git_url(source.git.url)
            if source.git.ref is not None:
                check_ref(source.git.ref)
        except InvalidGitSource as e:
            raise InvalidInput("source.git", str(e)) from e


async def resolve_source(c: CallContext, source: Source, app: str) -> ResolvedSource:
    """Pin the source now: an image tag to its digest, a git ref to its commit."""
    parse_source(source)
    if source.git is not None:
        return await _resolve_git(c, source.git, app)
    assert source.image is not None
    ref = parse_image(source.image)
    try:
        resolved = await c.require_images().resolve(ref)
    except ImageNotFound as e:
        raise InvalidInput("source.image", str(e), "push the image first or correct the tag") from e
    except RegistryAuthError as e:
        raise InvalidInput("source.image", str(e), "use an image the platform can pull, or ask the operator "
                                                   "to add registry credentials") from e
    except RegistryError as e:
        if not e.retryable:
            raise InvalidInput("source.image", str(e), "check the reference and the registry") from e
        raise Unavailable(f"The registry could not be asked about {source.image}: {e}",
                          hint="Try again in a moment.") from e
    return ResolvedSource(repository=resolved.repository, digest=resolved.digest, commit_sha=None,
                          stored={"image": source.image})


async def stored_git_credentials(c: CallContext, host: str) -> GitCredentials | None:
    found = await c.store.git_credentials(c.principal.tenant, host)
    if found is None:
        return None
    kind, username, ciphertext = found
    return GitCredentials.stored(kind, username, c.require_secretbox().open(ciphertext)["secret"])


async def git_credentials(c: CallContext, url: GitUrl) -> ChosenCredentials:
    """What the ref is resolved with, by the rule the build follows too (`credentials_for`): the tenant's
    credentials for the host, else the platform's GitHub App token for a repository it covers, else none."""
    try:
        stored = await stored_git_credentials(c, url.host)
        return await credentials_for(url, stored, c.github_app, c.principal.tenant)
    except GitHubUnavailable as e:
        raise Unavailable(f"GitHub could not be asked for a token to read {url.repo_path}: {e}",
                          hint="Try again in a moment.") from e


async def _resolve_git(c: CallContext, git: GitSource, app: str) -> ResolvedSource:
    url = parse_git_url(git.url)
    chosen: ChosenCredentials | None = None
    try:
        await check_host_allowed(url.host, c.config.git_allowed_hosts)
        chosen = await git_credentials(c, url)
        resolved = await resolve_ref(url, git.ref, chosen.credentials, ca_file=c.config.git_ca_file)
    except HostNotAllowed as e:
        raise InvalidInput("source.git.url", str(e), "use a public git host, or ask the operator to allow-list "
                                                     "this one") from e
    except RefNotFound as e:
        raise InvalidInput("source.git.ref", str(e), "pass an existing branch, tag or commit") from e
    except (GitAuthError, RepoNotFound) as e:
        if chosen is not None and chosen.source == "github-app":
            if c.github_app is not None:
                c.github_app.forget(url)
            raise InvalidInput("source.git.url", chosen.explain(url, e)) from e
        if chosen is not None and chosen.app_problem is not None:
            owner = url.repo_path.split("/")[0]
            fix = (f"ask the operator to bind the GitHub account {owner} to your tenant"
                   if isinstance(chosen.app_problem, GitHubAppNotForTenant)
                   else f"install the platform's GitHub App on the GitHub account {owner}")
            raise InvalidInput("source.git.url", chosen.explain(url, e),
                               f"{fix}, or call `set_git_credentials` for {url.host}") from e
        if isinstance(e, GitAuthError):
            raise InvalidInput("source.git.url", str(e), f"call `set_git_credentials` for {url.host} first") from e
        raise InvalidInput("source.git.url", str(e), "check the URL (and credentials for a private repo)") from e
    except GitError as e:
        if not e.retryable:
            raise InvalidInput("source.git.url", str(e)) from e
        raise Unavailable(f"The git server could not be reached: {e}", hint="Try again in a moment.") from e
    return ResolvedSource(
        repository=f"{c.config.registry}/{c.principal.tenant}/{app}", digest=None, commit_sha=resolved.sha,
        stored={"git": {"url": url.url, "ref": git.ref, "subdir": git.subdir, "builder": git.builder,
                        "commit": resolved.sha}},
    )


@dataclass(frozen=True)
class SecretsChange:
    """Secrets after a change: a new sealed version on top of `base`, or none when nothing changes (so a
    retried call stays idempotent). `values` is what the app's environment will hold; never logged."""

    base: int
    names: list[str] | None
    sealed: bytes | None
    values: dict[str, str]


async def seal_secrets(c: CallContext, app_id: UUID | None, changes: dict[str, str | None] | None
                       ) -> SecretsChange:
    """`changes` applied on the app's current secrets (none for a new app), sealed when they change them."""
    if app_id is None:
        base, current = 0, {}
    else:
        sv = await c.store.current_secrets(app_id)
        base = sv.version
        current = c.require_secretbox().open(sv.ciphertext) if sv.ciphertext else {}
    merged = dict(current)
    for k, v in (changes or {}).items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    if merged == current:
        return SecretsChange(base, None, None, merged)
    return SecretsChange(base, sorted(merged), c.require_secretbox().seal(merged), merged)


async def record_and_start(
    c: CallContext, *, project: str, app: str, create: bool, resolved: ResolvedSource,
    config: AppConfig, secret_changes: dict[str, str | None] | None, idempotency_key: str | None,
    existing: AppRecord | None, fingerprint: dict[str, Any] | None = None,
) -> ReleaseClaim:
    tenant = c.principal.tenant
    c.require_workflows()
    secrets = await seal_secrets(c, existing.id if existing else None, secret_changes)
    check_environment("env + secrets", config.env, secrets.values)
    return await claim_and_start(c, NewRelease(
        tenant=tenant, project=project, app=app,
        hostname=app_hostname(app, project, tenant, c.config.apps_domain), create=create,
        config=config.model_dump(mode="json"), source=resolved.stored, image=resolved.repository,
        image_digest=resolved.digest, commit_sha=resolved.commit_sha, idempotency_key=idempotency_key,
        request_fingerprint=fingerprint, created_by=c.principal.subject,
        new_secret_names=secrets.names, new_secret_ciphertext=secrets.sealed, base_secrets_version=secrets.base,
        workflow_id_prefix=deploy_workflow_id(tenant, project, app, 0)[:-1],
    ))


async def claim_and_start(c: CallContext, req: NewRelease) -> ReleaseClaim:
    """Record the release (or find the one an identical earlier call recorded) and make sure its workflow
    runs. Releases still rolling out are superseded: cancelled, and the new workflow waits until they have
    closed before it switches the Service, so two releases never race for it."""
    workflows = c.require_workflows()
    claim = await c.store.create_release(req)
    d = claim.deployment
    if not claim.created and req.idempotency_key and d.idempotency_key == req.idempotency_key:
        # before anything starts: the key may have made another request
        check_release_kind(req.idempotency_key, d, req.kind)
        if req.request_fingerprint is not None:
            check_same_request(req.idempotency_key, d.request_fingerprint, req.request_fingerprint)
    c.audit.workflow_id = d.workflow_id
    ns, app, release = claim.app.namespace, claim.app.name, release_name(claim.app.name, d.release_seq)
    c.audit.k8s_refs = [f"Namespace/{ns}", f"Deployment/{ns}/{release}", f"Service/{ns}/{app}",
                        f"Ingress/{ns}/{app}", f"Secret/{ns}/{release}-env"]
    if c.config.image_pull_secret:
        c.audit.k8s_refs.append(f"Secret/{ns}/{c.config.image_pull_secret}")
    superseded = []
    if claim.created:
        for older in claim.rolling_out:
            if older.id != d.id and older.seq < d.seq:
                await workflows.cancel(older.workflow_id)
                superseded.append(older.workflow_id)
    if d.phase not in TERMINAL_PHASES:
        # Also for a retried call: the first attempt may have died between recording and starting.
        await workflows.start_deploy(d.workflow_id, deploy_input(c, claim, superseded))
    return claim


def check_release_kind(key: str, first: DeploymentRecord, kind: str) -> None:
    """A rollback never gets back the release a deploy's key made, nor a deploy a rollback's."""
    if first.kind != kind:
        raise InvalidInput("idempotency_key", f"{key!r} was first used for a {first.kind}, not a {kind}",
                           "use a new key for a different request")


async def check_release_key(c: CallContext, app_id: UUID, key: str | None, fingerprint: dict[str, Any] | None
                            ) -> None:
    """Refuse a key the app's releases used for another request before a call writes anything of its own
    (a volume, an attachment); `claim_and_start` checks again under the app's lock."""
    if key is None or fingerprint is None:
        return
    first = await c.store.release_by_key(app_id, key)
    if first is not None:
        check_same_request(key, first.request_fingerprint, fingerprint)


def deploy_input(c: CallContext, claim: ReleaseClaim, wait_for: list[str] | None = None) -> DeployInput:
    d, a = claim.deployment, claim.app
    return DeployInput(
        deployment_id=d.id, app_id=a.id, tenant=a.tenant, project=a.project, app=a.name, namespace=a.namespace,
        seq=d.release_seq, kind=d.kind, wait_for=wait_for or [], hostname=a.hostname,
        image=f"{d.image}@{d.image_digest}" if d.image_digest else "", image_digest=d.image_digest or "",
        build=_build_input(claim) if not d.image_digest and "git" in d.source else None,
        commit_sha=d.commit_sha, config=AppConfig.model_validate(d.config), secrets_version=d.secrets_version,
        runtime_class=c.config.runtime_class, ingress_class=c.config.ingress_class,
        node_failure_seconds=c.config.node_failure_seconds, ready_timeout_seconds=c.config.ready_timeout_seconds,
        rollback_window_seconds=c.config.rollback_window_seconds,
        retain_releases=c.config.retain_releases, retain_days=c.config.retain_days,
        image_pull_secret=c.config.image_pull_secret, autoscale=_autoscale(a),
    )


def _autoscale(app: AppRecord) -> Autoscale | None:
    """The app's autoscaler, when `scale` set one: the release starts at the serving count and it follows."""
    return AppScale.model_validate(app.scale).autoscale if app.scale else None


def _build_input(claim: ReleaseClaim) -> BuildInput:
    d, a = claim.deployment, claim.app
    git = d.source["git"]
    return BuildInput(tenant=a.tenant, project=a.project, app=a.name, app_id=a.id, deployment_id=d.id,
                      git_url=git["url"], commit_sha=d.commit_sha or git["commit"], subdir=git.get("subdir", ""),
                      builder=git.get("builder", "auto"), image_repo=d.image or "",
                      secrets_version=d.secrets_version)


POLL_FIRST, POLL_MAX = 0.02, 0.25  # seconds between reads of a waited release's phase
POLL_FAST_FOR = 1.0  # seconds of reads every POLL_FIRST before backing off: a warm rollback ends within it


def wait_bound(c: CallContext, wait_seconds: int | None) -> float:
    return float(c.config.progress_wait_seconds if wait_seconds is None else wait_seconds)


async def wait_with_progress(c: CallContext, claim: ReleaseClaim, ctx: Context | None, wait_seconds: float
                             ) -> ReleaseResult:
    """Poll the release's phase (the workflow records each one) until it is final or `wait_seconds` pass,
    sending a progress notification at every phase change that moves forward."""
    started = time.monotonic()
    deadline = started + wait_seconds
    d: DeploymentRecord = claim.deployment
    progress = release_progress(d)
    polled = False
    pause = POLL_FIRST
    while True:
        step = progress.advance(d.phase)
        if step is not None and ctx is not None:
            release = release_name(claim.app.name, d.release_seq)
            await ctx.report_progress(step, progress.total, f"{release}: {d.phase}")
        if d.phase in TERMINAL_PHASES or time.monotonic() >= deadline:
            break
        # short at first: a warm rollback ends in a fraction of a second; a row read by id costs ~1 ms
        await asyncio.sleep(pause)
        if time.monotonic() - started >= POLL_FAST_FOR:
            pause = min(pause * 2, POLL_MAX)
        d = await c.store.get_deployment(c.principal.tenant, d.id) or d
        polled = True
    # Not polled (wait_seconds=0, or final already): the app as the claim read it, with the release it answers.
    app = (await c.store.get_app_by_id(claim.app.id) or claim.app) if polled else claim.app
    return release_result(app, d, c.config.apps_url_port)


def release_progress(d: DeploymentRecord) -> ReleaseProgress:
    """Counted along the steps the workflow takes for this record (the same facts `deploy_input` gives it)."""
    return ReleaseProgress.of(rollback=d.kind == "rollback", builds=not d.image_digest and "git" in d.source,
                              recreate=AppConfig.model_validate(d.config).strategy == "recreate")


def release_result(app: AppRecord, d: DeploymentRecord, port: int | None = None) -> ReleaseResult:
    done = d.phase in TERMINAL_PHASES
    serving = app.serving_deployment_id == d.id
    if d.phase == Phase.SUCCEEDED:
        step = f"Serving at {app_url(app, port)}. Use `apps` for details or `deployments` for history."
    elif d.phase == Phase.FAILED:
        step = "The previous release (if any) keeps serving. Read `error`, fix the cause and `deploy` again."
    elif d.phase == Phase.CANCELLED:
        step = "A newer release or a rollback superseded this one."
    else:
        step = f"Still {d.phase}: call `deployments` with deployment_id={d.id} to follow it."
    error, output = split_error(d.error)
    return ReleaseResult(
        app_id=app.id, deployment_id=d.id, release=release_name(app.name, d.release_seq), workflow_id=d.workflow_id,
        url=app_url(app, port), phase=d.phase, done=done, serving=serving, image_digest=d.image_digest,
        error=error, app_output=output, next_step=step,
    )
