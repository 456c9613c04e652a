"""`telemetry.log_format = "json"` (mcp_server.telemetry.logs): one JSON object a line with the call's context
(set for a scope, inherited by the tasks it starts), Temporal's workflow and activity details, the current
trace id, and arguments redacted by the audit row's rules whoever logged them."""

from __future__ import annotations

import asyncio
import json
import logging

from mcp_server.telemetry.logs import JsonLines, add_context, log_context


def record(msg: str, **extra: object) -> logging.LogRecord:
    r = logging.LogRecord("deploy", logging.INFO, __file__, 1, msg, (), None)
    for k, v in extra.items():
        setattr(r, k, v)
    return r


async def test_a_line_carries_its_scope_and_temporal_details() -> None:
    fmt = JsonLines()
    with log_context(tool="create_app", tenant="acme"):
        add_context(request_id="7", workflow_id="deploy/acme/shop/web/r1")

        async def child() -> str:
            return fmt.format(record("in a task", release="web-r1"))

        line = json.loads(await asyncio.create_task(child()))
    assert {k: line[k] for k in ("tool", "tenant", "request_id", "workflow_id", "release", "message", "level")} == {
        "tool": "create_app", "tenant": "acme", "request_id": "7", "workflow_id": "deploy/acme/shop/web/r1",
        "release": "web-r1", "message": "in a task", "level": "info"}
    outside = json.loads(fmt.format(record("later", temporal_activity={
        "activity_type": "apply_release", "workflow_id": "deploy/x", "workflow_type": "deploy", "attempt": 2})))
    assert "tool" not in outside and outside["activity_type"] == "apply_release" and outside["attempt"] == "2"


def test_arguments_are_redacted_whoever_logs_them() -> None:
    line = json.loads(JsonLines().format(record("call", arguments={
        "values": {"API_KEY": "plain-looking"}, "git_token": "abc", "url": "https://u:pw@git.test/r.git",
        "note": "ghp_" + "a" * 30})))
    text = json.dumps(line)
    assert "plain-looking" not in text and "abc" not in text and ":pw@" not in text and "ghp_" not in text, line
    assert line["arguments"]["url"] == "https://u:[redacted]@git.test/r.git"
