"""Keeping secrets out of text the platform shows: `SecretMasker` replaces an app's secret values in build and
runtime log lines and error details, and `clip_line` cuts an over-long line on a character boundary.

Pure, shared by the activities (build logs, failure details) and the log tools."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping


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
        ordered = sorted(names, key=len, reverse=True)
        self._forms = tuple(ordered)
        self._replacement = {form: f"[secret:{name}]" for form, name in names.items()}
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    # Up to this many forms, `form in text` for each (a C substring search) rules a line out faster than the
    # alternation regex scans it; most lines hold no secret, so most lines are never scanned by the regex.
    PREFILTER_FORMS = 8

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        if len(self._forms) <= self.PREFILTER_FORMS:
            for form in self._forms:
                if form in text:
                    break
            else:
                return text  # no form occurs, so the regex (an alternation of exactly these forms) cannot match
        replacement = self._replacement
        return self._pattern.sub(lambda m: replacement[m.group(0)], text)


def utf8_size(text: str) -> int:
    # isascii() is a flag check on CPython's str, so most log lines are sized without encoding them.
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def clip_line(text: str, max_bytes: int) -> tuple[str, int]:
    """(text cut to at most `max_bytes` UTF-8 bytes + `…[truncated N bytes]`, N); N is 0 when it fits.

    The cut falls on a character boundary. Mask before clipping: a secret straddling the cut would otherwise
    leave its first bytes in the line."""
    if len(text) <= max_bytes and text.isascii():
        return text, 0
    raw = text.encode("utf-8", "replace")
    if len(raw) <= max_bytes:
        return text, 0
    kept = raw[:max_bytes].decode("utf-8", "ignore")
    dropped = len(raw) - len(kept.encode("utf-8"))
    return f"{kept}…[truncated {dropped} bytes]", dropped
