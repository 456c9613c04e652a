"""The custom-domain workflow's input and step result: explicit message types, so fields can be added without
breaking running workflows. Pure, shared by the workflow, its activities and the domain tools."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from workflows.domain.domains import DomainStatus
from workflows.domain.specs import Msg


class DomainInput(Msg):
    """One claim of a hostname by an app (the claim is the row id + its token: a takeover changes the token, and
    the old claim's workflow then ends by itself)."""

    domain_id: UUID
    token: str
    tenant: str
    project: str
    app: str
    namespace: str
    hostname: str
    deadline: datetime
    first_delay_seconds: float = 5.0
    max_backoff_seconds: float = 600.0
    recheck_seconds: float = 3600.0
    remove: bool = False
    checks_before_continue: int = 200  # continue-as-new after so many checks: the history stays small


class DomainStep(Msg):
    """What one check found and recorded. `gone`: the claim no longer exists (removed or taken over)."""

    status: DomainStatus | None
    gone: bool = False
    done: bool = False  # failed for good (unverified past its deadline): the workflow ends
    detail: str | None = None


class DomainClaimState(Msg):
    """What the store holds of a claim for one check: whether it still exists with this token, and since when
    it is verified."""

    exists: bool
    verified_at: datetime | None = None
