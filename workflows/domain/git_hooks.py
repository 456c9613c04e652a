"""Git webhook deliveries (GitHub, Gitea, Forgejo): which provider sent one, whether its signature holds, and
the push or pull request it carries. Pure: the HTTP endpoint (`mcp_server.git_hooks`) hands in the headers and
the raw body; nothing here does I/O.

Header names and payload shapes as the providers document them: GitHub sends `X-GitHub-Event`,
`X-GitHub-Delivery` and `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`; Gitea and Forgejo send
`X-Gitea-*` / `X-Forgejo-*` (event, delivery) and `X-Gitea-Signature` / `X-Forgejo-Signature`, the same HMAC in
hex without a prefix. Gitea also sends GitHub's headers for compatibility, so its own are looked at first.
Push payloads carry `ref` (`refs/heads/<branch>`), `before`, `after`, `deleted`; pull request payloads
`action`, `number` and `pull_request.head` / `.base` with `ref`, `sha` and `repo.full_name`. A new commit on a
pull request is `synchronize` on GitHub and `synchronized` on Gitea/Forgejo.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Provider = Literal["github", "gitea", "forgejo"]

MAX_BODY_BYTES = 5 * 1024 * 1024
"""Deliveries larger than this are refused unread (GitHub caps payloads at 25 MB; a push or pull request
payload of a sane repository is far below 5 MiB)."""

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # SHA-1, or SHA-256 object names
_ZERO = re.compile(r"^0+$")


class BadDelivery(ValueError):
    """The delivery cannot be acted on; `str()` says which header or field and why (it never quotes the secret)."""


@dataclass(frozen=True)
class Headers:
    """What a delivery's headers say: who sent it, which event, its id, the signature (hex, prefix removed)."""

    provider: Provider
    event: str
    delivery: str
    signature: str | None


def read_headers(headers: Mapping[str, str]) -> Headers:
    """Provider, event, delivery id and signature from headers (names case-insensitive). The provider's own
    headers win over GitHub's compatibility ones."""
    h = {k.lower(): v for k, v in headers.items()}
    own: tuple[tuple[Provider, str], ...] = (("forgejo", "x-forgejo-"), ("gitea", "x-gitea-"))
    for provider, prefix in own:
        if prefix + "event" in h:
            return Headers(provider, h[prefix + "event"].strip(), h.get(prefix + "delivery", "").strip(),
                           _clean(h.get(prefix + "signature")))
    if "x-github-event" not in h:
        raise BadDelivery("no X-GitHub-Event, X-Gitea-Event or X-Forgejo-Event header: not a git webhook delivery")
    sig = h.get("x-hub-signature-256")
    if sig is not None:
        sig = sig.strip()
        sig = sig[len("sha256="):] if sig.startswith("sha256=") else ""  # anything else cannot match
    return Headers("github", h["x-github-event"].strip(), h.get("x-github-delivery", "").strip(), _clean(sig))


def _clean(signature: str | None) -> str | None:
    return signature.strip().lower() if signature and signature.strip() else None


def signature_of(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `body` under `secret`: what every provider sends (GitHub prefixed with sha256=)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(secret: str, body: bytes, signature: str | None) -> bool:
    """True when `signature` is the body's HMAC under `secret`; compared in constant time."""
    if not signature:
        return False
    return hmac.compare_digest(signature_of(secret, body).encode(), signature.encode("ascii", "replace"))


@dataclass(frozen=True)
class Push:
    """A push to a branch: `sha` is the commit the branch now points at (`after`)."""

    branch: str
    sha: str


@dataclass(frozen=True)
class PullRequest:
    """A pull request event. `action` is normalised: opened, reopened, synchronize (Gitea's synchronized),
    closed, or what the provider sent for anything else. `fork`: the head lives in another repository (or one
    deleted since)."""

    action: str
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    fork: bool
    merged: bool


def _payload(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadDelivery(f"the body is not JSON ({e.__class__.__name__}); set the hook's content type to "
                          "application/json") from e
    if not isinstance(data, dict):
        raise BadDelivery("the body is not a JSON object")
    return data


def _text(data: Mapping[str, Any], *path: str) -> str:
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    if not isinstance(value, str) or not value:
        raise BadDelivery(f"the payload has no `{'.'.join(path)}`")
    return value


def _sha(data: Mapping[str, Any], *path: str) -> str:
    sha = _text(data, *path).lower()
    if not _SHA.match(sha):
        raise BadDelivery(f"`{'.'.join(path)}` is not a full commit SHA")
    return sha


def parse_push(body: bytes) -> Push | None:
    """The branch and new commit of a push; None for what deploys nothing (a tag, a deleted branch)."""
    data = _payload(body)
    ref = _text(data, "ref")
    if not ref.startswith("refs/heads/"):
        return None
    after = _text(data, "after")
    if data.get("deleted") is True or _ZERO.match(after):
        return None
    return Push(branch=ref[len("refs/heads/"):], sha=_sha(data, "after"))


def parse_pull_request(body: bytes) -> PullRequest:
    data = _payload(body)
    action = _text(data, "action")
    number = data.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        pr_number = (data.get("pull_request") or {}).get("number") if isinstance(data.get("pull_request"), dict) \
            else None
        if not isinstance(pr_number, int) or isinstance(pr_number, bool) or pr_number < 1:
            raise BadDelivery("the payload has no pull request `number`")
        number = pr_number
    pr = data.get("pull_request")
    if not isinstance(pr, dict):
        raise BadDelivery("the payload has no `pull_request`")
    head_repo = (pr.get("head") or {}).get("repo")
    base_repo = (pr.get("base") or {}).get("repo")
    head_name = head_repo.get("full_name") if isinstance(head_repo, dict) else None
    base_name = base_repo.get("full_name") if isinstance(base_repo, dict) else None
    return PullRequest(
        action="synchronize" if action == "synchronized" else action,
        number=number, head_sha=_sha(pr, "head", "sha"), head_ref=_text(pr, "head", "ref"),
        base_ref=_text(pr, "base", "ref"),
        fork=not (isinstance(head_name, str) and head_name and head_name == base_name),
        merged=pr.get("merged") is True,
    )
