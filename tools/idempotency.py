"""Idempotency keys, with Stripe's semantics: a call retried with the same key returns what the first call
made and starts nothing new; the same key with other arguments is refused, naming the arguments that differ,
because it is a different request that would otherwise be silently answered with the first one's result.

The row a key made keeps a fingerprint of the request that made it: the tool's name and one digest per
argument (SHA-256 of its canonical JSON; an HMAC under the secrets key for secret arguments, so no stored
digest lets a secret value be guessed). Omitted, null, empty arguments count alike, so does a default passed
explicitly inside a nested model (pydantic fills it either way). `wait_seconds` and the key itself are not part
of the request. Keys are scoped to what the call acts on: the app for releases, the project for new volumes,
the volume for snapshots and backups.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

from tools.context import CallContext
from tools.errors import InvalidInput

NOT_PART_OF_THE_REQUEST = frozenset({"idempotency_key", "wait_seconds", "ctx"})


def request_fingerprint(c: CallContext, tool: str, args: Mapping[str, Any],
                        secret_args: frozenset[str] = frozenset()) -> dict[str, Any]:
    """{"tool": name, "args": {argument: digest}} of one call's validated arguments."""
    digests: dict[str, str] = {}
    for name, value in args.items():
        if name in NOT_PART_OF_THE_REQUEST:
            continue
        plain = to_jsonable_python(value)
        if plain is None or plain == {} or plain == []:
            continue
        data = json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()
        digests[name] = c.require_secretbox().digest(data) if name in secret_args else \
            hashlib.sha256(data).hexdigest()
    return {"tool": tool, "args": digests}


def differing(first: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The arguments whose digests differ between two fingerprints of one tool (names only)."""
    a, b = first.get("args") or {}, now.get("args") or {}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def check_same_request(key: str, first: Mapping[str, Any] | None, now: Mapping[str, Any]) -> None:
    """Refuse a key reused for another request. `first` None: the row predates fingerprints (returned as is)."""
    if first is None:
        return
    fix = "retry with exactly the first call's arguments, or use a new key for a different request"
    if first.get("tool") != now.get("tool"):
        raise InvalidInput("idempotency_key", f"{key!r} was first used with `{first.get('tool')}`, not "
                           f"`{now.get('tool')}`", fix)
    diff = differing(first, now)
    if diff:
        listed = ", ".join(f"`{d}`" for d in diff)
        raise InvalidInput("idempotency_key", f"{key!r} was first used with other arguments ({listed} "
                           f"{'differs' if len(diff) == 1 else 'differ'})", fix)
