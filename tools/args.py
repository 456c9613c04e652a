"""Argument types shared by the tool families, with the descriptions the agent reads in the schema."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tools.errors import InvalidInput
from workflows.domain.names import NAME_MAX, name_problem, suggest_name

ProjectName = Annotated[
    str, Field(description=f"Project name: lowercase DNS label, at most {NAME_MAX} characters.", max_length=200)
]
AppName = Annotated[
    str, Field(description=f"App name within the project: lowercase DNS label, at most {NAME_MAX} characters.",
               max_length=200)
]


Wait = Annotated[int | None, Field(ge=0, le=300, description="Seconds to wait for the release while reporting "
                                                             "progress (default 60); 0 returns at once.")]
ShutdownGrace = Annotated[int | None, Field(ge=1, le=600, description="Seconds the app gets to stop after SIGTERM "
                                                                      "before it is killed (default 30).")]
IdempotencyKey = Annotated[str | None, Field(description="Retrying with the same key returns the first call's "
                                                         "result and starts nothing new; the same key with other "
                                                         "arguments is refused (use a new key for a new request).",
                                             max_length=128)]


def check_name(field: str, value: str) -> str:
    """Validate a platform name here rather than in the schema, so the error names the fix."""
    problem = name_problem(value)
    if problem:
        raise InvalidInput(field, f"{value!r} {problem}", f"use a name like {suggest_name(value)!r}")
    return value
