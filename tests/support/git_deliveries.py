"""Webhook deliveries as GitHub, Gitea and Forgejo send them: the documented headers and (trimmed to the fields
a receiver reads, plus a few it must ignore) the documented push and pull request payloads, signed as each
provider signs (HMAC-SHA256 of the raw body; GitHub's header prefixed `sha256=`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any, Literal

Provider = Literal["github", "gitea", "forgejo"]


def push_payload(branch: str, after: str, *, repo: str = "octo/web", before: str = "0" * 40,
                 deleted: bool = False) -> dict[str, Any]:
    """A push event (GitHub's "push" payload; Gitea's has the same fields)."""
    return {
        "ref": f"refs/heads/{branch}", "before": before, "after": after, "created": before == "0" * 40,
        "deleted": deleted, "forced": False, "base_ref": None, "compare": f"https://git.test/{repo}/compare",
        "commits": [{"id": after, "message": "change", "timestamp": "2026-12-02T12:00:00Z",
                     "author": {"name": "Octo", "email": "octo@example.com"}}],
        "head_commit": {"id": after, "message": "change"},
        "repository": {"id": 1, "name": repo.split("/")[1], "full_name": repo,
                       "clone_url": f"https://git.test/{repo}.git", "default_branch": "main"},
        "pusher": {"name": "octo", "email": "octo@example.com"}, "sender": {"login": "octo", "id": 1},
    }


def pull_request_payload(action: str, number: int, head_sha: str, *, head_ref: str = "feature",
                         base_ref: str = "main", repo: str = "octo/web", head_repo: str | None = None,
                         merged: bool = False) -> dict[str, Any]:
    """A pull_request event (GitHub's; Gitea's has the same `pull_request.head/base` shape). `head_repo` other
    than `repo`: a pull request from a fork."""
    def side(ref: str, sha: str, full_name: str) -> dict[str, Any]:
        return {"label": f"{full_name.split('/')[0]}:{ref}", "ref": ref, "sha": sha,
                "repo": {"id": abs(hash(full_name)) % 10_000, "full_name": full_name, "name": full_name.split("/")[1],
                         "clone_url": f"https://git.test/{full_name}.git"}}

    return {
        "action": action, "number": number,
        "pull_request": {"id": 1000 + number, "number": number, "state": "closed" if action == "closed" else "open",
                         "title": "a change", "merged": merged, "html_url": f"https://git.test/{repo}/pull/{number}",
                         "head": side(head_ref, head_sha, head_repo or repo),
                         "base": side(base_ref, "1" * 40, repo)},
        "repository": {"id": 1, "full_name": repo, "name": repo.split("/")[1]},
        "sender": {"login": "octo", "id": 1},
    }


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(provider: Provider, event: str, body: bytes, secret: str | None, *,
                     delivery: str | None = None) -> dict[str, str]:
    """The headers a provider sends with `body`; `secret` None: unsigned."""
    delivery = delivery or str(uuid.uuid4())
    headers = {"Content-Type": "application/json"}
    if provider == "github":
        headers |= {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-GitHub-Hook-ID": "1",
                    "User-Agent": "GitHub-Hookshot/abc"}
        if secret is not None:
            headers["X-Hub-Signature-256"] = "sha256=" + sign(secret, body)
        return headers
    own = "X-Gitea" if provider == "gitea" else "X-Forgejo"
    # Gitea and Forgejo also send GitHub's and Gogs' event and delivery headers, for receivers written for those
    headers |= {f"{own}-Event": event, f"{own}-Event-Type": event, f"{own}-Delivery": delivery,
                "X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Gogs-Event": event,
                "X-Gogs-Delivery": delivery}
    if secret is not None:
        headers[f"{own}-Signature"] = sign(secret, body)
    return headers


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
