"""Secrets: write-only environment variables. Values are encrypted at rest, pinned per release by version,
and never returned, logged or audited; only names are shown."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from tools.args import AppName, ProjectName, check_name
from tools.context import call, tool
from tools.errors import InvalidInput
from tools.lookups import require_app
from tools.releases import check_env, check_environment, seal_secrets
from workflows.domain.env_limits import MAX_VARIABLES
from workflows.domain.specs import AppConfig


class SecretsResult(BaseModel):
    app: str
    version: int = Field(description="The secrets version the next release will pin.")
    names: list[str]
    changed: bool
    next_step: str


async def _change(project: str, app: str, changes: dict[str, str | None], grows: bool) -> SecretsResult:
    c = call()
    check_name("project", project)
    check_name("app", app)
    row = await require_app(c, project, app)
    change = await seal_secrets(c, row.id, changes)
    if change.sealed is None or change.names is None:
        current = await c.store.current_secrets(row.id)
        return SecretsResult(app=f"{project}/{app}", version=current.version, names=current.names, changed=False,
                             next_step="Nothing changed.")
    if grows:  # removing never makes it worse, so an app already over the caps can always shrink
        check_environment("values", AppConfig.model_validate(row.spec).env, change.values,
                          whose="with these values the app's env + secrets would hold ")
    version = await c.store.add_secret_version(row.id, change.base, change.names, change.sealed,
                                               c.principal.subject)
    return SecretsResult(app=f"{project}/{app}", version=version, names=change.names, changed=True,
                         next_step="Takes effect with the next release: call `deploy` (no arguments needed).")


@tool(title="Set secrets", scope="secrets:write", idempotent=True, secret_args=frozenset({"values"}))
async def set_secrets(
    project: ProjectName,
    app: AppName,
    values: Annotated[dict[str, str], Field(
        description="NAME -> value; merged into the app's secrets. Write-only. The app's env + secrets hold at "
                    f"most {MAX_VARIABLES} variables and 256 KiB of names and values.")],
) -> SecretsResult:
    """Add or replace secret environment variables of an app (a new secrets version; the next `deploy` pins
    it). Values are never shown again."""
    if not values:
        raise InvalidInput("values", "is empty", "pass at least one NAME: value")
    check_env("values", values)
    return await _change(project, app, dict(values), grows=True)


@tool(title="Unset secrets", scope="secrets:write", idempotent=True)
async def unset_secrets(
    project: ProjectName,
    app: AppName,
    names: Annotated[list[str], Field(description="Secret names to remove.", min_length=1, max_length=100)],
) -> SecretsResult:
    """Remove secret environment variables of an app (a new secrets version; the next `deploy` pins it)."""
    check_env("names", dict.fromkeys(names, ""))
    return await _change(project, app, dict.fromkeys(names), grows=False)
