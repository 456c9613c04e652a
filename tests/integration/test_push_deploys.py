"""Deploy on push and previews through the real HTTP endpoint (`POST /hooks/git/{hook}` on a `deploy-mcp` HTTP
server in this process), real Postgres, a real Temporal dev server running the real deploy and delete
workflows (the cluster and the builder are the stand-ins of tests/support/stand_ins.py), and an app created over
MCP from a repository on the local git server (`git http-backend`, token required).

- `push_deploys` connect returns the webhook URL and a secret once; show never repeats the secret.
- A signed push to the connected branch (GitHub format) releases exactly that commit: the build asked for is the
  pushed sha, the release succeeds, the deployment is recorded by `webhook:github` and audited with it.
- The same delivery again is refused (409) and audited; unsigned, wrongly signed and tampered deliveries are
  refused (403) and audited; none of them records a release. A push to another branch is recorded as ignored.
- A Gitea-signed push deploys as `webhook:gitea`.
- Only signed deliveries are recorded: an unsigned request cannot burn a real delivery's id; one that failed on
  the platform's side is processed when delivered again, one that succeeded is not.
- Pull requests (Gitea format): opened -> a preview app `web-pr5` with the parent's env and none of its secrets,
  serving the head commit; synchronized -> a new release of that preview; closed -> the preview deleted. With
  `previews_secrets`, a same-repository pull request's preview gets the secrets and a fork's does not.
- `delete_app` of the parent deletes its previews by the closed pull request's path (a preview's database kept,
  detached), says which in its result and its audit row, and its plan lists them; the hook then answers 404 as
  an unknown one. A delivery already past the hook's check when the app was deleted deletes the preview it made.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.auth import create_token
from mcp_server.devenv.git_server import GitHttpsServer, git_cmd, self_signed_tls
from mcp_server.devenv.processes import free_port
from mcp_server.git_hooks import WEBHOOK_SCOPES
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import hooks_url, http_server
from tests.support.git_deliveries import delivery_headers, encode, pull_request_payload, push_payload
from tests.support.platform import ok
from tests.support.serving import serving
from tests.support.stand_ins import Cluster, StandInImages, stand_in_worker
from tools.context import CallContext, PlatformConfig, Principal, enter_call, exit_call
from tools.push_deploys import on_pull_request
from tools.records import AppRecord, PushConnection
from workflows.domain.git_hooks import parse_pull_request
from workflows.domain.secretbox import SecretBox

pytestmark = [pytest.mark.timeout(300)]
TOKEN = "glpat-Test0nly0Token0For0Hooks0xyz"


@dataclass
class Repo:
    work: Path
    bare: Path
    url: str

    def commit(self, text: str, branch: str = "main") -> str:
        if git_cmd("rev-parse", "--abbrev-ref", "HEAD", cwd=self.work) != branch:
            git_cmd("checkout", "-q", "-B", branch, cwd=self.work)
        (self.work / "index.html").write_text(text)
        git_cmd("commit", "-q", "-am", text, cwd=self.work)
        git_cmd("push", "-q", "-f", str(self.bare), branch, cwd=self.work)
        return git_cmd("rev-parse", "HEAD", cwd=self.work)


@dataclass
class Hooked:
    mcp_url: str
    token: str
    tenant: str
    cluster: Cluster
    repo: Repo
    context: CallContext  # what a delivery of this tenant's hook runs as


@pytest.fixture(scope="module")
def tls() -> tuple[Path, Path]:
    return self_signed_tls(Path(tempfile.mkdtemp(prefix="hook-tls-")))


@pytest.fixture(scope="module")
def git_server(tls: tuple[Path, Path]) -> Iterator[GitHttpsServer]:
    server = GitHttpsServer(Path(tempfile.mkdtemp(prefix="hook-repos-")), *tls, TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_repo(server: GitHttpsServer) -> Repo:
    name = f"web-{uuid.uuid4().hex[:6]}"
    bare = server.root / f"{name}.git"
    work = Path(tempfile.mkdtemp(prefix="hook-work-"))
    git_cmd("init", "-q", "--bare", "-b", "main", str(bare), cwd=server.root)
    git_cmd("init", "-q", "-b", "main", str(work), cwd=work)
    (work / "index.html").write_text("one")
    (work / "Dockerfile").write_text("FROM scratch\nCOPY index.html /\n")
    git_cmd("add", ".", cwd=work)
    git_cmd("commit", "-q", "-m", "one", cwd=work)
    git_cmd("push", "-q", str(bare), "main", cwd=work)
    return Repo(work, bare, server.url(f"{name}.git"))


@pytest.fixture
async def hooked(store: PgStore, temporal_address: str, tls: tuple[Path, Path],
                 git_server: GitHttpsServer) -> AsyncIterator[Hooked]:
    box = SecretBox(Fernet.generate_key())
    cluster = Cluster()
    async with stand_in_worker(store, temporal_address, cluster, box) as workflows:
        settings = load_settings(http={"port": free_port()})
        mcp_url = settings.http.mcp_url()
        config = PlatformConfig(apps_domain="apps.test", progress_wait_seconds=60, git_allowed_hosts=("127.0.0.1",),
                                git_ca_file=tls[0], hooks_url=hooks_url(mcp_url))
        deps = ServerDeps(store=store, config=config, workflows=workflows, images=StandInImages(), secretbox=box)
        server = http_server(settings, build_server(deps, transport="http", public_url=mcp_url))
        tenant = f"t{uuid.uuid4().hex[:6]}"
        token = await create_token(store, tenant, "agent", ["apps:read", "apps:write", "secrets:write", "audit:read"])
        context = CallContext(principal=Principal(tenant, "webhook:gitea", WEBHOOK_SCOPES, "webhook"), store=store,
                              config=config, workflows=workflows, images=StandInImages(), secretbox=box)
        async with serving(server):
            yield Hooked(mcp_url, token, tenant, cluster, make_repo(git_server), context)


async def mcp(h: Hooked, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {h.token}"}, timeout=120) as hc, \
            Client(streamable_http_client(h.mcp_url, http_client=hc)) as c:
        return ok(await c.call_tool(tool, args))


async def post(url: str, provider: str, event: str, payload: dict[str, Any], secret: str | None, *,
               delivery: str | None = None, body: bytes | None = None) -> httpx.Response:
    raw = encode(payload)
    headers = delivery_headers(provider, event, raw, secret, delivery=delivery)  # type: ignore[arg-type]
    async with httpx.AsyncClient(timeout=60) as hc:
        return await hc.post(url, content=body if body is not None else raw, headers=headers)


async def created_app(h: Hooked) -> None:
    ok_creds = await mcp(h, "set_git_credentials", {"host": "127.0.0.1", "token": TOKEN})
    assert ok_creds
    first = await mcp(h, "create_app", {"project": "shop", "name": "web", "port": 8080, "wait_seconds": 60,
                                        "source": {"git": {"url": h.repo.url, "ref": "main"}},
                                        "env": {"MODE": "prod"}, "secrets": {"API_KEY": "k-parent-only"}})
    assert first["phase"] == "succeeded", first


async def connected_app(h: Hooked) -> dict[str, Any]:
    """The app created from git and connected to push deploys on `main`; the connection as `connect` shows it."""
    await created_app(h)
    return await mcp(h, "push_deploys", {"project": "shop", "app": "web", "action": "connect", "branch": "main"})


async def finished(store: PgStore, tenant: str, deployment_id: str) -> Any:
    phase = None
    for _ in range(240):
        d = await store.get_deployment(tenant, uuid.UUID(deployment_id))
        assert d is not None
        phase = d.phase
        if phase in ("succeeded", "failed", "cancelled"):
            return d
        await asyncio.sleep(0.25)
    raise AssertionError(f"deployment {deployment_id} did not finish: {phase}")


async def hook_audit(h: Hooked) -> list[dict[str, Any]]:
    return [e for e in (await mcp(h, "get_audit_log", {"tool": "git_webhook", "limit": 100}))["entries"]]


async def test_a_signed_push_deploys_its_commit_and_refusals_change_nothing(store: PgStore, hooked: Hooked
                                                                            ) -> None:
    h = hooked
    conn = await connected_app(h)
    url, secret = conn["webhook_url"], conn["webhook_secret"]
    assert url.startswith(hooks_url(h.mcp_url) + "/") and secret and conn["branch"] == "main"
    shown = await mcp(h, "push_deploys", {"project": "shop", "app": "web"})
    assert shown["connected"] and shown["webhook_secret"] is None and shown["webhook_url"] == url
    assert secret not in str(await hook_audit(h)) and secret not in str(await mcp(h, "get_audit_log", {}))

    sha = h.repo.commit("two")
    # an unsigned request cannot burn a real delivery's id: only signed deliveries are recorded
    early = await post(url, "github", "push", push_payload("main", sha), None, delivery="gh-push-1")
    assert early.status_code == 403
    r = await post(url, "github", "push", push_payload("main", sha), secret, delivery="gh-push-1")
    assert r.status_code == 202, r.text
    d = await finished(store, h.tenant, r.json()["deployment_id"])
    assert (d.phase, d.commit_sha, d.created_by) == ("succeeded", sha, "webhook:github")
    assert d.source["git"]["ref"] == "main" and d.source["git"]["commit"] == sha
    assert h.cluster.builds[-1]["commit_sha"] == sha
    app = await store.get_app(h.tenant, "shop", "web")
    assert app is not None and app.serving_deployment_id == d.id
    releases = len(await store.list_deployments(app.id, 100))

    replay = await post(url, "github", "push", push_payload("main", sha), secret, delivery="gh-push-1")
    assert replay.status_code == 409 and "replayed" in replay.json()["error"]
    unsigned = await post(url, "github", "push", push_payload("main", sha), None)
    assert unsigned.status_code == 403 and "X-Hub-Signature-256" in unsigned.json()["error"]
    wrong = await post(url, "github", "push", push_payload("main", sha), "not-the-secret")
    assert wrong.status_code == 403 and "bad signature" in wrong.json()["error"]
    other = h.repo.commit("evil", branch="evil")
    tampered = await post(url, "github", "push", push_payload("main", sha), secret,
                          body=encode(push_payload("main", other)))
    assert tampered.status_code == 403
    ignored = await post(url, "github", "push", push_payload("evil", other), secret)
    assert ignored.status_code == 200 and ignored.json()["outcome"] == "ignored"
    assert len(await store.list_deployments(app.id, 100)) == releases
    unknown = await post(url.rsplit("/", 1)[0] + "/" + "x" * 24, "github", "push", push_payload("main", sha), secret)
    assert unknown.status_code == 404

    three = h.repo.commit("three")
    gitea = await post(url, "gitea", "push", push_payload("main", three), secret)
    assert gitea.status_code == 202, gitea.text
    d3 = await finished(store, h.tenant, gitea.json()["deployment_id"])
    assert (d3.phase, d3.commit_sha, d3.created_by) == ("succeeded", three, "webhook:gitea")

    rows = await hook_audit(h)
    by = {(e["principal"], e["outcome"], e["error"] or "") for e in rows}
    assert ("webhook:github", "ok", "") in by and ("webhook:gitea", "ok", "") in by
    refused = [e for e in rows if e["outcome"] == "denied"]
    assert any("replayed" in e["error"] for e in refused)
    assert sum("unsigned" in e["error"] for e in refused) == 2
    assert sum("bad signature" in e["error"] for e in refused) == 2  # the wrong secret and the tampered body
    assert any(e["outcome"] == "ok" and "evil" in (e["error"] or "") for e in rows)  # ignored, with why
    assert secret not in str(rows)

    gone = await mcp(h, "push_deploys", {"project": "shop", "app": "web", "action": "disconnect"})
    assert not gone["connected"]
    assert (await post(url, "github", "push", push_payload("main", three), secret)).status_code == 404


async def preview(store: PgStore, h: Hooked, name: str) -> Any:
    return await store.get_app(h.tenant, "shop", name)


async def test_pull_requests_get_previews_that_vanish_when_closed(store: PgStore, hooked: Hooked) -> None:
    h = hooked
    conn = await connected_app(h)
    url, secret = conn["webhook_url"], conn["webhook_secret"]
    head = h.repo.commit("feature one", branch="feature")

    opened = await post(url, "gitea", "pull_request", pull_request_payload("opened", 5, head), secret)
    assert opened.status_code == 202, opened.text
    assert opened.json()["app"] == "shop/web-pr5"
    d = await finished(store, h.tenant, opened.json()["deployment_id"])
    assert (d.phase, d.commit_sha, d.created_by) == ("succeeded", head, "webhook:gitea")
    pr_app = await preview(store, h, "web-pr5")
    assert pr_app is not None and pr_app.hostname.startswith("web-pr5-shop-")
    assert pr_app.spec["env"] == {"MODE": "prod"}
    assert (await store.current_secrets(pr_app.id)).names == []
    seen = await mcp(h, "apps", {"project": "shop", "app": "web-pr5"})
    assert seen["url"].split("://", 1)[1].startswith(f"web-pr5-shop-{h.tenant}.apps.test")

    newer = h.repo.commit("feature two", branch="feature")
    synced = await post(url, "gitea", "pull_request", pull_request_payload("synchronized", 5, newer), secret)
    assert synced.status_code == 202, synced.text
    d2 = await finished(store, h.tenant, synced.json()["deployment_id"])
    assert d2.app_id == pr_app.id and d2.commit_sha == newer and d2.phase == "succeeded"

    # a database an agent attached to the preview: kept when the pull request closes, detached, never deleted
    db, _ = await store.create_database(h.tenant, "shop", "prdb", engine="statefulset", version=15, size_gib=1,
                                        class_="fast", resources={}, ciphertext=b"sealed", created_by="agent")
    await store.set_database_app(db.id, pr_app.id)
    await store.set_database_status(db.id, "ready")

    closed = await post(url, "gitea", "pull_request", pull_request_payload("closed", 5, newer, merged=True), secret)
    assert closed.status_code == 202 and closed.json()["outcome"] == "removed", closed.text
    kept = await store.get_database(h.tenant, "shop", "prdb")
    assert kept is not None and kept.app_id is None and kept.status == "ready"
    for _ in range(120):
        row = await store.get_app_by_id(pr_app.id)
        if row is not None and row.status == "deleted":
            break
        await asyncio.sleep(0.25)
    assert row is not None and row.status == "deleted" and "web-pr5" in h.cluster.deleted
    assert await preview(store, h, "web-pr5") is None
    parent = await preview(store, h, "web")
    assert parent is not None and parent.status != "deleted"
    again = await post(url, "gitea", "pull_request", pull_request_payload("closed", 5, newer), secret)
    assert again.status_code == 200 and again.json()["outcome"] == "ignored"

    # secrets only when the connection allows it, and never for a fork
    conn = await mcp(h, "push_deploys", {"project": "shop", "app": "web", "action": "connect", "branch": "main",
                                         "previews_secrets": True})
    url, secret = conn["webhook_url"], conn["webhook_secret"]
    same = await post(url, "github", "pull_request", pull_request_payload("opened", 6, newer), secret)
    fork = await post(url, "github", "pull_request",
                      pull_request_payload("opened", 7, newer, head_repo="mallory/web"), secret)
    assert same.status_code == 202 and fork.status_code == 202, (same.text, fork.text)
    await finished(store, h.tenant, same.json()["deployment_id"])
    fd = await finished(store, h.tenant, fork.json()["deployment_id"])
    with_secrets, without = await preview(store, h, "web-pr6"), await preview(store, h, "web-pr7")
    assert with_secrets is not None and without is not None
    assert (await store.current_secrets(with_secrets.id)).names == ["API_KEY"]
    assert (await store.current_secrets(without.id)).names == []
    assert fd.source["git"]["ref"] == "refs/pull/7/head"
    rows = await hook_audit(h)
    assert {e["arguments"].get("pull_request") for e in rows if e["outcome"] == "ok"} >= {5, 6, 7}


async def test_deleting_the_app_deletes_its_previews_and_its_hook(store: PgStore, hooked: Hooked) -> None:
    h = hooked
    conn = await connected_app(h)
    url, secret = conn["webhook_url"], conn["webhook_secret"]
    head = h.repo.commit("feature one", branch="feature")
    for n in (5, 6):
        r = await post(url, "gitea", "pull_request", pull_request_payload("opened", n, head), secret)
        assert r.status_code == 202, r.text
        await finished(store, h.tenant, r.json()["deployment_id"])
    parent, pr5, pr6 = [await preview(store, h, n) for n in ("web", "web-pr5", "web-pr6")]
    assert parent is not None and pr5 is not None and pr6 is not None
    connection = await store.push_connection(parent.id)
    assert connection is not None
    db, _ = await store.create_database(h.tenant, "shop", "prdb", engine="statefulset", version=15, size_gib=1,
                                        class_="fast", resources={}, ciphertext=b"sealed", created_by="agent")
    await store.set_database_app(db.id, pr5.id)
    await store.set_database_status(db.id, "ready")

    args = {"project": "shop", "app": "web", "confirm": "shop/web"}
    plan = await mcp(h, "delete_app", args | {"plan": True})
    keys = {(r["table"], r["key"]) for r in plan["rows"]}
    assert {("apps", "shop/web-pr5"), ("apps", "shop/web-pr6"), ("databases", "shop/prdb"),
            ("push_connections", "shop/web")} <= keys, plan
    assert len(await store.preview_apps(parent.id)) == 2  # the plan changed nothing

    # the preview's database needs no `database` choice: a preview's is kept, detached, as a closed PR leaves it
    deleted = await mcp(h, "delete_app", args | {"wait_seconds": 60})
    assert deleted["previews"] == ["shop/web-pr5", "shop/web-pr6"], deleted
    assert deleted["done"] and deleted["status"] == "deleted", deleted
    for app in (parent, pr5, pr6):
        row = await store.get_app_by_id(app.id)
        assert row is not None and row.status == "deleted"
    assert {"web", "web-pr5", "web-pr6"} <= set(h.cluster.deleted)
    kept = await store.get_database(h.tenant, "shop", "prdb")
    assert kept is not None and kept.app_id is None and kept.status == "ready"
    assert await store.preview_apps(parent.id) == []
    assert await store.push_connection(parent.id) is None

    audit = [e for e in (await mcp(h, "get_audit_log", {"tool": "delete_app"}))["entries"]
             if e["outcome"] == "ok"]
    assert len(audit) == 1 and audit[0]["workflow_id"] == deleted["workflow_id"]
    ns = parent.namespace
    assert {f"Deployment/{ns}/web-r*", f"Deployment/{ns}/web-pr5-r*", f"Deployment/{ns}/web-pr6-r*",
            "database/shop/prdb"} <= set(audit[0]["k8s_refs"]), audit[0]

    newer = h.repo.commit("feature two", branch="feature")
    late = await post(url, "gitea", "pull_request", pull_request_payload("opened", 7, newer), secret)
    assert late.status_code == 404 and "no such hook" in late.json()["error"]
    assert (await post(url, "github", "push", push_payload("main", newer), secret)).status_code == 404
    assert await preview(store, h, "web-pr7") is None

    # a delivery that passed the hook's check before the delete, and records its preview after it
    made = await raced_delivery(h, connection, parent, pull_request_payload("opened", 8, newer))
    assert made.outcome == "removed" and made.app == "shop/web-pr8", made
    assert await store.preview_apps(parent.id) == []
    for _ in range(240):  # its delete workflow ran to the end: objects removed, the app marked deleted
        if "web-pr8" in h.cluster.deleted and await preview(store, h, "web-pr8") is None:
            break
        await asyncio.sleep(0.25)
    assert "web-pr8" in h.cluster.deleted and await preview(store, h, "web-pr8") is None


async def raced_delivery(h: Hooked, conn: PushConnection, parent: AppRecord, payload: dict[str, Any]) -> Any:
    token = enter_call(h.context)
    try:
        return await on_pull_request(h.context, conn, parent, parse_pull_request(encode(payload)), "raced-1")
    finally:
        exit_call(token)


async def test_a_delivery_that_failed_on_the_platforms_side_may_come_again(store: PgStore) -> None:
    hook = uuid.uuid4().hex
    assert await store.claim_delivery(hook, "d1", "github", "push")
    assert not await store.claim_delivery(hook, "d1", "github", "push")  # received: a replay
    await store.finish_delivery(hook, "d1", "failed", "Temporal away")
    assert await store.claim_delivery(hook, "d1", "github", "push")  # the provider's redelivery
    await store.finish_delivery(hook, "d1", "deployed", "releasing")
    assert not await store.claim_delivery(hook, "d1", "github", "push")
    assert await store.delivery_outcome(hook, "d1") == ("deployed", "releasing")
    assert await store.claim_delivery(hook + "x", "d1", "github", "push")  # ids are per hook
