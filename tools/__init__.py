"""The agent-facing operations, one module per family. Importing this package registers every tool.

Each tool reads top to bottom: input (typed parameters), output model, then validate -> authorize (the
server checks the declared scope) -> act. The server writes the audit row around every call.
"""

from tools import (  # noqa: F401  (registration by import)
    apps,
    audit,
    builds,
    deployments,
    diagnose,
    identity,
    logs,
    projects,
    rollback,
    secrets,
    volumes,
)
from tools.context import REGISTRY, ToolSpec

__all__ = ["REGISTRY", "ToolSpec", "all_tools"]


def all_tools() -> list[ToolSpec]:
    return list(REGISTRY)
