"""How an activity calls Kubernetes: `kube_call` runs one adapter call and turns its `KubeError` into the
Temporal `ApplicationError` of the failure's class (type `K8s...`, non-retryable unless retrying can help,
`Retry-After` as the next retry delay), so every activity fails the same way for the same API answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio.exceptions import ApplicationError

from workflows.adapters.kube import KubeError

T = TypeVar("T")


def _k8s(e: KubeError) -> ApplicationError:
    f = e.failure
    return ApplicationError(
        str(e), type=f.type, non_retryable=not f.retryable,
        next_retry_delay=timedelta(seconds=f.retry_after) if f.retry_after else None,
    )


async def kube_call(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except KubeError as e:
        raise _k8s(e) from e
