"""The build workflow's input, result and the messages between its activities (`BuildInput`, `BuildOutput`,
`BuildStarted`, `BuildDone`): explicit types, so fields can be added without breaking running workflows."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from workflows.domain.diagnosis import Failure
from workflows.domain.specs import Msg


class BuildInput(Msg):
    """Build one commit of an app's repository into `<image_repo>:<sha>`."""

    tenant: str
    project: str
    app: str
    app_id: UUID
    deployment_id: UUID | None = None
    git_url: str
    commit_sha: str
    subdir: str = ""
    builder: Literal["auto", "dockerfile", "railpack"] = "auto"
    image_repo: str  # <registry>/<tenant>/<app>
    timeout_seconds: int = 1800
    secrets_version: int = 0  # the app's secrets the build may read (RUN --mount=type=secret / Railpack)


class BuildOutput(Msg):
    build_id: UUID | None = None
    image: str | None = None  # <repo>@<digest>
    digest: str | None = None
    reused: bool = False
    failure: Failure | None = None


class BuildStarted(Msg):
    build_id: UUID
    reused_digest: str | None = None
    request: BuildInput


class BuildDone(Msg):
    build_id: UUID
    status: Literal["succeeded", "failed"]
    digest: str | None = None
    image: str | None = None
    failed_step: str | None = None
    error: str | None = None
    last_lines: list[str] = []
