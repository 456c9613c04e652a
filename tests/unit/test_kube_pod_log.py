"""The one pod-log call (workflows.adapters.kube.Kube.pod_log) over a stub API client: the query it sends, the
text it returns, every failure a KubeError classified by status (no response at all included), and
`pod_logs`, the tail as lines, on top of it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from workflows.adapters.kube import Kube, KubeError


class _Response:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body, self.released = status, body, False

    async def read(self) -> bytes:
        return self.body

    def release(self) -> None:
        self.released = True


class _Api:
    def __init__(self, answer: _Response | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[str, list[tuple[str, Any]]]] = []

    async def call_api(self, path: str, method: str, *, query_params: list[tuple[str, Any]], **_: Any) -> _Response:
        self.calls.append((path, query_params))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_pod_log_sends_every_parameter_and_returns_the_text() -> None:
    api = _Api(_Response(200, b"2024-01-01T00:00:00Z one\n2024-01-01T00:00:01Z two\n"))
    text = asyncio.run(Kube(api).pod_log(  # type: ignore[arg-type]
        "ns", "web-1", container="app", timestamps=True, since_seconds=60, limit_bytes=1024, tail_lines=10,
        previous=True))
    assert text.splitlines()[1] == "2024-01-01T00:00:01Z two"
    assert api.calls == [("/api/v1/namespaces/ns/pods/web-1/log", [
        ("container", "app"), ("timestamps", "true"), ("sinceSeconds", 60), ("limitBytes", 1024), ("tailLines", 10),
        ("previous", "true")])]
    assert isinstance(api.answer, _Response) and api.answer.released


def test_pod_logs_is_the_tail_as_lines() -> None:
    api = _Api(_Response(200, b"a\nb\n"))
    assert asyncio.run(Kube(api).pod_logs("ns", "web-1", container="app", tail_lines=2)) == ["a", "b"]  # type: ignore[arg-type]
    assert api.calls[0][1] == [("container", "app"), ("tailLines", 2)]


@pytest.mark.parametrize(("answer", "kind", "retryable"), [
    (_Response(404, b'{"kind":"Status","message":"pods \\"web-1\\" not found"}'), "K8sNotFound", False),
    (_Response(400, b'{"message":"previous terminated container \\"app\\" not found"}'), "K8sBadRequest", False),
    (aiohttp.ClientConnectionError("refused"), "K8sUnreachable", True),
    (TimeoutError(), "K8sUnreachable", True),
])
def test_pod_log_failures_are_kube_errors(answer: _Response | Exception, kind: str, retryable: bool) -> None:
    with pytest.raises(KubeError) as info:
        asyncio.run(Kube(_Api(answer)).pod_log("ns", "web-1", container="app"))  # type: ignore[arg-type]
    assert info.value.failure.type == kind and info.value.retryable is retryable
    assert str(info.value).startswith("logs of pod web-1 container app")
