"""Logs as the tools see them, whichever store holds them: the query, line and page models, the opaque cursor,
and the paging that never loses or repeats a line. Pure: no I/O imports.

Order. Lines are ordered by (timestamp, stream labels, text); `backward` is exactly the reverse of `forward`.
Loki orders lines that share a nanosecond by an internal stream hash, and its response groups lines by stream,
so its order inside one timestamp cannot be reproduced; this order can, by every store, on every call.

Position. A cursor is (timestamp, lines already returned at that exact timestamp, direction, query
fingerprint). The next page asks the store for lines from that timestamp on and skips that many lines at it.

Exactness. Skipping N lines at a timestamp is exact only if all lines at that timestamp were read, so
`read_page` never trusts the last timestamp of a response that hit its limit (the store may have cut it
anywhere): it drops that timestamp's lines and reads them again from the next request; when one timestamp
alone fills a response, it reads that timestamp on its own (up to MAX_FETCH lines, Loki's default
`max_entries_limit_per_query`; beyond that many lines in one nanosecond, order inside it is the store's).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.domain.adapter_errors import InvalidRequest, ServiceUnavailable
from workflows.domain.logql import Level

Direction = Literal["forward", "backward"]

MAX_FETCH = 5000
"""Most lines asked of a store in one request (Loki refuses more by default)."""


class LogStoreUnavailable(ServiceUnavailable):
    """The log store cannot be reached or failed (connection, timeout, 5xx); retrying later may work."""


class LogQueryError(InvalidRequest):
    """The log store refused the query (Loki: HTTP 400); the message is the store's."""


class CursorError(ValueError):
    """A cursor that is not one this platform returned, or one made for a different query."""


class Cursor(BaseModel):
    """Where a page ended: after the first `skip` lines at `ts_ns` (in `direction` order) of query `query`."""

    model_config = ConfigDict(frozen=True)

    ts_ns: int = Field(ge=0)
    skip: int = Field(ge=0)
    direction: Direction
    query: str = Field(description="Fingerprint of the filters the cursor was made for.")

    def encode(self) -> str:
        payload = f"1:{self.direction[0]}:{self.ts_ns}:{self.skip}:{self.query}"
        token = f"{payload}:{_check(payload)}".encode()
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor `encode` made; CursorError for anything else, including a token changed in transit.

        The check digest is not a secret: it catches mangled tokens, not forgers. Forging gains nothing, since
        a cursor holds only a position inside the caller's own query; tenancy is in the query's labels.
        """
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True).decode()
            version, direction, ts, skip, query, check = raw.split(":")
            payload = raw.rsplit(":", 1)[0]
            if version != "1" or direction not in ("f", "b") or check != _check(payload):
                raise ValueError("not a cursor")
            return cls(ts_ns=int(ts), skip=int(skip), direction="forward" if direction == "f" else "backward",
                       query=query)
        except (ValueError, binascii.Error, UnicodeDecodeError) as e:
            raise CursorError("is not a cursor this tool returned (or it was changed)") from e


def _check(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


class LogQuery(BaseModel):
    """One page request. `selector` holds exact-match stream labels; the tools always put tenant, project and
    app in it from the store's record of the app."""

    model_config = ConfigDict(frozen=True)

    selector: dict[str, str]
    contains: str | None = None
    regex: str | None = None
    level: Level | None = None
    since_ns: int = Field(ge=0, description="Inclusive.")
    until_ns: int | None = Field(None, description="Exclusive; None: the store's now when it runs the query.")
    direction: Direction = "backward"
    limit: int = Field(200, ge=1, le=MAX_FETCH)
    cursor: Cursor | None = None

    def fingerprint(self) -> str:
        """What a cursor must have been made for: the filters, not the time range, limit or direction."""
        key = json.dumps([sorted(self.selector.items()), self.contains, self.regex, self.level])
        return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line as a store returned it. A plain dataclass, not a pydantic model: a store builds thousands per
    call from values it has just parsed, and validating or `model_construct`ing each was most of a page's cost.
    Lines of one stream share one `labels` dict."""

    ts_ns: int
    line: str
    labels: dict[str, str]  # stream labels: pod, container, stream, deployment_id, ...


@dataclass(frozen=True, slots=True)
class LogPage:
    lines: list[LogLine]
    start: Cursor  # the position the page starts after; `cursor_after(start, prefix)` continues after any prefix
    next_cursor: Cursor | None  # after the last line; None when no more lines match now
    source: str


def sort_key(line: LogLine) -> tuple[int, tuple[tuple[str, str], ...], str]:
    return line.ts_ns, tuple(sorted(line.labels.items())), line.line


def in_order(lines: Sequence[LogLine], direction: Direction) -> list[LogLine]:
    """`lines` sorted by `sort_key` (reversed for backward). The labels part of the key is computed once per
    labels dict, not once per line: lines of one stream share theirs."""
    by_labels: dict[int, tuple[tuple[str, str], ...]] = {}

    def key(line: LogLine) -> tuple[int, tuple[tuple[str, str], ...], str]:
        labels = by_labels.get(id(line.labels))
        if labels is None:
            # id() is stable here: every labels dict stays referenced by `lines` until the sort is done.
            labels = by_labels[id(line.labels)] = tuple(sorted(line.labels.items()))
        return line.ts_ns, labels, line.line

    return sorted(lines, key=key, reverse=direction == "backward")


def check_cursor(q: LogQuery, cursor: Cursor) -> None:
    if cursor.direction != q.direction:
        raise CursorError(f"was made for direction={cursor.direction!r}; pass that direction with it, or drop "
                          "the cursor to start over")
    if cursor.query != q.fingerprint():
        raise CursorError("was made for different filters; pass the same project, app, deployment_id, pod, "
                          "contains, regex and level as the call that returned it, or drop the cursor")


def start_position(q: LogQuery, now_ns: int) -> Cursor:
    """The cursor the page starts after: the query's own, else just before the first line of the range."""
    if q.cursor is not None:
        check_cursor(q, q.cursor)
        return q.cursor
    until = q.until_ns if q.until_ns is not None else now_ns
    ts = q.since_ns if q.direction == "forward" else until - 1
    return Cursor(ts_ns=max(ts, 0), skip=0, direction=q.direction, query=q.fingerprint())


