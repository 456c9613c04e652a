"""The records a tool's arguments name, looked up in the caller's tenant, or the `NotFound` the agent reads.

One function per record the tools address by name, so every tool refuses a missing one in the same words.
"""

from __future__ import annotations

from tools.context import CallContext
from tools.errors import NotFound
from tools.records import AppRecord


async def require_app(c: CallContext, project: str, app: str, *, hint: str = "Call `apps`.") -> AppRecord:
    """The live app `project/app` of the caller's tenant; `hint` is the next step the agent reads if none."""
    row = await c.store.get_app(c.principal.tenant, project, app)
    if row is None:
        raise NotFound("app", f"{project}/{app}", hint=hint)
    return row
