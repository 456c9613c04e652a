"""What a database looks like now, read from the cluster at the time of asking (never remembered): disk used of
its claim from the kubelet Summary API's volume stats of the database pod, and client connections against
`max_connections` from a one-query Job (decision 0014, "Observed status"). Each figure carries the moment it was
observed, or `unknown` with the reason. Pure: the message types and the parsers of both answers.

- Summary API (`/stats/summary`, stats/v1alpha1): `pods[].podRef.{name,namespace}`, `pods[].volume[]` with
  `name`, `pvcRef.{name,namespace}` and the inlined FsStats `time`, `usedBytes`, `capacityBytes`,
  `availableBytes`.
- The Job's log: psql `-At` output of `SELECT <clients>, <max_connections>`, one line `12|100`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from workflows.domain.database_spec import DatabaseSpec
from workflows.domain.specs import Msg

DISK_WARN_PERCENT = 85.0
"""diagnose flags a database disk fuller than this: Postgres stops taking writes (and can fail a checkpoint)
when it is full, and growing a claim takes a while."""
CONNECTIONS_WARN_FRACTION = 0.9
"""diagnose flags connections at or above this share of max_connections: past it, new clients get `too many
clients already` (the reserved superuser slots do not serve the app)."""

CONNECTIONS_SQL = ("SELECT count(*) FILTER (WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()), "
                   "current_setting('max_connections') FROM pg_stat_activity")
"""Client sessions other than this query's own, and the server's limit. A role that is no superuser still sees
every session's row (only their query text is hidden), so the database's own role suffices."""


class DiskUse(Msg):
    used_bytes: int | None = None
    capacity_bytes: int | None = None
    percent: float | None = None
    observed_at: datetime | None = None
    unknown: str | None = None  # why it could not be observed; the figures are then None


class Connections(Msg):
    current: int | None = None
    max: int | None = None
    observed_at: datetime | None = None
    unknown: str | None = None


class DatabaseObservation(Msg):
    ready: bool | None = None  # the database pod Ready now (None: no pod to ask)
    pod: str | None = None
    disk: DiskUse = DiskUse(unknown="not observed")
    connections: Connections = Connections(unknown="not observed")


class ObserveInput(Msg):
    spec: DatabaseSpec
    query_timeout_seconds: int = 30


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def volume_disk_use(summary: Mapping[str, Any], namespace: str, pod: str, claim: str) -> DiskUse:
    """The claim's filesystem as the kubelet last measured it, from one node's Summary."""
    for p in summary.get("pods") or []:
        ref = p.get("podRef") or {}
        if ref.get("namespace") != namespace or ref.get("name") != pod:
            continue
        for v in p.get("volume") or []:
            if (v.get("pvcRef") or {}).get("name") != claim:
                continue
            used, capacity = _int(v.get("usedBytes")), _int(v.get("capacityBytes"))
            if used is None or not capacity:
                return DiskUse(unknown=f"the kubelet reports no usage for claim {claim} yet")
            when = v.get("time")
            return DiskUse(used_bytes=used, capacity_bytes=capacity, percent=round(100.0 * used / capacity, 1),
                           observed_at=datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else None)
        return DiskUse(unknown=f"the kubelet reports no volume stats for claim {claim} (its CSI driver may not "
                               "expose them)")
    return DiskUse(unknown=f"the kubelet of the pod's node does not list pod {pod}")


_ANSWER = re.compile(r"^\s*(\d+)\|(\d+)\s*$")


def parse_connections(log: str) -> tuple[int, int] | None:
    """(current, max) from the query Job's log, or None when the log holds no answer (an error instead)."""
    for line in reversed(log.splitlines()):
        m = _ANSWER.match(line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def database_findings(obs: DatabaseObservation, name: str) -> list[str]:
    """What diagnose says about the database's observed state: a disk nearly full, connections near the limit."""
    out: list[str] = []
    d, c = obs.disk, obs.connections
    if d.percent is not None and d.percent > DISK_WARN_PERCENT:
        out.append(f"Its database {name}'s disk is {d.percent:.0f}% full ({d.used_bytes} of {d.capacity_bytes} "
                   "bytes): free space or give it a larger size before writes fail.")
    if c.current is not None and c.max and c.current >= CONNECTIONS_WARN_FRACTION * c.max:
        out.append(f"Its database {name} has {c.current} of {c.max} connections: new clients will be refused; "
                   "use a connection pool or fewer replicas.")
    return out
