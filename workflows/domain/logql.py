r"""LogQL text from structured filters, and the same filters as a Python predicate.

Agents never write LogQL: the tools turn their arguments into a query here, so every value goes through one
quoting function and the tenant matchers cannot be escaped out of. Strings are LogQL double-quoted strings,
which Loki reads with Go's `strconv.Unquote`: backslash, double quote and control characters are escaped,
everything else is passed through as UTF-8.

Regular expressions: Loki uses Go's RE2. A pattern is accepted only if Python's `re` compiles it and it uses
none of the constructs where the two dialects part (lookaround, backreferences, atomic groups, possessive
quantifiers, conditionals, `\Z`, comments, flags other than i/m/s, POSIX classes), so the Loki store, the
Kubernetes store and the tool's re-check all agree on what matches.

The level filter is a line filter (`|~`) over the markers apps actually print, not `| json | level=...` or
`| logfmt | level=...`: a parser stage only works for lines in that one format (others get `__error__` and
are dropped or fail the query), each format names the key differently (level, lvl, severity, log.level,
levelname), pino writes numbers, and plain-text loggers write `ERROR` or `[warn]`. A line filter needs no
parsing, runs before any other stage, and the same regex runs unchanged in Python for the stores that have no
LogQL. `level` means that level or more severe; a line with no recognisable marker never matches.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Literal

Level = Literal["debug", "info", "warn", "error", "fatal"]
LEVELS: tuple[Level, ...] = ("debug", "info", "warn", "error", "fatal")

LABEL_NAMES = ("tenant", "project", "app", "deployment_id", "commit_sha", "stream", "pod", "container")
"""The labels log streams carry (set by the Alloy pipeline in manifests/logging and the build log writer)."""

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class LogQLError(ValueError):
    """A filter cannot be turned into a query; the message says what is wrong and how to fix it."""


def quote(value: str) -> str:
    """`value` as a LogQL double-quoted string literal."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            # A lone surrogate has no UTF-8 form; Loki would see a different string than the caller meant.
            raise LogQLError(f"contains the unpaired surrogate U+{code:04X}, which is not text; remove it")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_UNSUPPORTED_GROUPS = (
    ("=", "lookahead `(?=`"), ("!", "negative lookahead `(?!`"), ("<=", "lookbehind `(?<=`"),
    ("<!", "negative lookbehind `(?<!`"), (">", "atomic group `(?>`"), ("(", "conditional `(?(`"),
    ("P=", "named backreference `(?P=`"), ("#", "comment `(?#`"),
)
_FLAGS = re.compile(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?[:)]")
_QUANTIFIER_END = re.compile(r"\{\d+(?:,\d*)?\}$")


def _re2_problem(pattern: str) -> str | None:
    """What in `pattern` RE2 (Loki) would reject or read differently from Python, if anything."""
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1:i + 2]
            if nxt in tuple("123456789"):
                return f"the backreference `\\{nxt}` at position {i} is not supported by RE2"
            if nxt == "Z":
                return f"`\\Z` at position {i} is not RE2 syntax; use `$`"
            i += 2
            continue
        if in_class:
            if c == "[" and pattern[i + 1:i + 2] == ":":
                return f"the POSIX class at position {i} reads differently in RE2 and Python; spell the set out"
            in_class = c != "]"
            i += 1
            continue
        if c == "[":
            i += 1
            if pattern[i:i + 1] == "^":
                i += 1
            if pattern[i:i + 1] == "]":  # a leading ] is a literal, not the end of the class
                i += 1
            in_class = True
            continue
        if c == "(" and pattern[i + 1:i + 2] == "?":
            rest = pattern[i + 2:]
            for prefix, what in _UNSUPPORTED_GROUPS:
                if rest.startswith(prefix):
                    return f"the {what} at position {i} is not supported by RE2"
            m = _FLAGS.match(rest)
            if m and not rest.startswith("P"):
                bad = sorted(set((m.group(1) or "") + (m.group(2) or "")) - set("ims"))
                if bad:
                    return f"the flag(s) {''.join(bad)!r} at position {i} are not shared by RE2; use only i, m, s"
        if c in "*+?" and pattern[i + 1:i + 2] == "+":
            return f"the possessive quantifier `{c}+` at position {i} is not supported by RE2"
        if c == "}" and pattern[i + 1:i + 2] == "+" and _QUANTIFIER_END.search(pattern[:i + 1]):
            return f"the possessive quantifier `}}+` at position {i} is not supported by RE2"
        i += 1
    return None


