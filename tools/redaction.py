"""Secret values never reach an audit row: arguments are redacted before they are written.

Three nets, widest last: arguments a tool declares secret (redacted whole, keeping map keys, since secret
*names* are metadata), keys that look like they hold a secret, and string values that look like credentials
(token formats, private keys, passwords inside URLs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"(secret|passw|token|api[_-]?key|private[_-]?key|credential|auth)", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|^dmcp_[A-Za-z0-9_-]{16,}|^gh[pousr]_[A-Za-z0-9]{20,}|"
    r"^glpat-[A-Za-z0-9_-]{16,}|^xox[abp]-|^AKIA[0-9A-Z]{16}$|^eyJ[A-Za-z0-9_-]+\.eyJ)"
)
# The scheme is bounded: unbounded, every start in a long run of letters scanned to its end looking for "://",
# and a 100 KiB value took minutes (the call's audit row is redacted before the tool runs).
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]{0,31}://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@",
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
