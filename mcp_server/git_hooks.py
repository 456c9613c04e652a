"""The git webhook endpoint, `POST /hooks/git/{hook_id}` on the HTTP server (decision 0020).

A delivery is acted on only when its signature (the HMAC-SHA256 of the raw body under the app's webhook
secret) holds and its delivery id was not seen before; then it runs as the principal `webhook:<provider>` of the
app's tenant through `tools.push_deploys`. Every delivery to a known hook leaves one audit row (tool
`git_webhook`, transport `webhook`), refused ones too (within a per-address budget, as refused
authentications are). The hook id is the only way in: an unknown one answers 404 and is not audited, since it
names no tenant.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from mcp_server.auth_audit import RefusalBudget
from tools.context import CallContext, PlatformConfig, Principal, enter_call, exit_call
from tools.errors import PlatformError, Unavailable, from_store
from tools.ports import Images, Store, StoreError, Workflows, WorkflowsUnavailable
from tools.push_deploys import HookResult, on_pull_request, on_push
from tools.records import AppRecord, AuditEvent, Outcome, PushConnection
from tools.redaction import storable, storable_text
from workflows.adapters.github_app import GitHubApp
from workflows.domain.git_hooks import (
    MAX_BODY_BYTES,
    BadDelivery,
    Headers,
    parse_pull_request,
    parse_push,
    read_headers,
    signature_ok,
)
from workflows.domain.secretbox import SecretBox, SecretBoxError

log = logging.getLogger(__name__)

HOOKS_PATH = "/hooks/git"
WEBHOOK_SCOPES = frozenset({"apps:read", "apps:write", "secrets:write"})
"""What a verified delivery may do: release the app (and its previews, with secrets when the connection allows)."""

_HOOK_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_ACCEPTED = {"deployed": 202, "previewed": 202, "removed": 202, "ignored": 200}


class _Refused(Exception):
    def __init__(self, status: int, outcome: Outcome, reason: str) -> None:
        self.status, self.outcome, self.reason = status, outcome, reason
        super().__init__(reason)


@dataclass
class GitHooks:
    """The endpoint; holds what a delivery's `CallContext` needs."""

    store: Store
    config: PlatformConfig
    secretbox: SecretBox | None
    workflows: Workflows | None = None
    images: Images | None = None
    github_app: GitHubApp | None = None
    refusals: RefusalBudget = field(default_factory=lambda: RefusalBudget(60))

    async def handle(self, request: Request) -> Response:
        started = time.monotonic()
        hook_id = str(request.path_params.get("hook_id", ""))
        conn = await self.store.push_connection_by_hook(hook_id) if _HOOK_ID.match(hook_id) else None
        app = await self.store.get_app_by_id(conn.app_id) if conn else None
        if conn is None or app is None or app.status in ("deleting", "deleted"):
            return JSONResponse({"error": "no such hook: connect the app again with `push_deploys`"}, 404)
        headers: Headers | None = None
        notes: dict[str, Any] = {"app": f"{app.project}/{app.name}"}
        try:
            body = await _body(request)
            headers = read_headers(request.headers)
            notes["event"] = headers.event
            result = await self._deliver(conn, app, headers, body, notes)
        except _Refused as e:
            await self._audit(app, headers, notes, e.outcome, e.reason, None, started, request)
            return JSONResponse({"error": e.reason}, e.status)
        except BadDelivery as e:
            await self._audit(app, headers, notes, "invalid", str(e), None, started, request)
            return JSONResponse({"error": str(e)}, 400)
        await self._audit(app, headers, notes, "ok", None if result.outcome != "ignored" else result.detail,
                          result.workflow_id, started, request)
        return JSONResponse({"outcome": result.outcome, "detail": result.detail, "app": result.app,
                             "deployment_id": str(result.deployment_id) if result.deployment_id else None},
                            _ACCEPTED[result.outcome])

    async def _deliver(self, conn: PushConnection, app: AppRecord, h: Headers, body: bytes,
                       notes: dict[str, Any]) -> HookResult:
        if self.secretbox is None:
            raise _Refused(503, "error", "this server has no secrets key, so it cannot check signatures; "
                                         "tell the operator (DEPLOY_MCP_SECRETS_KEY)")
        if h.signature is None:
            raise _Refused(403, "denied", f"unsigned delivery: {_signature_header(h)} is missing; set the "
                                          "webhook's secret to the one `push_deploys` connect returned")
        try:
            secret = self.secretbox.open(conn.ciphertext)["secret"]
        except (SecretBoxError, KeyError) as e:
            raise _Refused(503, "error", "this app's webhook secret cannot be opened with the secrets key; connect "
                                         "it again with `push_deploys`, or tell the operator") from e
        if not signature_ok(secret, body, h.signature):
            raise _Refused(403, "denied", f"bad signature: {_signature_header(h)} does not match the body under "
                                          "this app's webhook secret")
        if not h.delivery:
            raise _Refused(400, "invalid", f"no delivery id header ({_delivery_header(h)})")
        if len(h.delivery) > 200:
            raise _Refused(400, "invalid", "the delivery id is longer than 200 characters")
        if not await self.store.claim_delivery(conn.hook_id, h.delivery, h.provider, h.event[:64]):
            raise _Refused(409, "denied", f"replayed delivery: {h.delivery} was received before")
        c = CallContext(principal=Principal(app.tenant, f"webhook:{h.provider}", WEBHOOK_SCOPES, "webhook"),
                        store=self.store, config=self.config, workflows=self.workflows, images=self.images,
                        secretbox=self.secretbox, github_app=self.github_app)
        token = enter_call(c)
        try:
            result = await self._act(c, conn, app, h, body, notes)
        except BadDelivery as e:
            await self.store.finish_delivery(conn.hook_id, h.delivery, "failed", storable_text(str(e), 500))
            raise
        except (PlatformError, StoreError, WorkflowsUnavailable) as e:
            err = _platform_error(e)
            await self.store.finish_delivery(conn.hook_id, h.delivery, "failed", storable_text(str(err), 500))
            retry = isinstance(err, Unavailable)
            raise _Refused(503 if retry else 422, "error" if retry else err.outcome,  # type: ignore[arg-type]
                           str(err) + (" The provider's redelivery of this delivery will be processed."
                                       if retry else "")) from e
        finally:
            exit_call(token)
        await self.store.finish_delivery(conn.hook_id, h.delivery, result.outcome, storable_text(result.detail, 500))
        notes.update(outcome=result.outcome, detail=result.detail, deployment_id=str(result.deployment_id)
                     if result.deployment_id else None, target=result.app)
        return result

    @staticmethod
    async def _act(c: CallContext, conn: PushConnection, app: AppRecord, h: Headers, body: bytes,
                   notes: dict[str, Any]) -> HookResult:
        if h.event == "push":
            push = parse_push(body)
            if push is not None:
                notes.update(branch=push.branch, commit=push.sha)
            return await on_push(c, conn, app, push, h.delivery)
        if h.event == "pull_request":
            pr = parse_pull_request(body)
            notes.update(action=pr.action, pull_request=pr.number, commit=pr.head_sha, fork=pr.fork)
            return await on_pull_request(c, conn, app, pr, h.delivery)
        return HookResult("ignored", f"the event {h.event!r} is not acted on (push and pull_request are)")

    async def _audit(self, app: AppRecord, h: Headers | None, notes: Mapping[str, Any], outcome: Outcome,
                     error: str | None, workflow_id: str | None, started: float, request: Request) -> None:
        if outcome in ("denied", "invalid"):
            client = request.client
            write, dropped = self.refusals.admit(f"{client.host if client else 'unknown'} {app.id}")
            for addr, n in dropped:
                log.warning("git webhook: %d refused deliveries from %s were not audited", n, addr)
            if not write:
                return
        event = AuditEvent(
            tenant=app.tenant, principal=f"webhook:{h.provider}" if h else "webhook:unknown", transport="webhook",
            tool="git_webhook", request_id=storable_text(h.delivery, 200) if h and h.delivery else None,
            arguments=storable(dict(notes)), outcome=outcome, error=storable_text(error, 2000) if error else None,
            workflow_id=storable_text(workflow_id, 1000) if workflow_id else None, k8s_refs=[],
            duration_ms=int((time.monotonic() - started) * 1000))
        try:
            await self.store.record_audit(event)
        except Exception:
            log.exception("could not write the audit row of a git webhook delivery: %s", event.model_dump_json())


async def _body(request: Request) -> bytes:
    """The raw body (the signature covers these bytes), refused past MAX_BODY_BYTES without reading on."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _Refused(413, "invalid", f"the body is larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _Refused(413, "invalid", f"the body is larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    except ClientDisconnect as e:
        raise _Refused(400, "invalid", "the sender disconnected before the body was read") from e
    return b"".join(chunks)


def _platform_error(e: Exception) -> PlatformError:
    if isinstance(e, PlatformError):
        return e
    if isinstance(e, StoreError):
        return from_store(e)
    return Unavailable("The platform's workflow service cannot be reached now, so nothing was started.")


def _signature_header(h: Headers) -> str:
    return {"github": "X-Hub-Signature-256", "gitea": "X-Gitea-Signature", "forgejo": "X-Forgejo-Signature"}[
        h.provider]


def _delivery_header(h: Headers) -> str:
    return {"github": "X-GitHub-Delivery", "gitea": "X-Gitea-Delivery", "forgejo": "X-Forgejo-Delivery"}[h.provider]
