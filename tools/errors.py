"""What the agent sees when a tool fails.

Every failure a tool anticipates is a `PlatformError`, a `ToolError` the model reads: it says what was wrong
and what to do next. `outcome` is how the audit log records it. Anything else escaping a tool is a crash: the
model sees only "Error executing tool <name>" and the server log gets the traceback.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError


class PlatformError(ToolError):
    outcome = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class InvalidInput(PlatformError):
    """An argument is wrong; names the field and how to fix it."""

    outcome = "invalid"

    def __init__(self, field: str, problem: str, fix: str | None = None) -> None:
        self.field = field
        super().__init__(f"Invalid `{field}`: {problem}.", hint=f"Fix: {fix}." if fix else None)


class Forbidden(PlatformError):
    """The caller lacks a scope, or the object belongs to another tenant."""

    outcome = "denied"


class NotFound(PlatformError):
    def __init__(self, kind: str, name: str, hint: str | None = None) -> None:
        super().__init__(f"No {kind} named {name!r} in your tenant.", hint=hint)


class Conflict(PlatformError):
    """The request contradicts the platform's current state (name taken, operation in flight)."""


class Unavailable(PlatformError):
    """A dependency (Temporal, the cluster, the log store) cannot be reached now; retrying later may work."""