def check_regex(pattern: str) -> None:
    """Raise LogQLError unless `pattern` means the same in Python's `re` and in RE2 (what Loki runs)."""
    if not pattern:
        raise LogQLError("is empty; pass a pattern or leave the field out")
    quote(pattern)  # refuses unpaired surrogates
    problem = _re2_problem(pattern)
    if problem:
        raise LogQLError(problem)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Python warns about syntax it will read differently one day
        try:
            re.compile(pattern)
        except re.error as e:
            where = f" at position {e.pos}" if e.pos is not None else ""
            raise LogQLError(f"is not a valid regular expression: {e.msg}{where}") from None
        except (FutureWarning, DeprecationWarning) as e:
            raise LogQLError(f"is ambiguous ({e}); escape the character or spell the set out") from None


_LEVEL_WORDS: dict[Level, tuple[str, ...]] = {
    "debug": ("debug", "trace", "dbg"),
    "info": ("info", "notice"),
    "warn": ("warning", "warn"),
    "error": ("error", "err"),
    "fatal": ("fatal", "panic", "critical", "crit", "emergency", "emerg", "alert"),
}
_PINO: dict[Level, tuple[str, ...]] = {"debug": ("10", "20"), "info": ("30",), "warn": ("40",), "error": ("50",),
                                       "fatal": ("60",)}
_KLOG: dict[Level, str] = {"debug": "", "info": "I", "warn": "W", "error": "E", "fatal": "F"}
_LEVEL_KEYS = r"(?:level|lvl|severity|loglevel|log_level|log\.level|levelname)"


def level_regex(level: Level) -> str:
    """A regex (valid in RE2 and Python) matching lines marked `level` or more severe."""
    chosen = LEVELS[LEVELS.index(level):]
    words = "|".join(w for lv in chosen for w in _LEVEL_WORDS[lv])
    numbers = "|".join(n for lv in chosen for n in _PINO[lv])
    upper = "|".join(w.upper() for lv in chosen for w in _LEVEL_WORDS[lv])
    klog = "".join(_KLOG[lv] for lv in chosen)
    parts = [
        rf'(?i:\b{_LEVEL_KEYS}"?\s*[=:]\s*"?(?:{words}|{numbers})\b)',  # level=error, "level":"warn", "level":50
        rf"(?i:[\[<(](?:{words})[\]>)])",  # [ERROR], <warn>, (error)
        rf"(?i:^(?:{words}):)",  # "panic: ...", "error: ..."
        rf"\b(?:{upper})\b",  # "2024-01-02 03:04:05 ERROR ...", Python's "ERROR:root:..."
    ]
    if klog:
        parts.append(rf"^[{klog}]\d{{4}} ")  # klog/glog: "E0102 15:04:05.000000 ..."
    return "|".join(parts)


def selector(labels: Mapping[str, str]) -> str:
    """`{name="value", ...}` with every value quoted; names in LABEL_NAMES order, then alphabetical."""
    if not labels:
        raise LogQLError("a stream selector needs at least one label (Loki refuses `{}`)")
    for name in labels:
        if not _LABEL_NAME.match(name):
            raise LogQLError(f"{name!r} is not a label name; use letters, digits and '_'")
    rank = {n: i for i, n in enumerate(LABEL_NAMES)}
    names = sorted(labels, key=lambda n: (rank.get(n, len(rank)), n))
    return "{" + ", ".join(f"{n}={quote(labels[n])}" for n in names) + "}"


def build_query(labels: Mapping[str, str], *, contains: str | None = None, regex: str | None = None,
                level: Level | None = None) -> str:
    """A LogQL log query: the stream selector, then line filters (contains, regex, level) in that order."""
    parts = [selector(labels)]
    if contains:
        parts.append(f"|= {quote(contains)}")
    if regex:
        check_regex(regex)
        parts.append(f"|~ {quote(regex)}")
    if level:
        parts.append(f"|~ {quote(level_regex(level))}")
    return " ".join(parts)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    # ASCII: RE2's \w, \d, \s and \b are ASCII-only, Python's are Unicode by default.
    return re.compile(pattern, re.ASCII)


def _searcher(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda line: pattern.search(line) is not None


def line_filter(*, contains: str | None = None, regex: str | None = None, level: Level | None = None
                ) -> Callable[[str], bool]:
    """The line filters of `build_query` as a predicate, for stores without LogQL and for re-checking lines."""
    checks: list[Callable[[str], bool]] = []
    if contains:
        needle = contains
        checks.append(lambda line: needle in line)
    if regex:
        check_regex(regex)
        checks.append(_searcher(_compiled(regex)))
    if level:
        checks.append(_searcher(_compiled(level_regex(level))))
    if not checks:
        return lambda line: True
    return lambda line: all(check(line) for check in checks)
