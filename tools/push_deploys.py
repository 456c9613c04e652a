"""Deploy on push and pull request previews (decision 0020): the `push_deploys` tool connects an app to a
branch of its git repository, and what a verified webhook delivery does (`mcp_server.git_hooks` verifies it
and calls `on_push` / `on_pull_request` with the webhook as the principal): a push to the branch releases that
commit through the same path `deploy` takes; a pull request gets a preview app of its own, removed when the
pull request closes or the app is deleted (`tools.app_delete`)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from tools.app_delete import Preview, delete_preview
from tools.args import AppName, ProjectName, check_name
from tools.context import CallContext, call, tool
from tools.errors import InvalidInput
from tools.lookups import require_app
from tools.records import AppRecord, DeliveryOutcome, PushConnection
from tools.releases import ResolvedSource, record_and_start
from workflows.domain.git_hooks import PullRequest, Push
from workflows.domain.git_urls import InvalidGitSource, check_ref
from workflows.domain.names import NAME_MAX
from workflows.domain.specs import AppConfig

_SHA = re.compile(r"^[0-9a-f]{40}$")


class PushConnectionView(BaseModel):
    app: str
    connected: bool
    branch: str | None = None
    previews: bool | None = None
    previews_secrets: bool | None = None
    webhook_url: str | None = Field(None, description="Configure the repository's webhook to POST here "
                                                      "(content type application/json; push and pull request).")
    webhook_secret: str | None = Field(None, description="The webhook's secret: shown once, on connect.")
    next_step: str


@tool(title="Deploy on push", scope="apps:write", idempotent=False)
async def push_deploys(
    project: ProjectName,
    app: AppName,
    action: Literal["show", "connect", "disconnect"] = "show",
    branch: Annotated[str | None, Field(description="connect: the branch whose pushes deploy; default the "
                                                    "source's ref.", max_length=255)] = None,
    previews: Annotated[bool, Field(description="connect: a preview app per pull request.")] = True,
    previews_secrets: Annotated[bool, Field(description="connect: previews get the app's secrets (never a "
                                                        "fork's).")] = False,
) -> PushConnectionView:
    """Connect a git-sourced app to a branch: a signed webhook push deploys the commit; pull requests get
    preview apps `<app>-pr<n>`. connect returns the webhook URL and a secret shown once (connect again:
    new secret)."""
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await require_app(c, project, app)
    name = f"{project}/{app}"
    if action == "disconnect":
        gone = await c.store.disconnect_push(row.id)
        return PushConnectionView(app=name, connected=False, next_step="Disconnected: deliveries to the old URL "
                                  "are refused; remove the webhook." if gone else "It was not connected.")
    if action == "show":
        conn = await c.store.push_connection(row.id)
        if conn is None:
            return PushConnectionView(app=name, connected=False, next_step="Call with action=connect.")
        return view(c, name, conn, None)
    source = await git_source(c, row)
    chosen = branch or source.get("ref")
    if not chosen or _SHA.match(chosen) or chosen.startswith("refs/tags/"):
        raise InvalidInput("branch", "is needed: the app's source names no branch", "pass branch, e.g. main")
    chosen = chosen.removeprefix("refs/heads/")
    try:
        check_ref(chosen)
    except InvalidGitSource as e:
        raise InvalidInput("branch", str(e), "pass a branch name, e.g. main") from e
    if previews_secrets:
        c.require("secrets:write")
    secret = secrets.token_urlsafe(32)
    conn = await c.store.connect_push(row.id, secrets.token_urlsafe(18), chosen, previews, previews_secrets,
                                      c.require_secretbox().seal({"secret": secret}), c.principal.subject)
    return view(c, name, conn, secret)


def view(c: CallContext, name: str, conn: PushConnection, secret: str | None) -> PushConnectionView:
    url = f"{c.config.hooks_url}/{conn.hook_id}" if c.config.hooks_url else None
    step = ("Add a webhook to the repository (GitHub, Gitea or Forgejo) with this URL and secret, content type "
            "application/json, events push and pull request. The secret is not shown again."
            if secret else "Connected. Lost the secret? Call action=connect again for a new one.")
    if url is None:
        step += " This server has no public HTTP URL: ask the operator to set http.public_url."
    return PushConnectionView(app=name, connected=True, branch=conn.branch, previews=conn.previews,
                              previews_secrets=conn.previews_secrets, webhook_url=url, webhook_secret=secret,
                              next_step=step)


async def git_source(c: CallContext, row: AppRecord) -> dict[str, Any]:
    """The git source of the app's latest release (url, ref, subdir, builder), or a refusal naming the fix."""
    latest = await c.store.list_deployments(row.id, limit=1)
    git = latest[0].source.get("git") if latest else None
    if not isinstance(git, dict):
        raise InvalidInput("app", f"{row.project}/{row.name} is not built from a git repository",
                           "deploy it with source.git first")
    return git


# -- what a verified delivery does ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HookResult:
    """What one delivery did, for its HTTP answer, its audit row and its delivery record."""

    outcome: DeliveryOutcome
    detail: str
    app: str | None = None
    deployment_id: UUID | None = None
    workflow_id: str | None = None


