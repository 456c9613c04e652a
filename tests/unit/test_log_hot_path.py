"""The per-line work of a log read, made cheaper (issue 20) and checked against the plain versions it replaced:

- masking: the substring prefilter never changes what the alternation regex masks, with up to 8 forms (the
  prefilter) and more (the regex alone), for secrets overlapping each other, containing each other, repeated,
  and at line boundaries; and no secret value is left in a masked text;
- timestamps: the per-second cache formats exactly as the datetime arithmetic does;
- order: `in_order` (labels key computed once per labels dict) sorts exactly as `sort_key`;
- `shape`: pod and stream come from each line's own labels, caps and the budget stay exact.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tools.logs import MAX_LINE_BYTES, Budget, shape
from workflows.domain.log_paging import LogLine, in_order, sort_key
from workflows.domain.logql import line_filter
from workflows.domain.masking import SecretMasker
from workflows.domain.timestamps import NS, format_rfc3339_ns

# No character of "[secret:N0]" is in this alphabet, so a secret found in masked text can only be a leftover.
ALPHABET = "abxy"
secret_values = st.text(alphabet=ALPHABET, min_size=SecretMasker.MIN_LENGTH, max_size=8)


def reference_mask(secrets: dict[str, str], text: str) -> str:
    """The masker before the prefilter: one alternation, longest value first."""
    names = {v: k for k, v in sorted(secrets.items(), reverse=True)}  # the first name in sorted order wins
    pattern = re.compile("|".join(re.escape(v) for v in sorted(names, key=len, reverse=True)))
    return pattern.sub(lambda m: f"[secret:{names[m.group(0)]}]", text)


@st.composite
def secrets_and_text(draw: st.DrawFn) -> tuple[dict[str, str], str]:
    values = draw(st.lists(secret_values, min_size=1, max_size=12))
    secrets = {f"N{i}": v for i, v in enumerate(values)}
    # Text made of secrets (whole, cut, glued to each other), filler and line breaks.
    parts = st.one_of(st.sampled_from(values), st.sampled_from(values).map(lambda v: v[1:]),
                      st.sampled_from(values).map(lambda v: v[:-1]), st.text(alphabet=ALPHABET + " =\n", max_size=6))
    return secrets, "".join(draw(st.lists(parts, max_size=12)))


@settings(max_examples=400, deadline=None)
@given(secrets_and_text())
def test_masking_matches_the_plain_regex_and_leaves_no_secret(case: tuple[dict[str, str], str]) -> None:
    secrets, text = case
    masker = SecretMasker(secrets)
    masked = masker.mask(text)
    assert masked == reference_mask(secrets, text)
    for value in secrets.values():
        assert value not in masked
    for row in text.split("\n"):  # line by line, as the log tools mask
        out = masker.mask(row)
        assert out == reference_mask(secrets, row)
        assert not any(v in out for v in secrets.values())


def test_masking_with_more_forms_than_the_prefilter_takes() -> None:
    secrets = {f"K{i:02d}": f"value-{i:02d}-xyz" for i in range(SecretMasker.PREFILTER_FORMS + 3)}
    masker = SecretMasker(secrets)
    assert masker.mask("a value-10-xyz and value-00-xyzvalue-01-xyz") == "a [secret:K10] and [secret:K00][secret:K01]"
    assert masker.mask("nothing here") == "nothing here"


def test_a_line_without_any_secret_is_returned_as_is() -> None:
    masker = SecretMasker({"TOKEN": "hunter2"})
    line = "GET /items/1 200"
    assert masker.mask(line) is line


def reference_format(ns: int) -> str:
    seconds, frac = divmod(ns, NS)
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_cached_timestamp_formatting_matches_datetime(ns: int) -> None:
    assert format_rfc3339_ns(ns) == reference_format(ns)
    assert format_rfc3339_ns(ns) == reference_format(ns)  # again, from the cache


@st.composite
def lines_sharing_labels(draw: st.DrawFn) -> list[LogLine]:
    # Streams share one labels dict per stream, as stores build them; two streams may have equal labels.
    streams = [{"pod": pod, "stream": "runtime"} for pod in draw(st.lists(st.sampled_from("abc"), min_size=1,
                                                                           max_size=4))]
    rows = draw(st.lists(st.tuples(st.integers(0, len(streams) - 1), st.integers(0, 3), st.sampled_from("xyz")),
                         max_size=40))
    return [LogLine(ts, text, streams[i]) for i, ts, text in rows]


@given(lines_sharing_labels(), st.sampled_from(["forward", "backward"]))
def test_in_order_sorts_as_sort_key(lines: list[LogLine], direction: str) -> None:
    expected = sorted(lines, key=sort_key, reverse=direction == "backward")
    assert [sort_key(x) for x in in_order(lines, "forward" if direction == "forward" else "backward")] == [
        sort_key(x) for x in expected]


def test_shape_takes_pod_and_stream_from_each_lines_labels_and_keeps_the_budget_exact() -> None:
    a, b = {"pod": "web-a", "stream": "runtime"}, {"pod": "web-b"}
    lines = [LogLine(1, "one", a), LogLine(2, "two", b), LogLine(3, "x" * (MAX_LINE_BYTES + 10), a),
             LogLine(4, "four", b)]
    budget = Budget(lines=10, bytes=10_000)
    views, consumed, stopped, long_lines, used = shape(lines, SecretMasker({}), line_filter(), budget)
    assert [(v.pod, v.stream) for v in views] == [("web-a", "runtime"), ("web-b", "runtime"),
                                                  ("web-a", "runtime"), ("web-b", "runtime")]
    assert consumed == 4 and stopped is None and long_lines == 1
    assert used == sum(len(v.ts) + len(v.pod or "") + len(v.stream) + len(v.line.encode()) for v in views)
    assert budget.lines == 6 and budget.bytes == 10_000 - used

    # The byte cap stops before the line that would overflow it; the budget keeps what is left.
    first = len(views[0].ts) + len("web-a") + len("runtime") + len("one")
    budget = Budget(lines=10, bytes=first + 5)
    views, consumed, stopped, _, used = shape(lines, SecretMasker({}), line_filter(), budget)
    assert [v.line for v in views] == ["one"] and consumed == 1 and stopped == "bytes"
    assert budget.lines == 9 and budget.bytes == 5 and used == first

    # A line that matched only through a secret is consumed but not returned, and costs no budget.
    budget = Budget(lines=1, bytes=10_000)
    secret_lines = [LogLine(1, "token=sk_live_abcd", a), LogLine(2, "token=none", a)]
    views, consumed, stopped, _, _ = shape(secret_lines[:1], SecretMasker({"T": "sk_live_abcd"}),
                                           line_filter(contains="sk_live"), budget)
    assert views == [] and consumed == 1 and stopped is None and budget.lines == 1
    views, consumed, stopped, _, _ = shape(secret_lines, SecretMasker({"T": "sk_live_abcd"}),
                                           line_filter(contains="token"), Budget(lines=1, bytes=10_000))
    assert [v.line for v in views] == ["token=[secret:T]"] and consumed == 1 and stopped == "lines"
