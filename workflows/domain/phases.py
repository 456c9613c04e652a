"""The phases of a release: the one `Phase` the deploy workflow records, the store keeps in
`deployments.phase` and the tools report, with the steps a release goes through in order.

A `StrEnum`, not a `Literal`: its members iterate in the order the workflow moves through them (what the
tools count progress along and the terminal set is derived from), a phase read back as text parses with
`Phase(text)`, and every member *is* its string, so the database column, the JSON in workflow histories
(running workflows replay unchanged) and every MCP result hold exactly the values they held before.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Declared in the order the deploy workflow records them: its steps up to the switch, then the outcomes.
    A run skips the steps it has no need of and may end in an outcome at any step."""

    PENDING = "pending"  # recorded; the workflow has not started a step yet
    SUPERSEDING = "superseding"  # waiting until the releases this one supersedes have cleaned up
    BUILDING = "building"  # a git source: the commit is being built (or its earlier build reused)
    NAMESPACE = "namespace"  # namespace and guardrails (a rollback skips it)
    STOPPING_PREVIOUS = "stopping-previous"  # recreate: every other release stops first
    RELEASE = "release"  # the release's Secret and Deployment
    WAITING = "waiting"  # until its pods are Ready
    SWITCHING = "switching"  # the app's Service to this release
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"  # no workflow records it now; a row holding it stays final, as it always was


_ALL = tuple(Phase)

STEPS: tuple[Phase, ...] = _ALL[: _ALL.index(Phase.SWITCHING) + 1]
"""The phases a release passes through while it rolls out, in workflow order."""

TERMINAL_PHASES: frozenset[Phase] = frozenset(_ALL).difference(STEPS)
"""Outcomes: a release in one of them never moves again (the store refuses to set another phase)."""


def planned_steps(*, rollback: bool, builds: bool, recreate: bool) -> tuple[Phase, ...]:
    """The steps the deploy workflow takes for a release, as far as its record tells before it runs.

    Not planned, since the record cannot tell: superseding (the releases still rolling out when this one was
    claimed) and a rollback inside the window skipping the release and wait steps (decided by the workflow)."""
    skipped = {Phase.SUPERSEDING}
    if not builds:
        skipped.add(Phase.BUILDING)
    if rollback:
        skipped.add(Phase.NAMESPACE)
    if not recreate:
        skipped.add(Phase.STOPPING_PREVIOUS)
    return tuple(p for p in STEPS if p not in skipped)
