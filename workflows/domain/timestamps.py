"""Text work on log lines: RFC 3339 timestamps with nanoseconds, masking secret values, clipping long lines.

Pure, and here rather than in the tools because the build log writer (a workflow activity) must mask secrets
before it pushes lines, exactly as the tools mask what they return.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

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
    return f"{_utc_second(seconds)}.{frac:09d}Z"


@lru_cache(maxsize=1024)
def _utc_second(seconds: int) -> str:
    # Cached: a page's lines mostly share a few seconds, and the datetime arithmetic and strftime were the
    # costliest part of shaping a line.
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return f"{dt:%Y-%m-%dT%H:%M:%S}"
