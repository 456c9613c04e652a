"""set_backup_policy's schedule: five fields of standard cron syntax, nothing else (it reaches a Longhorn
RecurringJob and the volume workflow's id)."""

from __future__ import annotations

import pytest

from tools.volumes import _CRON


@pytest.mark.parametrize("schedule", ["0 3 * * *", "*/15 * * * *", "0 0 1,15 * MON-FRI", "30 2 ? JAN-MAR SUN"])
def test_cron_expressions_are_accepted(schedule: str) -> None:
    assert _CRON.match(schedule)


@pytest.mark.parametrize("schedule", ["$(id) * * * *", "0 3 * * * *", "0 3 * *", "0 3 * * `reboot`",
                                      "0 3 * * ;rm", "0 3 * * *\n0 4 * * *", "０ 3 * * *"])
def test_anything_else_is_refused(schedule: str) -> None:
    assert not _CRON.match(schedule)
