"""The phases the real deploy workflow records, on a real Temporal dev server with stand-in activities
registered under the real activity names: for every combination of superseding, building, deploy or
(cold, warm) rollback and recreate, ending in success, or failed or cancelled inside each activity it runs,
the progress a waiting tool reports for that sequence is reported at every change, strictly increases and
ends at the total, and the planned path counts 0, 1, ..., total."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tools.progress import ReleaseProgress
from workflows.deploy import DeployWorkflow
from workflows.domain.build_contract import BuildInput, BuildOutput
from workflows.domain.deploy_contract import DeployInput, Switched
from workflows.domain.diagnosis import Failure
from workflows.domain.phases import TERMINAL_PHASES, Phase
from workflows.domain.specs import AppConfig

DIGEST = "sha256:" + "d" * 64


@dataclass(frozen=True)
class Facts:
    superseding: bool
    builds: bool
    rollback: bool
    warm: bool
    recreate: bool


@dataclass
class Run:
    """One workflow run: its facts, where it ends, and what it recorded."""

    facts: Facts
    fail_at: str | None = None
    cancel_at: str | None = None
    phases: list[str] = field(default_factory=lambda: [Phase.PENDING.value])  # the row starts pending
    activities: list[str] = field(default_factory=list)
    blocked: asyncio.Event = field(default_factory=asyncio.Event)


class StandIns:
    """The deploy activities under their real names; each looks its run up by the calling workflow's id."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}

    async def step(self, name: str, inp: Any, result: Callable[[Run], Any]) -> Any:
        run = self.runs[activity.info().workflow_id or ""]
        run.activities.append(name)
        if name in ("set_phase", "record_outcome"):
            run.phases.append(inp["phase"])
        elif name == run.cancel_at:
            run.blocked.set()
            while True:  # until the cancellation arrives with a heartbeat
                activity.heartbeat()
                await asyncio.sleep(0.05)
        elif name == run.fail_at and name != "run_build":
            raise ApplicationError(f"{name} failed", type="StandInFailure", non_retryable=True)
        out = result(run)
        switch = inp.get("switch", inp) if name in ("switch_service", "switch_if_ready") else {}
        if switch.get("deployment_id") and out is not None:  # the real switch writes `switching` beside its patch
            run.phases.append(Phase.SWITCHING.value)
        return out

    def all(self) -> list[Any]:
        def built(run: Run) -> BuildOutput:
            if run.fail_at == "run_build":
                return BuildOutput(build_id=uuid.uuid4(), failure=Failure(reason="BuildFailed", message="boom"))
            return BuildOutput(build_id=uuid.uuid4(), image=f"r/web@{DIGEST}", digest=DIGEST)

        results: dict[str, Callable[[Run], Any]] = {
            "set_phase": lambda r: None, "record_outcome": lambda r: None, "set_image": lambda r: None,
            "wait_workflows_closed": lambda r: None, "run_build": built, "release_ready": lambda r: r.facts.warm,
            "ensure_namespace": lambda r: [], "ensure_pull_secret": lambda r: [], "retire_releases": lambda r: [],
            "apply_release": lambda r: [], "wait_ready": lambda r: None,
            "switch_service": lambda r: Switched(previous_release=None, refs=[]),
            "switch_if_ready": lambda r: Switched(previous_release=None, refs=[]) if r.facts.warm else None,
            "prune_releases": lambda r: [], "scale_release": lambda r: True,
        }

        def stand_in(name: str, result: Callable[[Run], Any]) -> Any:
            @activity.defn(name=name)
            async def run(inp: Any) -> Any:
                return await self.step(name, inp, result)
            return run

        return [stand_in(name, result) for name, result in results.items()]


def deploy_input(facts: Facts) -> DeployInput:
    build = BuildInput(tenant="acme", project="shop", app="web", app_id=uuid.uuid4(), git_url="https://g/a/b",
                       commit_sha="c" * 40, image_repo="r/web") if facts.builds else None
    return DeployInput(
        deployment_id=uuid.uuid4(), app_id=uuid.uuid4(), tenant="acme", project="shop", app="web",
        namespace="dm-acme-shop-x", seq=1 if facts.rollback else 2, kind="rollback" if facts.rollback else "deploy",
        wait_for=["deploy/acme/shop/web/r1"] if facts.superseding else [], hostname="web-shop-acme.apps.test",
        image="" if facts.builds else f"r/web@{DIGEST}", image_digest="" if facts.builds else DIGEST,
        build=build, config=AppConfig(port=8080, strategy="recreate" if facts.recreate else "blue-green"),
        image_pull_secret="deploy-mcp-registry",
    )


