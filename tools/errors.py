"""What the agent sees when a tool fails.

Every failure a tool anticipates is a `PlatformError`, a `ToolError` the model reads: it says what was wrong
and what to do next. `outcome` is how the audit log records it. The store's own errors become these in
`from_store` (every tool runs inside that translation: `tools.context.tool`). Anything else escaping a tool is
a crash: the model sees only "Error executing tool <name>" and the server log gets the traceback.
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

from tools.ports import RecordConflict, RecordNotFound, StoreError, StoreUnavailable


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


class RateLimited(PlatformError):
    """The caller's token spent its budget (calls per minute, or concurrent waits): the call was refused before
    anything ran. `retry_after` is the seconds until one more call may pass, when the budget can say."""

    outcome = "denied"

    def __init__(self, message: str, *, retry_after: int | None, hint: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, hint=hint)


class Unavailable(PlatformError):
    """A dependency (Temporal, the cluster, the log store) cannot be reached now; retrying later may work."""


# What to do when the store misses a record a write builds on, by the kind of record.
_NOT_FOUND_HINTS = {
    "project": "Call `apps`; `create_app` creates projects.",
    "app": "Create it with `create_app`.",
}


def from_store(e: StoreError) -> PlatformError:
    """The agent's reading of a store failure: what collided or is missing, and the next step."""
    if isinstance(e, RecordNotFound):
        return NotFound(e.kind, e.key, hint=_NOT_FOUND_HINTS.get(e.kind))
    if isinstance(e, RecordConflict):
        if e.kind == "hostname":
            return Conflict(f"The hostname {e.key} is already used by another app.",
                            hint="Choose another app or project name.")
        if e.kind == "domain":
            return Conflict(f"The domain {e.key} is claimed by another app.",
                            hint="Remove it from that app first (`domain` action=remove). An unverified claim of "
                                 "another tenant lapses at its verification deadline.")
        if e.kind == "app":
            return Conflict(f"The app {e.key} already exists.",
                            hint="Use `deploy` to release a new version, or pass the same `idempotency_key` to retry.")
        return Conflict("The app's secrets changed while this call ran.", hint="Call it again.")
    if isinstance(e, StoreUnavailable):
        return Unavailable("The platform's database cannot be reached now.",
                           hint="Call again in a minute; if it persists, tell the operator.")
    return PlatformError("The platform's records could not be read or written.", hint="Tell the operator.")
