"""Progress while a tool waits on a release (`tools/progress.py`, `tools.releases.release_progress`): over every
phase sequence the deploy workflow can produce (superseding, building, namespace, stopping the previous
release, a cold or warm rollback; success, failure or cancellation after any step) each phase change is
reported, the numbers strictly increase and the last one is the total; the total counts the steps the
release's record plans; repeated, late or unknown phases are never reported backwards."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tools.progress import ReleaseProgress
from tools.records import DeploymentRecord
from tools.releases import release_progress
from workflows.domain.phases import TERMINAL_PHASES, Phase

P = Phase


def workflow_steps(*, superseding: bool, builds: bool, rollback: bool, warm: bool, recreate: bool) -> list[Phase]:
    """The phases `DeployWorkflow.run` records, in order, for a run with these facts (its branches, one by one)."""
    steps = [P.PENDING]
    if superseding:
        steps.append(P.SUPERSEDING)
    if builds:
        steps.append(P.BUILDING)
    if not rollback:
        steps.append(P.NAMESPACE)
    if not warm:
        if recreate:
            steps.append(P.STOPPING_PREVIOUS)
        steps += [P.RELEASE, P.WAITING]
    return [*steps, P.SWITCHING]


def runs() -> Iterator[tuple[dict[str, bool], list[Phase]]]:
    """Every run: each combination of facts, ending in success, or failed or cancelled after any step."""
    for superseding, builds, rollback, warm, recreate in itertools.product([False, True], repeat=5):
        if (warm and not rollback) or (builds and rollback):
            continue  # only a rollback finds its release warm; a rollback never builds
        facts = {"superseding": superseding, "builds": builds, "rollback": rollback, "warm": warm,
                 "recreate": recreate}
        steps = workflow_steps(**facts)
        yield facts, [*steps, P.SUCCEEDED]
        for i in range(1, len(steps) + 1):
            yield facts, [*steps[:i], P.FAILED]
            yield facts, [*steps[:i], P.CANCELLED]


RUNS = list(runs())


def reported(progress: ReleaseProgress, seen: list[str]) -> list[float]:
    return [x for x in (progress.advance(p) for p in seen) if x is not None]


def strictly_increasing(xs: list[float]) -> bool:
    return all(a < b for a, b in itertools.pairwise(xs))


def progress_for(facts: dict[str, bool]) -> ReleaseProgress:
    return ReleaseProgress.of(rollback=facts["rollback"], builds=facts["builds"], recreate=facts["recreate"])


def test_there_are_runs_of_every_kind() -> None:
    assert len(RUNS) > 100
    ends = {seq[-1] for _, seq in RUNS}
    assert ends == {P.SUCCEEDED, P.FAILED, P.CANCELLED}
    assert {p for _, seq in RUNS for p in seq} == set(Phase) - {P.SUPERSEDED}  # superseded: never recorded


def test_every_phase_change_is_reported_forward_and_ends_at_the_total() -> None:
    for facts, seq in RUNS:
        progress = progress_for(facts)
        values = reported(progress, list(seq))
        assert len(values) == len(seq), f"a phase change went unreported in {seq}: {values}"
        assert strictly_increasing(values), (seq, values)
        assert values[0] == 0 and values[-1] == progress.total, (seq, values)
        assert all(0 <= v <= progress.total for v in values)


def test_a_poller_that_misses_phases_still_counts_forward() -> None:
    """The tool polls, so it sees any subsequence of the run (a retried call joins it midway)."""
    for facts, seq in RUNS:
        for n in range(1, len(seq) + 1):
            for seen in itertools.combinations(seq, n):
                values = reported(progress_for(facts), list(seen))
                assert len(values) == n and strictly_increasing(values), (seen, values)


def test_the_planned_path_counts_one_step_at_a_time_up_to_an_honest_total() -> None:
    """When the run takes exactly the steps the record plans, progress is 0, 1, ..., total."""
    for facts, seq in RUNS:
        if seq[-1] != P.SUCCEEDED or facts["superseding"] or facts["warm"]:
            continue
        progress = progress_for(facts)
        assert reported(progress, list(seq)) == [float(i) for i in range(len(seq))]
        assert progress.total == len(seq) - 1


def test_old_totals_stay_for_the_plain_deploy() -> None:
    """Same numbers as before for the path the old fixed list knew: pending 0 .. succeeded 5."""
    progress = ReleaseProgress.of(rollback=False, builds=False, recreate=False)
    seq = ["pending", "namespace", "release", "waiting", "switching", "succeeded"]
    assert reported(progress, seq) == [0, 1, 2, 3, 4, 5] and progress.total == 5


def test_repeated_late_and_unknown_phases_never_go_backwards() -> None:
    progress = ReleaseProgress.of(rollback=False, builds=True, recreate=True)
    seen = ["pending", "pending", "building", "namespace", "building", "no-such-phase", "release", "release",
            "stopping-previous", "waiting", "succeeded", "switching", "failed"]
    values = reported(progress, seen)
    assert strictly_increasing(values)
    assert values == [0, 1, 2, 4, 5, 7]  # pending, building, namespace, release, waiting, succeeded


def test_the_old_failure_mode_is_gone() -> None:
    """Before: `building` (not in the fixed list) reported 5/5, then `namespace` 1/5."""
    progress = ReleaseProgress.of(rollback=False, builds=True, recreate=False)
    values = reported(progress, ["pending", "building", "namespace"])
    assert values == [0, 1, 2] and progress.total == 6


@pytest.mark.parametrize("terminal", sorted(TERMINAL_PHASES))
def test_an_outcome_is_the_total_from_any_point(terminal: Phase) -> None:
    progress = ReleaseProgress.of(rollback=True, builds=False, recreate=False)
    assert reported(progress, ["pending", terminal]) == [0, progress.total]


def _record(**kw: Any) -> DeploymentRecord:
    now = datetime.now(UTC)
    base: dict[str, Any] = dict(
        id=uuid.uuid4(), app_id=uuid.uuid4(), seq=2, release_seq=2, kind="deploy", phase="pending",
        source={"image": "r/web:1"}, image="r/web", image_digest="sha256:" + "a" * 64, commit_sha=None,
        config={"port": 8080}, secrets_version=0, rollback_of=None, workflow_id="deploy/acme/shop/web/r2",
        idempotency_key=None, error=None, created_by="agent", created_at=now, finished_at=None, healthy_at=None)
    return DeploymentRecord(**(base | kw))


def test_the_plan_is_read_from_the_record_as_the_workflow_input_is() -> None:
    assert release_progress(_record()).planned == (P.PENDING, P.NAMESPACE, P.RELEASE, P.WAITING, P.SWITCHING)
    git = _record(source={"git": {"url": "https://git.example/a/b", "commit": "c" * 40}}, image_digest=None)
    assert P.BUILDING in release_progress(git).planned
    built = _record(source={"git": {"url": "https://git.example/a/b", "commit": "c" * 40}})  # digest known
    assert P.BUILDING not in release_progress(built).planned
    rollback = _record(kind="rollback", config={"port": 8080, "strategy": "recreate"})
    assert release_progress(rollback).planned == (P.PENDING, P.STOPPING_PREVIOUS, P.RELEASE, P.WAITING,
                                                  P.SWITCHING)
