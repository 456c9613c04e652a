"""The database workflow's input and results: explicit message types, so fields can be added without breaking
running workflows. No password ever travels in them (workflow history is not a secret store): the activities
read the sealed password from the store by `database_id` and open it there. Pure."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from workflows.domain.database_spec import DatabaseSpec
from workflows.domain.specs import Msg

DatabaseOpName = Literal["create", "rotate", "delete", "backup", "restore"]


class DatabaseOp(Msg):
    """One change to a database, carried out by the database workflow."""

    op: DatabaseOpName
    database_id: UUID
    spec: DatabaseSpec
    backup_name: str | None = None  # backup: the dump to take; restore: the safety dump taken first
    restore_from: str | None = None  # restore: the dump to restore
    source_database_id: UUID | None = None  # restore: the dump's database, when another
    backup_kind: Literal["manual", "safety", "final"] = "manual"
    keep_volume: bool = False  # delete: leave the claim (and its data) in place
    timeout_seconds: int = 300


class DatabaseResult(Msg):
    status: str  # ready, rotated, deleted, backed-up, failed
    refs: list[str] = []
    message: str | None = None
    engine: str | None = None  # create: the engine it runs on (chosen from the served APIs)


class DatabaseOutcome(Msg):
    op: DatabaseOp
    result: DatabaseResult
