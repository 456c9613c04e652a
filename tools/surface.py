"""Which tools a caller is offered: the server's `tools` settings (read-only, toolsets) and the caller's token
(its own read-only flag and toolsets, and its scopes) narrow the list `tools/list` answers, so an agent never sees
a tool it cannot call (decision 0017)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from mcp.types import Tool as MCPTool

from tools.context import TOOLSETS, Principal, ToolSpec

ALWAYS_OFFERED = frozenset({"whoami"})
"""Offered whatever the toolsets: the first call of every session, and it changes nothing."""


@dataclass(frozen=True)
class Surface:
    """The server's own narrowing (`mcp_server.settings.ToolsSettings`)."""

    read_only: bool = False
    toolsets: frozenset[str] = frozenset(TOOLSETS)


def hidden_because(spec: ToolSpec, principal: Principal, surface: Surface) -> str | None:
    """Why the server or the caller's token does not offer this tool (None: it does). Scopes are apart
    (`offered`): a call without the scope is refused naming the scope, which OAuth clients step up from."""
    if spec.name in ALWAYS_OFFERED:
        return None
    if surface.read_only and not spec.annotations.read_only_hint:
        return "this server is read-only (setting tools.read_only)"
    if principal.read_only and not spec.annotations.read_only_hint:
        return "your token is read-only"
    if spec.toolset not in surface.toolsets:
        return f"this server offers only the toolsets {sorted(surface.toolsets)} (setting tools.toolsets)"
    if principal.toolsets is not None and spec.toolset not in principal.toolsets:
        return f"your token offers only the toolsets {sorted(principal.toolsets)}"
    return None


def offered(spec: ToolSpec, principal: Principal, surface: Surface) -> bool:
    """Listed for this caller: not hidden, and callable with the caller's scopes."""
    return hidden_because(spec, principal, surface) is None and (spec.scope is None or principal.has(spec.scope))


TOOL_LIST_BUDGET = 8000
"""Tokens (JSON characters / 4) the whole tools/list may take, every family included (issue 19)."""


def list_tokens(listed: Sequence[MCPTool]) -> dict[str, int]:
    """Each listed tool's size in tokens, estimated as its JSON (name, title, description, schemas, annotations,
    as sent) / 4."""
    return {t.name: len(json.dumps(t.model_dump(mode="json", by_alias=True, exclude_none=True))) // 4
            for t in listed}
