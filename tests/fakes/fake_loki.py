r"""A fake Loki: a small HTTP server (aiohttp, on 127.0.0.1, in the caller's event loop or as
`python -m tests.fakes.fake_loki --port N`) speaking the part of Loki's documented HTTP API Deploy MCP uses,
so the Loki adapter is tested over real HTTP.

Endpoints and behaviours, as Loki documents them:
- `POST /loki/api/v1/push`: JSON `{"streams":[{"stream":{labels},"values":[["<ns>","<line>"(,{metadata})]]}]}`,
  answers 204. A (timestamp, line) pair already in the stream is ignored, as Loki's ingester does.
- `GET /loki/api/v1/query_range`: `query`; `start`, `end` as Unix nanosecond integers, start inclusive, end
  exclusive (defaults: end = now, start = end - 1h); `limit` (default 100; above `max_entries`, 5000 like
  Loki's `max_entries_limit_per_query`, answers 400); `direction` forward|backward (default backward). The limit
  applies across streams and keeps the first lines in `direction`. Answers `{"status":"success","data":
  {"resultType":"streams","result":[{"stream":{...},"values":[["<ns>","<line>"],...]}],"stats":{}}}` with each
  stream's values in `direction` order.
- `GET /loki/api/v1/labels` and `GET /loki/api/v1/label/<name>/values`: `start`, `end`, `query` (a stream
  selector); `{"status":"success","data":[...]}`.
- `GET /ready`.
- `X-Scope-OrgID`: data is kept per org; with `auth_enabled` a request without it answers 401 `no org id`.
- Query errors answer 400 with a plain-text message, as Loki does.

LogQL subset: a stream selector with `=`, `!=`, `=~`, `!~` matchers (regex matchers fully anchored, as in
Prometheus; at least one matcher must not match the empty string), then line filters `|=`, `!=`, `|~`, `!~`
(regexes unanchored; the level filter of workflows.domain.logql is one of these). Strings are Go double-quoted strings
(`\\ \" \n \r \t \a \b \f \v \xNN \NNN \uNNNN \UNNNNNNNN`) or backtick raw strings. Regexes run on Python's `re`.

Unlike Loki on purpose: lines sharing a timestamp come back in an order of the fake's own (a hash of the stream
labels, then push order; not reversed for backward), since Loki's order there is an internal detail callers
must not rely on. Not implemented: metric queries, parser stages, label filters, /tail, /series, protobuf push,
RFC 3339 or float times.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAKE_DEFAULT_ORG = "fake"
FAKE_ORG_KEY = web.RequestKey("fake_org", str)
_FAKE_IDENT = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FAKE_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
                        '"': '"'}


class FakeLogQLError(ValueError):
    pass


@dataclass
class FakeStream:
    labels: dict[str, str]
    order: str  # the fake's tie-break between streams at one timestamp
    entries: list[tuple[int, int, str]] = field(default_factory=list)  # (ts, push sequence, line)
    seen: set[tuple[int, str]] = field(default_factory=set)


@dataclass(frozen=True)
class FakeMatcher:
    name: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        hit = re.fullmatch(self.value, have) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class FakeLineFilter:
    op: str
    value: str

    def matches(self, line: str) -> bool:
        if self.op == "|=":
            return self.value in line
        if self.op == "!=":
            return self.value not in line
        hit = re.search(self.value, line) is not None
        return hit if self.op == "|~" else not hit


@dataclass(frozen=True)
class FakeQuery:
    matchers: tuple[FakeMatcher, ...]
    filters: tuple[FakeLineFilter, ...]


@dataclass(frozen=True)
class FakeRequest:
    method: str
    path: str
    params: dict[str, str]
    org: str | None


def _fake_error(text: str, pos: int, what: str) -> FakeLogQLError:
    near = text[pos:pos + 10] or "end of input"
    return FakeLogQLError(f"parse error at line 1, col {pos + 1}: syntax error: {what}, near {near!r}")


def _fake_read_string(text: str, i: int) -> tuple[str, int]:
    """A Go string literal starting at text[i] (a quote); returns (value, index after the closing quote)."""
    quote = text[i]
    if quote == "`":
        end = text.find("`", i + 1)
        if end < 0:
            raise _fake_error(text, i, "unterminated raw string")
        return text[i + 1:end], end + 1
    if quote != '"':
        raise _fake_error(text, i, "expected a string")
    out = bytearray()
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == '"':
            return out.decode("utf-8", "replace"), j + 1
        if c == "\n":
            raise _fake_error(text, j, "newline in string")
        if c != "\\":
            out += c.encode()
            j += 1
            continue
        e = text[j + 1:j + 2]
        if e in _FAKE_SIMPLE_ESCAPES:
            out += _FAKE_SIMPLE_ESCAPES[e].encode()
            j += 2
        elif e == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[j + 2:j + 4]):
            out.append(int(text[j + 2:j + 4], 16))
            j += 4
        elif e in ("u", "U"):
            n = 4 if e == "u" else 8
            digits = text[j + 2:j + 2 + n]
            if not re.fullmatch(rf"[0-9a-fA-F]{{{n}}}", digits):
                raise _fake_error(text, j, "invalid escape")
            out += chr(int(digits, 16)).encode("utf-8", "surrogatepass")
            j += 2 + n
        elif re.fullmatch(r"[0-7]{3}", text[j + 1:j + 4]):
            out.append(int(text[j + 1:j + 4], 8) & 0xFF)
            j += 4
        else:
            raise _fake_error(text, j, "invalid escape")
    raise _fake_error(text, i, "unterminated string")


def _fake_skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _fake_compile(text: str, pos: int, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise FakeLogQLError(f"parse error at line 1, col {pos + 1}: error parsing regexp: {e}") from None


def fake_parse_logql(text: str) -> FakeQuery:
    """The stream selector and line filters of a log query; FakeLogQLError (Loki's wording) otherwise."""
    i = _fake_skip_space(text, 0)
    if text[i:i + 1] != "{":
        raise _fake_error(text, i, "expected a stream selector")
    i += 1
    matchers: list[FakeMatcher] = []
    while True:
        i = _fake_skip_space(text, i)
        m = _FAKE_IDENT.match(text, i)
        if not m:
            raise _fake_error(text, i, "expected a label name")
        i = _fake_skip_space(text, m.end())
        op = next((o for o in ("=~", "!~", "!=", "=") if text.startswith(o, i)), None)
        if op is None:
            raise _fake_error(text, i, "expected a matcher operator")
        i = _fake_skip_space(text, i + len(op))
        value, end = _fake_read_string(text, i)
        if op in ("=~", "!~"):
            _fake_compile(text, i, value)
        matchers.append(FakeMatcher(m.group(0), op, value))
        i = _fake_skip_space(text, end)
        if text[i:i + 1] == ",":
            i += 1
            continue
        if text[i:i + 1] == "}":
            i += 1
            break
        raise _fake_error(text, i, "expected , or }")
    if all(m.matches({}) for m in matchers):
        raise FakeLogQLError("queries require at least one regexp or equality matcher that does not have an "
                             "empty-compatible value")
    filters: list[FakeLineFilter] = []
    while (i := _fake_skip_space(text, i)) < len(text):
        op = next((o for o in ("|=", "!=", "|~", "!~") if text.startswith(o, i)), None)
        if op is None:
            raise _fake_error(text, i, "unexpected input (the fake implements line filters only)")
        i = _fake_skip_space(text, i + 2)
        value, end = _fake_read_string(text, i)
        if op in ("|~", "!~"):
            _fake_compile(text, i, value)
        filters.append(FakeLineFilter(op, value))
        i = end
    return FakeQuery(tuple(matchers), tuple(filters))


class FakeLoki:
    """The fake server and its data. `requests` records every request (method, path, params, org)."""

    def __init__(self, *, auth_enabled: bool = False, max_entries: int = 5000) -> None:
        self.auth_enabled = auth_enabled
        self.max_entries = max_entries
        self.orgs: dict[str, dict[tuple[tuple[str, str], ...], FakeStream]] = {}
        self.requests: list[FakeRequest] = []
        self.fail_status: int | None = None  # answer every request with this status
        self.delay_seconds = 0.0  # answer every request this late
        self.url = ""
        self._seq = 0
        self._runner: web.AppRunner | None = None

    # data

    def add(self, labels: dict[str, str], values: list[tuple[int, str]], org: str = FAKE_DEFAULT_ORG) -> None:
        key = tuple(sorted(labels.items()))
        streams = self.orgs.setdefault(org, {})
        stream = streams.get(key)
        if stream is None:
            order = hashlib.sha256(json.dumps(key).encode()).hexdigest()
            stream = streams[key] = FakeStream(labels=dict(labels), order=order)
        for ts, line in values:
            if (ts, line) in stream.seen:
                continue
            stream.seen.add((ts, line))
            self._seq += 1
            stream.entries.append((ts, self._seq, line))

    @property
    def queries(self) -> list[str]:
        return [r.params["query"] for r in self.requests if "query" in r.params]

    def _streams(self, org: str, query: FakeQuery | None) -> list[FakeStream]:
        streams = list(self.orgs.get(org, {}).values())
        if query is None:
            return streams
        return [s for s in streams if all(m.matches(s.labels) for m in query.matchers)]

    # HTTP

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._fake_middleware])
        app.router.add_post("/loki/api/v1/push", self._fake_push)
        app.router.add_get("/loki/api/v1/query_range", self._fake_query_range)
        app.router.add_get("/loki/api/v1/labels", self._fake_labels)
        app.router.add_get("/loki/api/v1/label/{name}/values", self._fake_label_values)
        app.router.add_get("/ready", self._fake_ready)
        return app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _fake_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        org = request.headers.get("X-Scope-OrgID")
        self.requests.append(FakeRequest(request.method, request.path, dict(request.query), org))
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="fake failure\n")
        if self.auth_enabled and not org and request.path != "/ready":
            return web.Response(status=401, text="no org id\n")
        request[FAKE_ORG_KEY] = org or FAKE_DEFAULT_ORG
        try:
            response: web.StreamResponse = await handler(request)
        except FakeLogQLError as e:
            return web.Response(status=400, text=f"{e}\n")
        return response

    async def _fake_ready(self, request: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    async def _fake_push(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            for s in body["streams"]:
                labels = s["stream"]
                if not isinstance(labels, dict) or not labels or not all(
                        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                    raise ValueError("stream labels must be a non-empty map of strings")
                values = [(int(v[0]), str(v[1])) for v in s["values"] if isinstance(v[0], str) and len(v) in (2, 3)]
                if len(values) != len(s["values"]):
                    raise ValueError("values must be [\"<ns>\", \"<line>\"] pairs")
                self.add(labels, values, request[FAKE_ORG_KEY])
        except (ValueError, KeyError, TypeError, IndexError) as e:
            return web.Response(status=400, text=f"loghttp push: {e}\n")
        return web.Response(status=204)

    @staticmethod
    def _fake_ns(request: web.Request, name: str, default: int) -> int:
        raw = request.query.get(name)
        if raw is None:
            return default
        if not re.fullmatch(r"\d+", raw):
            raise FakeLogQLError(f"invalid parameter {name}: the fake takes Unix nanosecond integers only")
        return int(raw)

    def _fake_window(self, request: web.Request) -> tuple[int, int]:
        end = self._fake_ns(request, "end", time.time_ns())
        return self._fake_ns(request, "start", end - 3600 * 10**9), end

    async def _fake_query_range(self, request: web.Request) -> web.Response:
        query = fake_parse_logql(request.query.get("query", ""))
        start, end = self._fake_window(request)
        limit_raw = request.query.get("limit", "100")
        if not limit_raw.isdigit() or int(limit_raw) <= 0:
            raise FakeLogQLError(f"invalid parameter limit: {limit_raw!r}")
        limit = int(limit_raw)
        if limit > self.max_entries:
            raise FakeLogQLError(f"max entries limit per query exceeded, limit > max_entries_limit ({limit} > "
                                 f"{self.max_entries})")
        direction = request.query.get("direction", "backward").lower()
        if direction not in ("forward", "backward"):
            raise FakeLogQLError(f"invalid parameter direction: {direction!r}")
        hits = [(ts, s.order, seq, line, s)
                for s in self._streams(request[FAKE_ORG_KEY], query)
                for ts, seq, line in s.entries
                if start <= ts < end and all(f.matches(line) for f in query.filters)]
        sign = 1 if direction == "forward" else -1
        hits.sort(key=lambda h: (sign * h[0], h[1], h[2]))
        chosen = hits[:limit]
        result: dict[str, dict[str, Any]] = {}
        for ts, order, _, line, s in chosen:
            result.setdefault(order, {"stream": s.labels, "values": []})["values"].append([str(ts), line])
        return web.json_response({"status": "success", "data": {
            "resultType": "streams", "result": list(result.values()), "stats": {}}})

    def _fake_in_window(self, request: web.Request) -> list[FakeStream]:
        start, end = self._fake_window(request)
        raw = request.query.get("query")
        query = fake_parse_logql(raw) if raw else None
        streams = self._streams(request[FAKE_ORG_KEY], query)
        return [s for s in streams if any(start <= ts < end for ts, _, _ in s.entries)]

    async def _fake_labels(self, request: web.Request) -> web.Response:
        names = sorted({n for s in self._fake_in_window(request) for n in s.labels})
        return web.json_response({"status": "success", "data": names})

    async def _fake_label_values(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        values = sorted({s.labels[name] for s in self._fake_in_window(request) if name in s.labels})
        return web.json_response({"status": "success", "data": values})


@asynccontextmanager
async def fake_loki_running(**options: Any) -> AsyncIterator[FakeLoki]:
    """A started FakeLoki on a free loopback port, stopped on exit."""
    fake = FakeLoki(**options)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def _fake_serve(port: int) -> None:
    fake = FakeLoki()
    await fake.start(port)
    print(fake.url, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def fake_main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Loki on 127.0.0.1 until killed.")
    parser.add_argument("--port", type=int, default=3100)
    asyncio.run(_fake_serve(parser.parse_args().port))


if __name__ == "__main__":
    fake_main()
