"""The agent-facing operations, one module per family. Importing a family registers its tools; `all_tools()`
imports every family first.

Each tool reads top to bottom: input (typed parameters), output model, then validate -> authorize (the
server checks the declared scope) -> act. The server writes the audit row around every call.

The families are imported by `all_tools()`, not by this package: the store imports `tools.records` and
`tools.ports`, and the worker (which serves no tool) would otherwise load the whole MCP SDK through it, about
23 MB of its resident memory (bench/concurrent_calls.py measures it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.context import ToolSpec

__all__ = ["all_tools"]


def all_tools() -> list[ToolSpec]:
    from tools import (  # noqa: F401  (registration by import)
        apps,
        audit,
        builds,
        databases,
        deployments,
        domains,
        identity,
        logs,
        push_deploys,
        rollback,
        scaling,
        secrets,
        volumes,
    )
    from tools.context import REGISTRY

    return list(REGISTRY)
