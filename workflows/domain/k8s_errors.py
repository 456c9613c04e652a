"""Kubernetes API errors, classified the way kopf does it (by HTTP status), plus whether retrying can help.

The activities turn these into Temporal `ApplicationError`s: a non-retryable one fails the step at once
with a message the agent can act on; a retryable one is retried by Temporal with backoff (respecting
`Retry-After` for 429).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class K8sFailure:
    type: str
    retryable: bool
    status: int | None
    message: str
    retry_after: float | None = None


_BY_STATUS: dict[int, tuple[str, bool]] = {
    400: ("K8sBadRequest", False),
    401: ("K8sUnauthorized", False),  # credentials of the worker: fixing them needs an operator
    403: ("K8sForbidden", False),  # RBAC or an admission policy said no
    404: ("K8sNotFound", False),
    405: ("K8sMethodNotAllowed", False),
    409: ("K8sConflict", True),  # another writer won the race: re-read and try again
    410: ("K8sGone", True),  # a watch's resourceVersion expired: start over
    415: ("K8sUnsupportedMediaType", False),
    422: ("K8sInvalid", False),  # the object itself is wrong; the same object will fail again
    429: ("K8sTooManyRequests", True),
}


def classify_status(status: int | None, message: str, retry_after: float | None = None) -> K8sFailure:
    """Map an API status (None: no response at all) to a failure type and retryability."""
    if status is None:
        return K8sFailure("K8sUnreachable", True, None, message)
    if status in _BY_STATUS:
        kind, retryable = _BY_STATUS[status]
        return K8sFailure(kind, retryable, status, message, retry_after if status == 429 else None)
    if status >= 500:
        return K8sFailure("K8sServerError", True, status, message, retry_after)
    return K8sFailure(f"K8sHttp{status}", False, status, message)


def warming_up(failure: K8sFailure) -> K8sFailure:
    """A 403 from an API server that could not be reached moments before: a restarting API server serves
    before its RBAC caches are filled (1.20 has no informer-sync readiness check) and refuses everyone for that
    moment. Retryable, unlike any other 403; a real RBAC gap still fails once the retries run out."""
    return K8sFailure("K8sForbidden", True, failure.status,
                      failure.message + " (right after the API server was unreachable: retried)")


def status_message(body: object, limit: int = 500) -> str:
    """The `message` of a Kubernetes `Status` body, truncated so a huge payload never floods a log or a
    tool result."""
    import json

    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and parsed.get("message"):
            text = str(parsed["message"])
    except ValueError:
        pass
    return text if len(text) <= limit else text[: limit - 3] + "..."
