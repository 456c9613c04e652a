"""Drift: how the cluster differs from what the platform renders for an app, as pure functions over plain
object dicts, so every decision of the reconciler can be checked without a cluster.

Only the fields the platform renders are compared: the rendered object must be contained in the live one
(every rendered field present with the same value, every rendered list item found in the live list), so
fields the API server defaults or another controller adds never count as drift. Quantities are compared by
value, because the API server rewrites them ("1000m" comes back as "1", "16384Mi" as "16Gi").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workflows.domain.diagnosis import is_ready
from workflows.domain.labels import LABEL_APP, LABEL_RELEASE
from workflows.domain.quantities import quantity

PRESENCE_ONLY = frozenset({"Secret", "PersistentVolumeClaim"})
"""Kinds checked for existence only: a release's Secret is immutable and holds secret values (never compared,
never logged), and a claim's size and data source are the volume workflow's (re-applying a restored claim
without its immutable `dataSource` would be refused)."""

_MAX_SHOWN = 60


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN - 3] + "..."


def _same_scalar(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, str) and isinstance(have, str):
        try:
            return quantity(want) == quantity(have)
        except ValueError:
            return False
    return False


def _omitted_zero(value: Any) -> bool:
    """A zero value the API server leaves out of what it returns (Go's `omitempty`: `readOnly: false`,
    `initialDelaySeconds: 0`), so its absence is no drift."""
    return value is None or (value in (False, 0, "") and not isinstance(value, float)) or value in ([], {})


def differences(want: Any, have: Any, path: str = "") -> list[str]:
    """Where `have` (live) does not contain `want` (rendered): one line per differing field, `path` first."""
    where = path or "the object"
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            return [f"{where} is {_show(have)}, want an object"]
        out: list[str] = []
        for key, value in want.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in have:
                if not _omitted_zero(value):
                    out.append(f"{sub} is missing")
            else:
                out.extend(differences(value, have[key], sub))
        return out
    if isinstance(want, list):
        if not isinstance(have, list):
            return [f"{where} is {_show(have)}, want a list"]
        out = []
        for i, item in enumerate(want):
            if any(not differences(item, candidate) for candidate in have):
                continue
            named = item.get("name") if isinstance(item, Mapping) else None
            twin = next((c for c in have if isinstance(c, Mapping) and named is not None and c.get("name") == named),
                        None)
            if twin is not None:
                out.extend(differences(item, twin, f"{path}[{named}]"))
            else:
                out.append(f"{path}[{i}] {_show(item)} is missing")
        return out
    if _same_scalar(want, have):
        return []
    return [f"{where} is {_show(have)}, want {_show(want)}"]


def ref(obj: Mapping[str, Any]) -> str:
    """`Kind/namespace/name` (cluster-scoped: `Kind/name`), the form audit rows use."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{obj.get('kind')}/{ns}/{md.get('name')}" if ns else f"{obj.get('kind')}/{md.get('name')}"


def object_drift(rendered: Mapping[str, Any], live: Mapping[str, Any] | None) -> str | None:
    """Why `rendered` must be applied again: it is missing, or a field it renders differs (the first few
    named); None when the live object holds everything rendered."""
    if live is None:
        return f"{ref(rendered)} is missing"
    if live.get("metadata", {}).get("deletionTimestamp"):
        return f"{ref(rendered)} is being deleted"
    if rendered.get("kind") in PRESENCE_ONLY:
        return None
    wanted = {k: v for k, v in rendered.items() if k not in ("apiVersion", "kind", "status")}
    found = differences(wanted, live)
    if not found:
        return None
    more = f" (+{len(found) - 2} more)" if len(found) > 2 else ""
    return f"{ref(rendered)}: {'; '.join(found[:2])}{more}"


def ready_pods(pods: Iterable[Mapping[str, Any]], release: str) -> list[str]:
    """Names of the Ready pods of `release`."""
    return sorted(str(p["metadata"]["name"]) for p in pods
                  if (p["metadata"].get("labels") or {}).get(LABEL_RELEASE) == release and is_ready(p))


def service_points_at(service: Mapping[str, Any] | None, endpoints: Mapping[str, Any] | None, app: str,
                      release: str, ready: Iterable[str]) -> bool:
    """The app's Service selects `release` and its endpoints are (some of) that release's Ready pods: traffic
    reaches the serving release."""
    selector = ((service or {}).get("spec") or {}).get("selector") or {}
    if selector != {LABEL_APP: app, LABEL_RELEASE: release}:
        return False
    targets = {str((a.get("targetRef") or {}).get("name", "")) for s in (endpoints or {}).get("subsets") or []
               for a in s.get("addresses") or []}
    return bool(targets) and targets <= set(ready)


def orphans(objects: Iterable[Mapping[str, Any]], owned: set[tuple[str, str]]) -> list[str]:
    """Refs of the objects (carrying the platform's app label) whose (namespace, app) no recorded app owns."""
    out = []
    for obj in objects:
        md = obj.get("metadata") or {}
        app = (md.get("labels") or {}).get(LABEL_APP)
        if app and (str(md.get("namespace")), str(app)) not in owned:
            out.append(ref(obj))
    return sorted(out)