def bounds(q: LogQuery, pos: Cursor, now_ns: int) -> tuple[int, int]:
    """[start, end) in nanoseconds holding every line after `pos` (and the ones to skip at pos.ts_ns)."""
    until = q.until_ns if q.until_ns is not None else now_ns
    if q.direction == "forward":
        return max(q.since_ns, pos.ts_ns), until
    return q.since_ns, min(until, pos.ts_ns + 1)


def cursor_after(start: Cursor, lines: Sequence[LogLine]) -> Cursor:
    """The cursor after `lines`, a page (or its prefix) that continued from `start`, in start's direction."""
    if not lines:
        return start
    last = lines[-1].ts_ns
    at_last = 0
    for line in reversed(lines):
        if line.ts_ns != last:
            break
        at_last += 1
    if last == start.ts_ns:
        at_last += start.skip
    return start.model_copy(update={"ts_ns": last, "skip": at_last})


Fetch = Callable[[int, int, int, Direction], Awaitable[Sequence[LogLine]]]
"""(start_ns, end_ns exclusive, limit, direction) -> the first `limit` matching lines in that direction."""


async def read_page(q: LogQuery, fetch: Fetch, *, now_ns: int, source: str) -> LogPage:
    """Up to `q.limit` lines after the query's position, and the cursor after them (None when none are left)."""
    start = start_position(q, now_ns)
    pos, more = start, False
    out: list[LogLine] = []
    forward = q.direction == "forward"
    while True:
        need = q.limit - len(out)
        lo, hi = bounds(q, pos, now_ns)
        if lo >= hi:
            break
        asked = min(pos.skip + need + 1, MAX_FETCH)  # +1: whether more lines follow
        got = in_order(await fetch(lo, hi, asked, q.direction), q.direction)
        saturated = len(got) >= asked
        if saturated:
            edge = got[-1].ts_ns
            if got[0].ts_ns == edge:
                # One timestamp filled the response: read all of it so that skipping inside it is exact.
                got = in_order(await fetch(edge, edge + 1, MAX_FETCH, q.direction), q.direction)
            else:
                got = [line for line in got if line.ts_ns != edge]  # possibly cut; read again next round
        skip = 0
        while skip < pos.skip and skip < len(got) and got[skip].ts_ns == pos.ts_ns:
            skip += 1
        fresh = got[skip:]
        out.extend(fresh[:need])
        if len(out) >= q.limit:
            more = len(fresh) > need or saturated
            break
        if not saturated or not got:
            break
        # Every line of `got` is now returned or skipped, and its last timestamp was complete: go past it.
        last = got[-1].ts_ns
        pos = pos.model_copy(update={"ts_ns": last + 1 if forward else last - 1, "skip": 0})
        if pos.ts_ns < 0:
            break
    return LogPage(lines=out, start=start, next_cursor=cursor_after(start, out) if more else None, source=source)
