"""`deploy-mcp serve` as the operator runs it, with `telemetry.otlp_endpoint` pointed at a local OTLP/HTTP
receiver (tests/fakes/fake_otlp.py, decoding the protobuf export) and `telemetry.log_format = "json"`:

- the spans of its tool calls reach the receiver (service `deploy-mcp-server`): `tool whoami` under the MCP
  SDK's `tools/call whoami`, in one trace; exported by the batch processor and flushed at SIGTERM (exit 0);
- /metrics answers beside the probes, in Prometheus' text format;
- each call leaves one JSON log line with its tool, tenant and request id, and the line of a call with a secret
  argument holds it redacted: the secret's value appears nowhere in the process's output.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.auth import create_token
from mcp_server.devenv.processes import free_port
from mcp_server.store import PgStore
from tests.fakes.fake_otlp import fake_otlp_running
from tests.support.processes import DEPLOY_MCP, child, platform_env, tail, wait_healthy

pytestmark = pytest.mark.timeout(120)


def json_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_serve_exports_spans_by_otlp_and_logs_json_without_secrets(
        store: PgStore, database_url: str, temporal_address: str, tmp_path: Path) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    port = free_port()
    log = tmp_path / "serve.log"
    token = await create_token(store, "acme", "agent", ["apps:read", "secrets:write"])
    async with fake_otlp_running() as otlp:
        env = platform_env(database_url, temporal_address, "telemetry", tmp_path / "state",
                           TELEMETRY__OTLP_ENDPOINT=otlp.url, TELEMETRY__LOG_FORMAT="json")
        with child([DEPLOY_MCP, "serve", "--transport", "http", "--port", str(port)], env, log) as proc:
            await asyncio.to_thread(wait_healthy, proc, f"http://127.0.0.1:{port}/healthz", log)
            async with httpx.AsyncClient() as h:
                metrics = await h.get(f"http://127.0.0.1:{port}/metrics")
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
            assert "deploy_mcp_backup_age_seconds" in metrics.text
            async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as hc, \
                    Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=hc)) as c:
                assert not (await c.call_tool("whoami", {})).is_error
                await c.call_tool("set_secrets", {"project": "shop", "app": "web", "values": {"API_KEY": secret}})
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0, tail(log)

    by_name = {s.name: s for s in otlp.spans}
    assert "tool whoami" in by_name, sorted(by_name)
    tool, sdk = by_name["tool whoami"], by_name["tools/call whoami"]
    assert tool.service == "deploy-mcp-server"
    assert tool.trace_id == sdk.trace_id and tool.parent_span_id == sdk.span_id
    assert tool.attributes["deploy_mcp.tool"] == "whoami" and tool.attributes["deploy_mcp.tenant"] == "acme"
    assert "tool set_secrets" in by_name
    assert not any(secret in str(s.attributes) for s in otlp.spans)

    text = log.read_text(errors="replace")
    assert secret not in text, "the secret reached the log"
    lines = json_lines(log)
    calls = {line["tool"]: line for line in lines if line.get("message", "").startswith("call ")}
    assert set(calls) >= {"whoami", "set_secrets"}, lines
    line = calls["set_secrets"]
    assert line["tenant"] == "acme" and line["request_id"] and line["level"] == "info", line
    assert line["arguments"]["values"] == {"API_KEY": "[redacted]"}, line
    assert line["arguments"]["project"] == "shop"
