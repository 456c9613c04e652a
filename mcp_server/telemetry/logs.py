"""Log lines as JSON objects (`telemetry.log_format = "json"`), one a line, for a log collector.

Each line carries what the call or task it belongs to is known by: `request_id`, `tenant`, `tool` (set by the
server's call wrapper for the call's duration), `workflow_id`, `workflow_type`, `activity_type` (from Temporal's
loggers inside a workflow or activity), `release` (where the code names it), `trace_id` (when tracing is on). A
call's arguments reach a line only as `arguments`, which the formatter redacts (`tools.redaction`, the audit
row's nets) whoever logged them.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from tools.redaction import redact

CONTEXT_FIELDS = ("request_id", "tenant", "tool", "workflow_id", "release")
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("deploy_mcp_log_context", default={})  # noqa: B039 (never mutated: each scope sets a new dict)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Attach `fields` (a subset of CONTEXT_FIELDS) to every line logged inside, in this task and its children."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def add_context(**fields: str | None) -> None:
    """Add `fields` to the current scope (e.g. the workflow id, once the tool has started it)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


class JsonLines(logging.Formatter):
    """`{"time", "level", "logger", "message", <context fields>, "exception"}`, one object a line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
        }
        line.update(_context.get())
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = str(value)
        # temporalio's workflow and activity loggers attach what the line belongs to as these two dicts
        for extra in ("temporal_workflow", "temporal_activity"):
            info = getattr(record, extra, None)
            if isinstance(info, dict):
                for key in ("workflow_id", "workflow_type", "workflow_run_id", "activity_type", "attempt"):
                    if key in info and info[key] is not None:
                        line.setdefault(key, str(info[key]))
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # the trace this line belongs to, to find it beside its spans
            line["trace_id"] = f"{span.trace_id:032x}"
        arguments = getattr(record, "arguments", None)
        if isinstance(arguments, Mapping):
            line["arguments"] = redact(arguments)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(log_format: str, level: int) -> None:
    """The root logger's handler for `log_format` (`text`: the terminal's lines, as before)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
