"""Secrets: write-only environment variables. Values are encrypted at rest, pinned per release by version,
and never returned, logged or audited; only names are shown."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from tools.args import AppName, ProjectName, check_name
from tools.context import call, tool
from tools.errors import InvalidInput
from tools.lookups import require_app
from tools.releases import check_env, seal_secrets


class SecretsResult(BaseModel):
    app: str
    version: int = Field(description="The secrets version the next release will pin.")
    names: list[str]
    changed: bool
    next_step: str


async def _change(project: str, app: str, changes: dict[str, str | None]) -> SecretsResult:
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await require_app(c, project, app)
    base, names, sealed = await seal_secrets(c, row.id, changes)
    if sealed is None or names is None:
        current = await c.store.current_secrets(row.id)
        return SecretsResult(app=f"{project}/{app}", version=current.version, names=current.names, changed=False,
                             next_step="Nothing changed.")
    version = await c.store.add_secret_version(row.id, base, names, sealed, c.principal.subject)
    return SecretsResult(app=f"{project}/{app}", version=version, names=names, changed=True,
                         next_step="Takes effect with the next release: call `deploy` (no arguments needed).")


@tool(title="Set secrets", scope="secrets:write", idempotent=True, secret_args=frozenset({"values"}))
async def set_secrets(
    project: ProjectName,
    app: AppName,
    values: Annotated[dict[str, str], Field(description="NAME -> value; merged into the app's secrets. Write-only.")],
) -> SecretsResult:
    """Add or replace secret environment variables of an app (a new secrets version; the next `deploy` pins
    it). Values are never shown again."""
    if not values:
        raise InvalidInput("values", "is empty", "pass at least one NAME: value")
    check_env("values", values)
    return await _change(project, app, dict(values))


@tool(title="Unset secrets", scope="secrets:write", idempotent=True)
async def unset_secrets(
    project: ProjectName,
    app: AppName,
    names: Annotated[list[str], Field(description="Secret names to remove.", min_length=1, max_length=100)],
) -> SecretsResult:
    """Remove secret environment variables of an app (a new secrets version; the next `deploy` pins it)."""
    check_env("names", dict.fromkeys(names, ""))
    return await _change(project, app, dict.fromkeys(names))
