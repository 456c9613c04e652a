"""The agent's surface: how many tokens tools/list costs, in total and per tool (JSON of each listed tool /
4, as the real server sends it over an in-memory MCP client), for a principal with every scope, a read-only
token and each toolset alone. Needs no database, cluster or worker: listing touches none of them.

Prints one line per view, e.g. `tools/list all: 5355 tokens, 14 tools (budget 8000)`, then the per-tool table.

Run: .venv/bin/python bench/tool_list.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp.client import Client

from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import ALL_SCOPES, OPERATOR_SCOPES, TOOLSETS
from tools.context import PlatformConfig, Principal
from tools.surface import TOOL_LIST_BUDGET, list_tokens

EVERYTHING = frozenset(ALL_SCOPES) | frozenset(OPERATOR_SCOPES)


async def sizes(**principal: Any) -> dict[str, int]:
    # listing reads no record: no store is needed, and none is opened
    deps = ServerDeps(store=cast(Any, None), config=PlatformConfig(apps_domain="apps.example.com"))
    server = build_server(deps, transport="memory", principal=Principal("bench", "agent", EVERYTHING, "memory",
                                                                        **principal))
    async with Client(server) as c:
        return list_tokens((await c.list_tools()).tools)


async def main() -> None:
    views: dict[str, dict[str, Any]] = {"all": {}, "read-only": {"read_only": True}}
    views |= {f"toolset {t}": {"toolsets": frozenset({t})} for t in TOOLSETS}
    every: dict[str, int] = {}
    for name, principal in views.items():
        s = await sizes(**principal)
        if not s:
            raise SystemExit(f"tools/list {name}: the server listed no tool; nothing measured")
        every = every or s
        print(f"tools/list {name}: {sum(s.values())} tokens, {len(s)} tools (budget {TOOL_LIST_BUDGET})")
    print(f"ratio tools/list all / budget: {sum(every.values()) / TOOL_LIST_BUDGET:.2f}x (goal < 1x)")
    print()
    for tool, n in sorted(every.items(), key=lambda kv: -kv[1]):
        print(f"{n:6d}  {tool}")


if __name__ == "__main__":
    asyncio.run(main())
