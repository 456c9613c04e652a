"""Loki over its HTTP API with httpx: range queries, label discovery, push; and `LokiLogStore`, the tools'
log store on top of it.

Wire format (Loki's documented API): `GET /loki/api/v1/query_range` with `query`, `start` and `end` as Unix
nanosecond integers (start inclusive, end exclusive), `limit` (applies across streams) and `direction`
(`forward`|`backward`), answering `{"status":"success","data":{"resultType":"streams","result":[{"stream":
{labels},"values":[["<ns>","<line>"],...]}]}}`; `GET /loki/api/v1/labels` and `/loki/api/v1/label/<name>/values`
answering `{"status":"success","data":[...]}`; `POST /loki/api/v1/push` with `{"streams":[{"stream":{...},
"values":[["<ns>","<line>"]]}]}` answering 204. `X-Scope-OrgID` names the Loki tenant when Loki runs with
auth enabled; platform tenants are kept apart by the `tenant` label, not by this header.

Follow mode polls `query_range` forward from a cursor (`tail` below is one such poll) rather than using
`/loki/api/v1/tail`: that endpoint is a WebSocket, httpx has no WebSocket client, and polling from an exact
cursor (workflows.domain.log_paging) neither loses nor repeats a line between polls, which a reconnecting tail could.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from workflows.adapters.http import http_client
from workflows.domain.log_paging import (
    Direction,
    LogLine,
    LogPage,
    LogQuery,
    LogQueryError,
    LogStoreUnavailable,
    read_page,
)
from workflows.domain.logql import LogQLError, build_query, selector

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class LokiStream:
    labels: dict[str, str]
    values: list[tuple[int, str]]


def _excerpt(resp: httpx.Response) -> str:
    return " ".join(resp.text.split())[:500] or f"HTTP {resp.status_code} with an empty body"


class LokiClient:
    """One Loki endpoint. Every failure is LogStoreUnavailable (unreachable, timeout, 5xx, unexpected answer)
    or LogQueryError (400: Loki's own message about the query)."""

    def __init__(self, url: str, *, tenant: str | None = None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"X-Scope-OrgID": tenant} if tenant else {}
        self._http = http_client(base_url=self.url, headers=headers, transport=transport, timeout=timeout,
                                 connect_timeout=min(timeout, 3.0))

    async def aclose(self) -> None:
        await self._http.aclose()

    def _unavailable(self, why: str) -> LogStoreUnavailable:
        return LogStoreUnavailable(f"Loki at {self.url} {why}; logs are temporarily unavailable.")

    async def _request(self, method: str, path: str, *, params: Mapping[str, str | int] | None = None,
                       body: Any = None) -> httpx.Response:
        try:
            resp = await self._http.request(method, path, params=params, json=body)
        except httpx.TimeoutException as e:
            raise self._unavailable(f"did not answer {path} in time ({type(e).__name__})") from e
        except httpx.HTTPError as e:
            raise self._unavailable(f"is unreachable ({type(e).__name__}: {e})") from e
        if resp.status_code == 400:
            raise LogQueryError(f"Loki refused the query: {_excerpt(resp)}")
        if not resp.is_success:
            raise self._unavailable(f"answered HTTP {resp.status_code} to {path}: {_excerpt(resp)}")
        return resp

    async def _data(self, path: str, params: Mapping[str, str | int]) -> Any:
        resp = await self._request("GET", path, params=params)
        try:
            payload = resp.json()
        except ValueError as e:
            raise self._unavailable(f"answered {path} with something that is not JSON") from e
        if not isinstance(payload, dict) or payload.get("status") != "success" or "data" not in payload:
            raise self._unavailable(f"answered {path} without status=success")
        return payload["data"]

    async def query_range(self, query: str, start_ns: int, end_ns: int, limit: int, direction: Direction
                          ) -> list[LokiStream]:
        """Up to `limit` lines (across all streams) in [start_ns, end_ns), the first ones in `direction`."""
        data = await self._data("/loki/api/v1/query_range", {
            "query": query, "start": start_ns, "end": end_ns, "limit": limit, "direction": direction})
        if not isinstance(data, dict) or data.get("resultType") != "streams":
            raise LogQueryError(f"Loki answered a {data.get('resultType') if isinstance(data, dict) else '?'} "
                                "result; only log queries (streams) are supported")
        try:
            # A value may carry a third element (structured metadata); the line is always the second.
            return [LokiStream(labels={str(k): str(v) for k, v in s["stream"].items()},
                               values=[(int(v[0]), v[1] if type(v[1]) is str else str(v[1])) for v in s["values"]])
                    for s in data.get("result") or []]
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise self._unavailable(f"answered a query_range result this client cannot read ({e!r})") from e

    async def tail(self, query: str, start_ns: int, limit: int, *, now_ns: int | None = None) -> list[LokiStream]:
        """One follow poll: the first `limit` lines from `start_ns` (inclusive) up to now, oldest first."""
        end = now_ns if now_ns is not None else time.time_ns()
        return await self.query_range(query, start_ns, end, limit, "forward")

    async def labels(self, start_ns: int, end_ns: int, query: str | None = None) -> list[str]:
        """Label names of streams in [start_ns, end_ns) (of the streams `query` selects, on Loki >= 3.0)."""
        params: dict[str, str | int] = {"start": start_ns, "end": end_ns}
        if query:
            params["query"] = query
        return [str(v) for v in await self._data("/loki/api/v1/labels", params) or []]

    async def label_values(self, name: str, start_ns: int | None = None, end_ns: int | None = None,
                           query: str | None = None) -> list[str]:
        """Values of label `name` in [start_ns, end_ns), only of the streams `query` selects when given."""
        if not _LABEL_NAME.match(name):
            raise LogQueryError(f"{name!r} is not a label name")
        params: dict[str, str | int] = {}
        if start_ns is not None:
            params["start"] = start_ns
        if end_ns is not None:
            params["end"] = end_ns
        if query:
            params["query"] = query
        return [str(v) for v in await self._data(f"/loki/api/v1/label/{name}/values", params) or []]

    async def push(self, streams: Sequence[LokiStream]) -> None:
        body = {"streams": [{"stream": dict(s.labels), "values": [[str(ts), line] for ts, line in s.values]}
                            for s in streams]}
        await self._request("POST", "/loki/api/v1/push", body=body)


class LokiLogStore:
    """The tools' LogStore over Loki. Label names and values are discovered over the last `labels_window_ns`."""

    source = "loki"

    def __init__(self, client: LokiClient, *, clock: Callable[[], int] = time.time_ns,
                 labels_window_ns: int = DAY_NS) -> None:
        self.client = client
        self.clock = clock
        self.labels_window_ns = labels_window_ns

    async def aclose(self) -> None:
        await self.client.aclose()

    async def read(self, q: LogQuery) -> LogPage:
        try:
            query = build_query(q.selector, contains=q.contains, regex=q.regex, level=q.level)
        except LogQLError as e:
            raise LogQueryError(str(e)) from e

        async def fetch(start_ns: int, end_ns: int, limit: int, direction: Direction) -> list[LogLine]:
            streams = await self.client.query_range(query, start_ns, end_ns, limit, direction)
            # Positional and a plain dataclass: this runs once per line read (up to 5000 a request).
            return [LogLine(ts, line, s.labels) for s in streams for ts, line in s.values]

        return await read_page(q, fetch, now_ns=self.clock(), source=self.source)

    async def labels(self, selector_labels: dict[str, str]) -> dict[str, list[str]]:
        try:
            query = selector(selector_labels)
        except LogQLError as e:
            raise LogQueryError(str(e)) from e
        end = self.clock()
        start = end - self.labels_window_ns
        names = [n for n in await self.client.labels(start, end, query=query)
                 if n not in selector_labels and not n.startswith("__")]
        # Values always come through the app's own selector, so another tenant's values can never show up,
        # even on a Loki older than 3.0 that lists label names without honouring `query`.
        values = await asyncio.gather(*(self.client.label_values(n, start, end, query=query) for n in names))
        return {n: sorted(v) for n, v in zip(names, values, strict=True) if v}
