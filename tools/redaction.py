"""Secret values never reach an audit row: arguments are redacted before they are written; and whatever the
arguments, the row can be written.

Three nets, widest last: arguments a tool declares secret (redacted whole, keeping map keys, since secret
*names* are metadata), keys that look like they hold a secret, and string values that look like credentials
(token formats, private keys, passwords inside URLs).

Then `storable`: Postgres text and jsonb cannot hold U+0000, and psycopg cannot encode a lone surrogate as
UTF-8, so either would make the INSERT fail and the call leave no trace. Both are escaped as the six characters
a JSON reader would write (`\\u0000`, `\\ud800`), and each string is clipped to `CLIP_CHARS` so a flood of
4 MiB calls cannot fill the table. It runs after redaction, so a secret is judged whole, never clipped first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
CLIP_CHARS = 4096
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_SECRET_KEY = re.compile(r"(secret|passw|token|api[_-]?key|private[_-]?key|credential|auth)", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|^dmcp_[A-Za-z0-9_-]{16,}|^gh[pousr]_[A-Za-z0-9]{20,}|"
    r"^glpat-[A-Za-z0-9_-]{16,}|^xox[abp]-|^AKIA[0-9A-Z]{16}$|^eyJ[A-Za-z0-9_-]+\.eyJ)"
)
# Bounded repeats: with `*` a long run of letters made every start position scan to the end (quadratic: a 1 MiB
# argument held the event loop for minutes while its audit row was being written).
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]{0,31}://)(?P<user>[^:/@\s]{1,256}):(?P<pw>[^@/\s]{1,4096})@",
                           re.IGNORECASE)


def _value(v: Any) -> Any:
    if isinstance(v, str):
        if _SECRET_VALUE.search(v):
            return REDACTED
        if "://" not in v:
            return v
        return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", v)
    if isinstance(v, Mapping):
        return {str(k): (_whole(x) if _SECRET_KEY.search(str(k)) else _value(x)) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_value(x) for x in v]
    return v


def _whole(v: Any) -> Any:
    """Redact every leaf value, keeping the shape (and map keys) for the reader of the audit log."""
    if isinstance(v, Mapping):
        return {str(k): _whole(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_whole(x) for x in v]
    return None if v is None else REDACTED


def redact(arguments: Mapping[str, Any], secret_args: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        str(k): (_whole(v) if k in secret_args or _SECRET_KEY.search(str(k)) else _value(v))
        for k, v in arguments.items()
    }


def storable_text(text: str, limit: int = CLIP_CHARS) -> str:
    """`text` as Postgres can store it: U+0000 and lone surrogates escaped, clipped to `limit` characters."""
    if _UNSTORABLE.search(text):
        text = _UNSTORABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text) - limit} more characters]"
    return text


def storable(v: Any) -> Any:
    """A JSON value with every string (map keys too) made `storable_text`."""
    if isinstance(v, str):
        return storable_text(v)
    if isinstance(v, Mapping):
        return {storable_text(str(k)): storable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [storable(x) for x in v]
    return v
