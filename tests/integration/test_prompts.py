"""The MCP prompts are listed with their arguments and render the steps an agent follows."""

from __future__ import annotations

import pytest
from mcp.client import Client

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from tools.context import PlatformConfig, Principal


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_prompts_list_and_render(store: PgStore, mode: str) -> None:
    server = build_server(ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test")),
                          transport="memory", principal=Principal("acme", "a", frozenset(), "memory"))
    async with Client(server, mode=mode) as c:
        listed = {p.name: p for p in (await c.list_prompts()).prompts}
        assert set(listed) == {"deploy-image", "debug-failed-deploy", "safe-rollback"}
        assert [a.name for a in listed["debug-failed-deploy"].arguments or []] == ["project", "app", "deployment_id"]
        got = await c.get_prompt("debug-failed-deploy", {"project": "shop", "app": "web"})
    text = got.messages[0].content.text  # type: ignore[union-attr]
    assert "diagnose_deployment" in text and "rollback" in text and "shop/web" in text
