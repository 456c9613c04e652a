"""What a plan shows of an object (`plan=true` on a mutating tool, decision 0021): the rendered object with a
Secret's values redacted, and the compact list of paths where it differs from what the cluster holds.

Pure: the tools hand in the rendered object and the live one (or None). Only the fields the platform renders
are compared, as server-side apply owns only those: what the API server or another actor added (status,
defaults, managedFields) is not a change the call would make.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

REDACTED = "(redacted)"
MAX_PATHS = 40
"""Paths listed per object; more are summarised in one entry, so a plan stays readable (and small)."""

Action = Literal["create", "update", "unchanged"]

_SECRET_FIELDS = ("data", "stringData")


def redact_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as a plan may show it: a Secret's keys kept, every value replaced."""
    out = dict(obj)
    if obj.get("kind") == "Secret":
        for f in _SECRET_FIELDS:
            if isinstance(obj.get(f), Mapping):
                out[f] = {k: REDACTED for k in obj[f]}
    return out


def _key(item: Any, index: int) -> str:
    """A list entry's path segment: by `name` where the entries have one (containers, env, ports), which is
    how Kubernetes merges them, else by index."""
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        return f"[name={item['name']}]"
    return f"[{index}]"


def _walk(desired: Any, live: Any, path: str, out: list[str]) -> None:
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            out.append(path or ".")
            return
        for k, v in desired.items():
            _walk(v, live.get(k), f"{path}.{k}" if path else str(k), out)
        return
    if isinstance(desired, list):
        if not isinstance(live, list):
            out.append(path)
            return
        live_by_key = {_key(x, i): x for i, x in enumerate(live)}
        keys = [_key(x, i) for i, x in enumerate(desired)]
        if len(live) != len(desired) and not all(k.startswith("[name=") for k in keys):
            out.append(path)  # positional entries shifted: the whole list is the change
            return
        for k, x in zip(keys, desired, strict=True):
            _walk(x, live_by_key.get(k), path + k, out)
        for k in live_by_key.keys() - set(keys):
            out.append(path + k)  # removed by the apply
        return
    if desired != live and not _same_scalar(desired, live):
        out.append(path)


def _same_scalar(a: Any, b: Any) -> bool:
    """The API server answers some fields normalised (an int port as given, a quantity "0.5" as "500m" is not
    normalised here): equal as text counts as equal, so `8080` and `"8080"` are no change."""
    return a is not None and b is not None and str(a) == str(b)


def changed_paths(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> tuple[Action, list[str]]:
    """("create", []) when nothing is live; else "update" with the paths (dotted, list entries by name) where
    the rendered fields differ, or "unchanged". Paths name Secret keys, never their values."""
    if live is None:
        return "create", []
    out: list[str] = []
    for k, v in desired.items():
        if k in ("apiVersion", "kind", "status"):
            continue
        _walk(v, live.get(k), k, out)
    if len(out) > MAX_PATHS:
        out = [*out[:MAX_PATHS], f"... and {len(out) - MAX_PATHS} more"]
    return ("update" if out else "unchanged"), out