ALL_FACTS = [Facts(*flags) for flags in itertools.product([False, True], repeat=5)
             if not (flags[3] and not flags[2]) and not (flags[1] and flags[2])]


@pytest.fixture
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


async def play(client: Client, queue: str, stand_ins: StandIns, run: Run) -> None:
    wf_id = f"phases-{uuid.uuid4()}"
    stand_ins.runs[wf_id] = run
    handle = await client.start_workflow(DeployWorkflow.run, deploy_input(run.facts), id=wf_id, task_queue=queue)
    if run.cancel_at is None:
        await handle.result()
        return
    await asyncio.wait_for(run.blocked.wait(), 30)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()


async def play_all(client: Client, runs: list[Run], parallel: int = 16) -> None:
    stand_ins = StandIns()
    queue = f"phases-{uuid.uuid4().hex[:6]}"
    slots = asyncio.Semaphore(parallel)

    async def one(run: Run) -> None:
        async with slots:
            await play(client, queue, stand_ins, run)

    # Heartbeats (which carry a cancellation to the activity) go at once, not throttled for seconds; no
    # sandbox (it re-imports the workflow module for every run; test_deploy_workflow_logic runs it sandboxed).
    async with Worker(client, task_queue=queue, workflows=[DeployWorkflow], activities=stand_ins.all(),
                      workflow_runner=UnsandboxedWorkflowRunner(),
                      max_concurrent_activities=200, max_heartbeat_throttle_interval=timedelta(milliseconds=50),
                      default_heartbeat_throttle_interval=timedelta(milliseconds=50)):
        await asyncio.gather(*(one(r) for r in runs))


def check_progress(run: Run) -> None:
    """What a tool waiting on this run reports: it stops at the first outcome it sees."""
    facts = run.facts
    progress = ReleaseProgress.of(rollback=facts.rollback, builds=facts.builds, recreate=facts.recreate)
    values = [v for v in (progress.advance(p) for p in run.phases) if v is not None]
    first_outcome = next(i for i, p in enumerate(run.phases) if p in TERMINAL_PHASES)
    assert len(values) == first_outcome + 1, f"unreported phase in {run.phases}: {values}"
    assert all(a < b for a, b in itertools.pairwise(values)), (run.phases, values)
    assert values[0] == 0 and values[-1] == progress.total, (run.phases, values, progress.total)


async def test_every_run_reports_monotonic_progress(client: Client) -> None:
    successes = [Run(f) for f in ALL_FACTS]
    await play_all(client, successes)
    runs = []
    for done in successes:
        # each step before the outcome is a point where the run can fail or be cancelled
        points = list(dict.fromkeys(done.activities[:done.activities.index("record_outcome")]))
        points = [p for p in points if p not in ("set_phase", "set_image")]
        runs += [Run(done.facts, fail_at=p) for p in points]
        runs += [Run(done.facts, cancel_at=p) for p in points]
    # after the outcome: a refused clean-up records `failed` over `succeeded` (the store lets it); the waiting
    # tool has stopped at the first outcome, and a later one never counts backwards
    runs += [Run(f, fail_at="prune_releases") for f in ALL_FACTS]
    await play_all(client, runs)
    for run in successes + runs:
        check_progress(run)
    assert {p for r in successes + runs for p in r.phases} == set(Phase) - {Phase.SUPERSEDED}
    ends = {(r.fail_at is not None, r.cancel_at is not None, r.phases[-1]) for r in runs + successes}
    assert ends == {(False, False, "succeeded"), (True, False, "failed"), (False, True, "cancelled")}
    late = [r.phases[-2:] for r in runs if r.fail_at == "prune_releases"]
    assert late == [["succeeded", "failed"]] * len(ALL_FACTS)


async def test_the_planned_path_counts_one_step_at_a_time(client: Client) -> None:
    plain = [Run(f) for f in ALL_FACTS if not f.superseding and not f.warm]
    await play_all(client, plain)
    for run in plain:
        f = run.facts
        progress = ReleaseProgress.of(rollback=f.rollback, builds=f.builds, recreate=f.recreate)
        assert [progress.advance(p) for p in run.phases] == [float(i) for i in range(len(run.phases))], run.phases
        assert run.phases[-1] == "succeeded" and progress.total == len(run.phases) - 1
