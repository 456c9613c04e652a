"""The progress a tool reports while it waits on a release: numbers that only ever increase, as MCP requires
of progress notifications, over a total that counts the steps this release is planned to take.

Beside `tools/releases.py` (its one user) because it is the part of waiting that is pure arithmetic over
phases, tested over every phase sequence the deploy workflow can produce (tests/unit/test_progress.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.domain.phases import STEPS, TERMINAL_PHASES, Phase, planned_steps


def _positions(planned: tuple[Phase, ...]) -> dict[Phase, float]:
    """Planned step i is at i, every outcome at len(planned) (the total). A step the plan left out (the
    record could not tell it would run) sits between its planned neighbours, so it still counts forward."""
    at: dict[Phase, float] = {}
    unplanned: list[Phase] = []
    last = -1

    def place_unplanned(before: int) -> None:
        for k, phase in enumerate(unplanned, 1):
            at[phase] = round(before + k / (len(unplanned) + 1), 3)
        unplanned.clear()

    for phase in STEPS:
        if phase in planned:
            place_unplanned(last)
            last += 1
            at[phase] = float(last)
        else:
            unplanned.append(phase)
    place_unplanned(last)
    at.update(dict.fromkeys(TERMINAL_PHASES, float(len(planned))))
    return at


@dataclass
class ReleaseProgress:
    """Turns the phases a waiting tool sees into progress notifications. It may miss phases (it polls) and
    see a late write of an earlier one: `advance` answers a number only when it is above the last one."""

    planned: tuple[Phase, ...]
    reported: float | None = None
    _at: dict[Phase, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._at = _positions(self.planned)

    @classmethod
    def of(cls, *, rollback: bool, builds: bool, recreate: bool) -> ReleaseProgress:
        return cls(planned_steps(rollback=rollback, builds=builds, recreate=recreate))

    @property
    def total(self) -> float:
        """The planned steps and the outcome: a release that succeeds through its plan reports 0 .. total."""
        return float(len(self.planned))

    def advance(self, phase: str) -> float | None:
        """The progress to report for `phase`, or None when it would not move forward (the same phase seen
        again, an earlier one, or a phase this server does not know)."""
        try:
            at = self._at[Phase(phase)]
        except ValueError:
            return None
        if self.reported is not None and at <= self.reported:
            return None
        self.reported = at
        return at
