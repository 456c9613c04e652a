"""Every call leaves its audit row whatever its arguments: text Postgres cannot hold (U+0000, which neither text
nor jsonb stores; lone surrogates, which psycopg cannot encode as UTF-8) is escaped in the arguments, the error,
the tool name and the request id, after the secret values were redacted, and long values are clipped. Through a
real MCP client (auto and legacy) on a real Postgres."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from tools.context import PlatformConfig, Principal
from tools.redaction import CLIP_CHARS

ALL = frozenset({"apps:read", "apps:write", "secrets:write", "volumes:write", "logs:read", "audit:read"})
BASE = {"project": "shop", "name": "web", "source": {"image": "127.0.0.1:5000/a/web:v1"}, "port": 8080}


def server(store: PgStore) -> Any:
    return build_server(ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test")),
                        transport="memory", principal=Principal("acme", "alice", ALL, "memory"))


async def audit_rows(store: PgStore) -> list[dict[str, Any]]:
    async with store.pool.connection() as conn:
        return await (await conn.execute("SELECT * FROM audit_events ORDER BY id")).fetchall()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_nul_byte_is_refused_and_audited(store: PgStore, mode: str) -> None:
    async with Client(server(store), mode=mode) as c:
        r = await c.call_tool("create_app", BASE | {"project": "sh\u0000op"})
        unknown = await c.call_tool("apps", {"pro\u0000ject": "x"})
        nul_tool = await c.call_tool("who\u0000ami", {})
    assert r.is_error and "Invalid `project`" in r.content[0].text  # type: ignore[union-attr]
    assert unknown.is_error and nul_tool.is_error
    rows = await audit_rows(store)
    assert [(x["tool"], x["outcome"]) for x in rows] == [
        ("create_app", "invalid"), ("apps", "invalid"), ("who\\u0000ami", "invalid")]
    assert rows[0]["arguments"]["project"] == "sh\\u0000op"
    assert rows[0]["arguments"]["source"] == {"image": "127.0.0.1:5000/a/web:v1"}
    assert list(rows[1]["arguments"]) == ["pro\\u0000ject"]
    assert "\x00" not in str(rows)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_secrets_are_redacted_before_escaping(store: PgStore, mode: str) -> None:
    secret = "hunter2\u0000tail"
    async with Client(server(store), mode=mode) as c:
        r = await c.call_tool("create_app", BASE | {"name": "w\u0000b", "secrets": {"TOKEN": secret},
                                                    "env": {"PASSWORD": "pw\u0000x", "NOTE": "dmcp_" + "q" * 30}})
    assert r.is_error
    rows = await audit_rows(store)
    assert rows[0]["arguments"]["secrets"] == {"TOKEN": "[redacted]"}
    assert rows[0]["arguments"]["env"] == {"PASSWORD": "[redacted]", "NOTE": "[redacted]"}
    assert "hunter2" not in str(rows) and "pw" not in str(rows[0]["arguments"]["env"])


async def test_lone_surrogates_are_escaped(store: PgStore) -> None:
    # Only "auto" hands the server a lone surrogate: JSON-RPC framing (legacy, HTTP) escapes it as \ud800 and the
    # server's JSON parser gives the same str back, so this is what a client over HTTP can send as well.
    async with Client(server(store), mode="auto") as c:
        r = await c.call_tool("apps", {"project": "sh\ud800op", "app": "a\udfffb"})
        long = await c.call_tool("apps", {"project": "p" * (1 << 20), "app": "web"})
    assert r.is_error and "Invalid `project`" in r.content[0].text  # type: ignore[union-attr]
    assert long.is_error
    rows = await audit_rows(store)
    assert [(x["tool"], x["outcome"]) for x in rows] == [("apps", "invalid"), ("apps", "invalid")]
    assert rows[0]["arguments"] == {"project": "sh\\ud800op", "app": "a\\udfffb"}
    clipped = rows[1]["arguments"]["project"]
    assert clipped.startswith("p" * CLIP_CHARS) and clipped.endswith(f"[{(1 << 20) - CLIP_CHARS} more characters]")
