"""Argument types shared by the tool families, with the descriptions the agent reads in the schema."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import Field

from tools.errors import InvalidInput
from workflows.domain.names import NAME_MAX, name_problem, suggest_name

ProjectName = Annotated[str, Field(description=f"Project: DNS label, <= {NAME_MAX} chars.", max_length=200)]
AppName = Annotated[str, Field(description=f"App in the project: DNS label, <= {NAME_MAX} chars.", max_length=200)]


Wait = Annotated[int | None, Field(ge=0, le=300, description="Seconds to wait, reporting progress (default 60; 0: "
                                                             "return at once).")]
ShutdownGrace = Annotated[int | None, Field(ge=1, le=600, description="Seconds between SIGTERM and kill (default "
                                                                      "30).")]
IdempotencyKey = Annotated[str | None, Field(description="A retry with the same key returns the first result; "
                                                         "other arguments with it are refused.", max_length=128)]
DeploymentId = Annotated[UUID, Field(description="A deployment id (create_app, deploy, rollback, deployments).")]


def check_name(field: str, value: str) -> str:
    """Validate a platform name here rather than in the schema, so the error names the fix."""
    problem = name_problem(value)
    if problem:
        raise InvalidInput(field, f"{value!r} {problem}", f"use a name like {suggest_name(value)!r}")
    return value
PlanFlag = Annotated[bool, Field(description="Only show what would change (dry run); nothing is changed.")]
