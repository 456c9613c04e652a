"""The MCP prompts are listed with their arguments and render the steps an agent follows."""

from __future__ import annotations

import inspect
import re

import pytest
from mcp.client import Client

from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import ALL_SCOPES
from mcp_server.store import PgStore
from prompts import PROMPTS
from tools.context import PlatformConfig, Principal


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_prompts_list_and_render(store: PgStore, mode: str) -> None:
    server = build_server(ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test")),
                          transport="memory", principal=Principal("acme", "a", frozenset(), "memory"))
    async with Client(server, mode=mode) as c:
        listed = {p.name: p for p in (await c.list_prompts()).prompts}
        assert set(listed) == {"deploy-image", "debug-failed-deploy", "safe-rollback", "investigate-app", "add-domain",
                               "add-database"}
        assert [a.name for a in listed["debug-failed-deploy"].arguments or []] == ["project", "app", "deployment_id"]
        got = await c.get_prompt("debug-failed-deploy", {"project": "shop", "app": "web"})
    text = got.messages[0].content.text  # type: ignore[union-attr]
    assert "diagnose=true" in text and "rollback" in text and "shop/web" in text


# Tools of families other branches add (issue 19's agreed names); every other name a prompt cites must be listed.
OTHER_FAMILIES = {"domain", "domains", "database", "databases", "app_metrics", "scale"}
# Backticked words in the prompts that are fields or arguments, not tools.
NOT_TOOLS = {"done", "serving", "error", "app_output", "status", "status_reason", "observed", "level", "resources",
             "secrets", "env", "idempotency_key", "health_check", "to", "next_step", "replicas", "succeeded"}


async def test_prompts_name_only_tools_that_exist(store: PgStore) -> None:
    server = build_server(ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test")),
                          transport="memory", principal=Principal("acme", "a", frozenset(ALL_SCOPES), "memory"))
    async with Client(server) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
    for p in PROMPTS:
        text = p.fn(**dict.fromkeys(inspect.signature(p.fn).parameters, "X-1"))  # never a tool name
        cited = set(re.findall(r"`([a-z_]+)`", text)) - NOT_TOOLS - OTHER_FAMILIES
        assert cited <= tools, (p.name, cited - tools)
