"""The log query builder and paging, pure:

- quoting: quotes, backslashes, newlines, control characters, regex metacharacters, unicode and a 1 MiB value
  all survive a round trip through a Go-style unquote (the fake Loki's), and a value cannot close the selector;
- regexes: valid RE2/Python patterns pass, invalid ones and RE2-incompatible constructs are refused by name;
- the level filter: what it matches in common log formats, and that it is valid in both dialects;
- cursors: encode/decode round trip, any single-character change refused (or harmless), garbage refused,
  cursors bound to their direction and filters;
- paging: next-cursor math at page edges with many lines at one timestamp, and `read_page` over a store that
  returns lines sharing a timestamp in a random order on every call, paged forward and backward at several
  limits, never losing or repeating a line;
- text: RFC 3339 nanosecond timestamps, secret masking, clipping on a character boundary.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence

import pytest

from tests.fakes.fake_loki import FakeLogQLError, _fake_read_string, fake_parse_logql
from workflows.domain.log_paging import (
    Cursor,
    CursorError,
    Direction,
    Fetch,
    LogLine,
    LogQuery,
    check_cursor,
    cursor_after,
    in_order,
    read_page,
)
from workflows.domain.logql import LogQLError, build_query, check_regex, level_regex, line_filter, quote, selector
from workflows.domain.masking import SecretMasker, clip_line
from workflows.domain.timestamps import format_rfc3339_ns, parse_rfc3339_ns

TRICKY = [
    "",
    'say "hi"',
    "back\\slash\\\\double",
    "line\nbreak\r\nand\ttab",
    "nul\x00 bell\x07 esc\x1b del\x7f",
    ".*+?()[]{}|^$\\d",
    "ünïcödé ✓ 日本語 😀 \u2028 \u00a0",
    '"} |= "x',
    '`raw` and \\"',
    "x" * (1 << 20),
]


def unquote(literal: str) -> str:
    value, end = _fake_read_string(literal, 0)
    assert end == len(literal)
    return value


@pytest.mark.parametrize("value", TRICKY)
def test_quote_round_trips_through_a_go_unquote(value: str) -> None:
    literal = quote(value)
    assert literal.startswith('"') and literal.endswith('"')
    assert "\n" not in literal and "\r" not in literal  # Go refuses a raw newline inside "..."
    assert unquote(literal) == value


def test_quote_escapes_exactly_what_go_needs() -> None:
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert quote("\x01\x7f") == '"\\x01\\x7f"'
    assert quote("日本 .*") == '"日本 .*"'  # unicode and metacharacters pass unchanged
    with pytest.raises(LogQLError, match="surrogate"):
        quote("bad \ud800 half")


@pytest.mark.parametrize("value", TRICKY[1:])
def test_no_value_escapes_its_place_in_the_query(value: str) -> None:
    q = build_query({"tenant": "acme", "app": value, "project": "shop"}, contains=value)
    parsed = fake_parse_logql(q)
    assert [(m.name, m.op, m.value) for m in parsed.matchers] == [
        ("tenant", "=", "acme"), ("project", "=", "shop"), ("app", "=", value)]
    assert [(f.op, f.value) for f in parsed.filters] == [("|=", value)]


def test_build_query_orders_labels_and_filters() -> None:
    q = build_query({"pod": "web-1", "app": "web", "tenant": "t", "project": "p", "zeta": "z"},
                    contains="GET /", regex=r"\d{3}", level="error")
    assert q.startswith('{tenant="t", project="p", app="web", pod="web-1", zeta="z"} |= "GET /" |~ "\\\\d{3}" |~ ')
    parsed = fake_parse_logql(q)
    assert [f.op for f in parsed.filters] == ["|=", "|~", "|~"]
    assert parsed.filters[1].value == r"\d{3}"
    with pytest.raises(LogQLError, match="at least one label"):
        selector({})
    with pytest.raises(LogQLError, match="not a label name"):
        selector({"bad-name": "x"})


@pytest.mark.parametrize("pattern", [
    r"\d+", "(?i)error", "[a-z]+", "foo|bar", "(?P<code>5\\d\\d)", "a{2,3}", "x}+", r"[\]]", "[]a]", "^GET /api$",
    "(?s:a.b)", "(?i:Err)or", r"\bwarn\b", "[(?=]",
])
def test_valid_regexes_pass(pattern: str) -> None:
    check_regex(pattern)
    assert fake_parse_logql(build_query({"app": "a"}, regex=pattern)).filters[0].value == pattern


@pytest.mark.parametrize(("pattern", "problem"), [
    ("(", "missing \\)"),
    ("[a-", "unterminated character set"),
    ("*x", "nothing to repeat"),
    ("(?=x)", "lookahead"),
    ("(?!x)", "negative lookahead"),
    ("(?<=x)a", "lookbehind"),
    ("(?<!x)a", "negative lookbehind"),
    (r"(a)\1", "backreference"),
    ("(?P<n>a)(?P=n)", "named backreference"),
    ("(?>a)", "atomic group"),
    ("a++", "possessive"),
    ("a{2}+", "possessive"),
    ("(?x) a b", "flag"),
    (r"end\Z", r"\\Z"),
    ("[[:alpha:]]", "POSIX class"),
    ("(?#note)a", "comment"),
    ("", "empty"),
])
def test_invalid_or_non_re2_regexes_are_refused_with_the_reason(pattern: str, problem: str) -> None:
    with pytest.raises(LogQLError, match=problem):
        check_regex(pattern)
    with pytest.raises(LogQLError):
        build_query({"app": "a"}, regex=pattern or "(")


ERROR_LINES = [
    "level=error msg=boom", '{"level":"error","msg":"x"}', '{"severity": "ERROR"}', "[ERROR] db down",
    "2024-05-01 12:00:00,123 ERROR app: failed", "ERROR:root:oops", "E0102 15:04:05.000000 1 x.go:1] bad",
    '{"level":50,"msg":"pino"}', "panic: runtime error", "lvl=err", '{"log.level":"error"}', "<error> x",
    "level=FATAL", "F0102 15:04:05.000000 1 x.go:1] fatal",
]
NOT_ERROR_LINES = [
    "level=info msg=ok", "no errors here", "an error occurred downstream", "[warn] slow", '{"level":30}',
    "I0102 15:04:05.000000 1 x.go:1] fine", "terror", "stderr_log=1", "GET /errors 200",
]


def test_level_filter_matches_common_formats() -> None:
    pattern = level_regex("error")
    check_regex(pattern)  # the same text is valid for RE2 and Python
    is_error = line_filter(level="error")
    assert [line for line in ERROR_LINES if not is_error(line)] == []
    assert [line for line in NOT_ERROR_LINES if is_error(line)] == []
    is_warn = line_filter(level="warn")
    assert is_warn("[warn] slow") and is_warn("level=warning") and is_warn("W0102 15:04:05.1 1 x] w")
    assert all(is_warn(line) for line in ERROR_LINES)  # warn means warn or more severe
    is_fatal = line_filter(level="fatal")
    assert is_fatal("panic: x") and not is_fatal("level=error")
    assert line_filter(level="debug")("level=debug") and not line_filter(level="debug")("plain text")


def test_line_filter_combines_all_filters() -> None:
    match = line_filter(contains="GET", regex=r" 5\d\d ", level="error")
    assert match("ERROR GET /x 503 ")
    assert not match("ERROR GET /x 200 ") and not match("INFO GET /x 503 ") and not match("ERROR PUT /x 503 ")
    assert line_filter()("anything")


def test_cursor_round_trip() -> None:
    for ts, skip, direction in [(0, 0, "forward"), (1_714_567_890_123_456_789, 4999, "backward"),
                                (2**63 - 1, 10**6, "forward")]:
        c = Cursor(ts_ns=ts, skip=skip, direction=direction, query="0123456789ab")
        token = c.encode()
        assert len(token) < 200 and token.isascii() and "=" not in token
        assert Cursor.decode(token) == c


def test_changed_cursors_are_refused() -> None:
    c = Cursor(ts_ns=1_714_567_890_123_456_789, skip=7, direction="backward", query="0123456789ab")
    token = c.encode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(len(token)):
        for ch in alphabet:
            if ch == token[i]:
                continue
            changed = token[:i] + ch + token[i + 1:]
            # A change in base64's unused trailing bits decodes to the same bytes; anything else is refused.
            with contextlib.suppress(CursorError):
                assert Cursor.decode(changed) == c
    for garbage in ["", "abc", "not a cursor!", "MTpmOjE6MjpxOmJhZA", token + "AAAA", token[:-3]]:
        with pytest.raises(CursorError, match="not a cursor"):
            Cursor.decode(garbage)


def test_cursors_are_bound_to_direction_and_filters() -> None:
    q = LogQuery(selector={"tenant": "t", "project": "p", "app": "a"}, since_ns=0, contains="x")
    mine = Cursor(ts_ns=5, skip=1, direction="backward", query=q.fingerprint())
    check_cursor(q, mine)
    with pytest.raises(CursorError, match="direction='forward'"):
        check_cursor(q, mine.model_copy(update={"direction": "forward"}))
    with pytest.raises(CursorError, match="different filters"):
        check_cursor(q.model_copy(update={"contains": "y"}), mine)
    # time range, limit and direction are not part of the fingerprint; the tenant is
    assert q.fingerprint() == q.model_copy(update={"since_ns": 9, "limit": 3, "until_ns": 99}).fingerprint()
    assert q.fingerprint() != q.model_copy(update={"selector": {**q.selector, "tenant": "u"}}).fingerprint()


def line(ts: int, text: str, pod: str = "p1") -> LogLine:
    return LogLine(ts_ns=ts, line=text, labels={"pod": pod})


def test_cursor_after_counts_lines_at_the_last_timestamp() -> None:
    start = Cursor(ts_ns=100, skip=3, direction="forward", query="q")
    assert cursor_after(start, []) == start
    same = [line(100, f"l{i}") for i in range(5)]
    assert cursor_after(start, same) == start.model_copy(update={"skip": 8})  # continues inside the same ts
    mixed = [line(100, "a"), line(101, "b"), line(105, "c"), line(105, "d")]
    assert cursor_after(start, mixed) == start.model_copy(update={"ts_ns": 105, "skip": 2})
    back = Cursor(ts_ns=200, skip=0, direction="backward", query="q")
    assert cursor_after(back, [line(200, "x"), line(150, "y")]).model_dump() == {
        "ts_ns": 150, "skip": 1, "direction": "backward", "query": "q"}


def dataset() -> list[LogLine]:
    """1,500 lines: 700 in one nanosecond across three pods, runs of equal timestamps, and lone lines."""
    lines = [line(1_000, f"burst {i}", pod=f"p{i % 3}") for i in range(700)]
    lines += [line(2_000 + (i // 5), f"run {i}", pod=f"p{i % 2}") for i in range(500)]
    lines += [line(10_000 + 7 * i, f"lone {i}") for i in range(300)]
    return lines


def shuffling_fetch(lines: Sequence[LogLine], seed: int) -> Fetch:
    """A store that, like Loki, cuts at `limit` in time order but orders equal timestamps as it pleases."""
    rng = random.Random(seed)  # noqa: S311  (a shuffle, not a secret)

    async def fetch(start: int, end: int, limit: int, direction: Direction) -> list[LogLine]:
        chosen = [x for x in lines if start <= x.ts_ns < end]
        rng.shuffle(chosen)
        chosen.sort(key=lambda x: x.ts_ns, reverse=direction == "backward")
        return chosen[:limit]

    return fetch


async def page_all(q: LogQuery, lines: Sequence[LogLine], seed: int) -> tuple[list[LogLine], int]:
    fetch, pages = shuffling_fetch(lines, seed), 0
    got: list[LogLine] = []
    while True:
        page = await read_page(q, fetch, now_ns=1_000_000, source="test")
        got.extend(page.lines)
        pages += 1
        assert len(page.lines) <= q.limit
        if page.next_cursor is None:
            return got, pages
        assert page.lines, "a page with a next cursor returns lines"
        q = q.model_copy(update={"cursor": page.next_cursor})


@pytest.mark.parametrize("limit", [1, 7, 200, 699, 701, 1000])
@pytest.mark.parametrize("direction", ["forward", "backward"])
async def test_paging_never_loses_or_repeats_lines(limit: int, direction: Direction) -> None:
    lines = dataset()
    q = LogQuery(selector={"app": "a"}, since_ns=0, until_ns=1_000_000, direction=direction, limit=limit)
    got, pages = await page_all(q, lines, seed=limit)
    assert got == in_order(lines, direction)
    assert pages <= -(-len(lines) // limit) + 1


async def test_paging_respects_the_time_range() -> None:
    lines = dataset()
    q = LogQuery(selector={"app": "a"}, since_ns=1_000, until_ns=2_050, direction="backward", limit=33)
    got, _ = await page_all(q, lines, seed=1)
    assert got == in_order([x for x in lines if 1_000 <= x.ts_ns < 2_050], "backward")
    q = q.model_copy(update={"since_ns": 1_001, "until_ns": 2_000})
    assert (await page_all(q, lines, seed=2))[0] == []


def test_rfc3339_nanoseconds() -> None:
    ns = 1_714_567_890_123_456_789
    assert format_rfc3339_ns(ns) == "2024-05-01T12:51:30.123456789Z"
    assert parse_rfc3339_ns(format_rfc3339_ns(ns)) == ns
    assert parse_rfc3339_ns("2024-05-01T12:51:30.1Z") == 1_714_567_890_100_000_000  # kubelet trims zeros
    assert parse_rfc3339_ns("2024-05-01T12:51:30Z") == 1_714_567_890_000_000_000
    assert parse_rfc3339_ns("2024-05-01T14:51:30+02:00") == 1_714_567_890_000_000_000
    assert parse_rfc3339_ns("2024-05-01T12:51:30", naive_is_utc=True) == 1_714_567_890_000_000_000
    assert format_rfc3339_ns(0) == "1970-01-01T00:00:00.000000000Z"
    for bad in ["2024-05-01", "2024-13-01T00:00:00Z", "yesterday", "2024-05-01T12:51:30.1234567890Z"]:
        with pytest.raises(ValueError, match=r"RFC 3339|valid date"):
            parse_rfc3339_ns(bad)
    with pytest.raises(ValueError, match="no time zone"):
        parse_rfc3339_ns("2024-05-01T12:51:30")


def test_secret_masking() -> None:
    masker = SecretMasker({"DB_PASSWORD": "hunter2hunter2", "TOKEN": "hunter2", "PIN": "123",
                           "QUOTED": 'a"b\\c', "PEM": "-----BEGIN KEY-----\nMIIabcdef\n-----END KEY-----"})
    assert masker.mask("pw=hunter2hunter2 tok=hunter2") == "pw=[secret:DB_PASSWORD] tok=[secret:TOKEN]"
    assert masker.mask("pin 123 stays") == "pin 123 stays"  # shorter than 4 characters: not masked
    assert masker.mask('{"v":"a\\"b\\\\c"}') == '{"v":"[secret:QUOTED]"}'  # the JSON-escaped form
    assert masker.mask("key line MIIabcdef") == "key line [secret:PEM]"
    assert not SecretMasker({}) and SecretMasker({}).mask("x") == "x"


def test_clip_line_cuts_on_a_character_boundary_with_a_marker() -> None:
    assert clip_line("short", 10) == ("short", 0)
    text, dropped = clip_line("ab😀cd", 4)  # the emoji is 4 bytes and would straddle the cut
    assert text == "ab…[truncated 6 bytes]" and dropped == 6
    text, dropped = clip_line("x" * 10_000, 4096)
    assert text == "x" * 4096 + "…[truncated 5904 bytes]" and dropped == 5904


def test_fake_parser_refuses_what_loki_refuses() -> None:
    for bad in ['{app=~".*"}', "{}", 'app="x"', '{app="x"} | json', '{app="x"} |~ "("', '{app="x}']:
        with pytest.raises(FakeLogQLError):
            fake_parse_logql(bad)
