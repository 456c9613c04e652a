"""The delete workflow's input (`DeleteAppInput`): an explicit message type, shared by the workflow and the tool
that starts it."""

from __future__ import annotations

from uuid import UUID

from workflows.domain.specs import Msg


class DeleteAppInput(Msg):
    app_id: UUID
    namespace: str
    app: str
