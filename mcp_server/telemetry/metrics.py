"""The server's Prometheus metrics and the `/metrics` exposition both processes serve.

Tool calls are counted in `DeployMCP.call_tool`, the one place every call passes (refused ones too). The
backup age is read from `backup_runs` at scrape time: it is a fact of the database, not of this process, so a
fresh replica reports the same age. Labels take values from closed sets: the registered tool names (`unknown`
for a name no tool has), the audit outcomes; never an app, tenant or argument.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from tools.records import BackupRun

log = logging.getLogger(__name__)

TOOL_CALLS = Counter("deploy_mcp_tool_calls", "MCP tool calls, by tool and audit outcome (ok, error, denied, "
                     "invalid).", ["tool", "outcome"])
TOOL_SECONDS = Histogram(
    "deploy_mcp_tool_call_duration_seconds", "Time a tool call took in the server, from arrival to answer (a "
    "bounded wait on a workflow included), by tool and outcome.", ["tool", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
BACKUP_LAST_SUCCESS = Gauge(
    "deploy_mcp_backup_last_success_timestamp_seconds", "When the last successful Plane A backup finished (Unix "
    "time; 0: none recorded).")
BACKUP_AGE = Gauge(
    "deploy_mcp_backup_age_seconds", "Seconds since the last successful Plane A backup finished (+Inf: none "
    "recorded), read from backup_runs at scrape time.")

CONTENT_TYPE = CONTENT_TYPE_LATEST
REFRESH_TIMEOUT_SECONDS = 2.0
"""A scrape waits at most this for the database: below Prometheus' default 10 s scrape timeout, so a slow
database leaves the last values rather than a failed scrape (and `up` stays a fact about this process)."""

MetricsSource = Callable[[], Awaitable[bytes]]
"""The `/metrics` body, in the Prometheus text format."""


def tool_label(name: str, known: bool) -> str:
    """The `tool` label of a call: a caller may send any name, so one outside the registered tools is `unknown`."""
    return name if known else "unknown"


def count_call(tool: str, outcome: str, seconds: float) -> None:
    TOOL_CALLS.labels(tool=tool, outcome=outcome).inc()
    TOOL_SECONDS.labels(tool=tool, outcome=outcome).observe(seconds)


class BackupRuns(Protocol):
    """What the backup age needs of the store (`mcp_server.store.PgStore` has it)."""

    async def last_backup_runs(self) -> tuple[BackupRun | None, BackupRun | None]: ...


def backup_age(store: BackupRuns) -> Callable[[], Awaitable[None]]:
    """A refresher of the two backup gauges from the store's last successful `create` run."""

    async def refresh() -> None:
        ok, _failed = await store.last_backup_runs()
        finished = ok.finished_at if ok is not None else None
        if finished is None:
            BACKUP_LAST_SUCCESS.set(0)
            BACKUP_AGE.set(float("inf"))
            return
        BACKUP_LAST_SUCCESS.set(finished.timestamp())
        BACKUP_AGE.set(max(0.0, (datetime.now(UTC) - finished).total_seconds()))

    return refresh


def exposition(refreshers: Sequence[Callable[[], Awaitable[None]]] = ()) -> MetricsSource:
    """The `/metrics` body after running `refreshers` (each bounded; one that fails or times out keeps its last
    values and is logged)."""

    async def body() -> bytes:
        for refresh in refreshers:
            started = time.monotonic()
            try:
                await asyncio.wait_for(refresh(), REFRESH_TIMEOUT_SECONDS)
            except Exception as e:  # a scrape must not fail because the database is slow; the gauge says stale
                log.warning("metrics: a refresh failed after %.1f s (%s: %s)", time.monotonic() - started,
                            type(e).__name__, str(e)[:200])
        return generate_latest(REGISTRY)

    return body