def release_key(hook_id: str, delivery: str) -> str:
    """The idempotency key of the release a delivery makes: a redelivery after a failure makes it once."""
    return "hook:" + hashlib.sha256(f"{hook_id}/{delivery}".encode()).hexdigest()[:40]


async def on_push(c: CallContext, conn: PushConnection, parent: AppRecord, push: Push | None,
                  delivery: str) -> HookResult:
    if push is None:
        return HookResult("ignored", "not a new commit on a branch (a tag or a deleted branch)")
    if push.branch != conn.branch:
        return HookResult("ignored", f"a push to {push.branch}; this app deploys {conn.branch}")
    git = await git_source(c, parent)
    stored = {"git": {**git, "ref": conn.branch, "commit": push.sha}}
    resolved = ResolvedSource(repository=f"{c.config.registry}/{parent.tenant}/{parent.name}", digest=None,
                              commit_sha=push.sha, stored=stored)
    claim = await record_and_start(
        c, project=parent.project, app=parent.name, create=False, resolved=resolved,
        config=AppConfig.model_validate(parent.spec), secret_changes=None,
        idempotency_key=release_key(conn.hook_id, delivery), existing=parent)
    return HookResult("deployed", f"releasing {push.sha[:12]} of {push.branch}",
                      f"{parent.project}/{parent.name}", claim.deployment.id, claim.deployment.workflow_id)


def preview_name(app: str, number: int) -> str:
    """`<app>-pr<n>`, the app's part shortened to keep within the name limit."""
    suffix = f"-pr{number}"
    return app[: max(1, NAME_MAX - len(suffix))].rstrip("-") + suffix


async def on_pull_request(c: CallContext, conn: PushConnection, parent: AppRecord, pr: PullRequest,
                          delivery: str) -> HookResult:
    if not conn.previews:
        return HookResult("ignored", "previews are off for this app")
    existing_id = await c.store.preview_app_id(parent.id, pr.number)
    existing = await c.store.get_app_by_id(existing_id) if existing_id else None
    if existing is not None and existing.status in ("deleting", "deleted"):
        existing = None
    if pr.action == "closed":
        if existing is None:
            return HookResult("ignored", f"pull request {pr.number} has no preview")
        wf_id, _ = await delete_preview(c, parent.id, Preview(pr.number, existing))
        return HookResult("removed", f"pull request {pr.number} closed ({'merged' if pr.merged else 'not merged'})"
                          f": deleting {existing.name}", f"{existing.project}/{existing.name}", workflow_id=wf_id)
    if pr.action not in ("opened", "reopened", "synchronize"):
        return HookResult("ignored", f"pull request action {pr.action}")
    name = existing.name if existing else preview_name(parent.name, pr.number)
    git = await git_source(c, parent)
    # a fork's head is fetched from the base repository's pull ref (GitHub and Gitea serve refs/pull/<n>/head)
    ref = f"refs/pull/{pr.number}/head" if pr.fork else pr.head_ref
    resolved = ResolvedSource(repository=f"{c.config.registry}/{parent.tenant}/{name}", digest=None,
                              commit_sha=pr.head_sha, stored={"git": {**git, "ref": ref, "commit": pr.head_sha}})
    if existing is not None:
        config = AppConfig.model_validate(existing.spec)
        secret_changes = None
    else:
        # the parent's env and sizes; no volumes (they belong to the parent), one replica
        config = AppConfig.model_validate(parent.spec).model_copy(
            update={"mounts": [], "strategy": "blue-green", "replicas": 1})
        secret_changes = await parent_secrets(c, parent) if conn.previews_secrets and not pr.fork else None
    claim = await record_and_start(
        c, project=parent.project, app=name, create=existing is None, resolved=resolved, config=config,
        secret_changes=secret_changes, idempotency_key=release_key(conn.hook_id, delivery), existing=existing)
    if existing is None:
        await c.store.set_preview_app(parent.id, pr.number, claim.app.id)
        now = await c.store.get_app_by_id(parent.id)
        if now is None or now.status in ("deleting", "deleted"):  # deleted meanwhile, without seeing this preview
            wf_id, _ = await delete_preview(c, parent.id, Preview(pr.number, claim.app))
            return HookResult("removed", f"{parent.project}/{parent.name} is being deleted: deleting its new "
                              f"preview {name} too", f"{parent.project}/{name}", workflow_id=wf_id)
    copied = "with" if secret_changes else "without"
    return HookResult("previewed", f"pull request {pr.number} ({pr.action}): releasing {pr.head_sha[:12]} as "
                      f"{name}, {copied} the app's secrets", f"{parent.project}/{name}", claim.deployment.id,
                      claim.deployment.workflow_id)


async def parent_secrets(c: CallContext, parent: AppRecord) -> dict[str, str | None] | None:
    current = await c.store.current_secrets(parent.id)
    if not current.ciphertext:
        return None
    values: dict[str, str | None] = dict(c.require_secretbox().open(current.ciphertext))
    return values or None
