"""Text work on log lines: RFC 3339 timestamps with nanoseconds, masking secret values, clipping long lines.

Pure, and here rather than in the tools because the build log writer (a workflow activity) must mask secrets
before it pushes lines, exactly as the tools mask what they return.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

NS = 1_000_000_000

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?$"
)


def parse_rfc3339_ns(text: str, *, naive_is_utc: bool = False) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp (the kubelet's RFC3339Nano trims trailing zeros).
    ValueError when it is not one; without a zone only when `naive_is_utc`."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp like 2024-05-01T12:00:00Z")
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = m.groups()
    if not zulu and not sign and not naive_is_utc:
        raise ValueError(f"{text!r} has no time zone; add Z (UTC) or an offset like +02:00")
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as e:
        raise ValueError(f"{text!r} is not a valid date and time ({e})") from None
    seconds = int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    if sign:
        offset = int(off_h) * 3600 + int(off_m) * 60
        seconds -= offset if sign == "+" else -offset
    return seconds * NS + int((frac or "0").ljust(9, "0"))


def format_rfc3339_ns(ns: int) -> str:
    """`2024-05-01T12:00:00.123456789Z`: always nine fraction digits, so timestamps sort as strings."""
    seconds, frac = divmod(ns, NS)
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


class SecretMasker:
    """Replaces secret values in text with `[secret:NAME]`.

    Longer values are tried first, so a value containing another is masked whole. Values shorter than
    MIN_LENGTH are left alone: masking "1" or "yes" would garble every line and hide nothing. Each line of a
    multi-line value (a PEM key) and the JSON-escaped form of a value are masked too, since logs print those.
    """

    MIN_LENGTH = 4

    def __init__(self, secrets: Mapping[str, str]) -> None:
        names: dict[str, str] = {}
        for name in sorted(secrets):
            value = secrets[name]
            forms = [value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]
            if "\n" in value:
                forms += [part.strip() for part in value.splitlines()]
            for form in forms:
                if len(form) >= self.MIN_LENGTH:
                    names.setdefault(form, name)
        self._names = names
        ordered = sorted(names, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: f"[secret:{self._names[m.group(0)]}]", text)


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


def clip_line(text: str, max_bytes: int) -> tuple[str, int]:
    """(text cut to at most `max_bytes` UTF-8 bytes + `…[truncated N bytes]`, N); N is 0 when it fits.

    The cut falls on a character boundary. Mask before clipping: a secret straddling the cut would otherwise
    leave its first bytes in the line."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return text, 0
    kept = raw[:max_bytes].decode("utf-8", "ignore")
    dropped = len(raw) - len(kept.encode("utf-8"))
    return f"{kept}…[truncated {dropped} bytes]", dropped
