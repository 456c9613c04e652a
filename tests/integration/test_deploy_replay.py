"""Histories the deploy workflow wrote before a change replay on today's code (a worker upgraded mid-deploy),
and today's own runs replay too: the code branches on `workflow.patched`, never on what changed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from tests.integration.test_deploy_phases import Facts, Run, StandIns, deploy_input
from workflows.deploy import LOCAL_STEPS, LOCAL_SWITCH, WARM_SWITCH, DeployWorkflow

HISTORIES = Path(__file__).parent / "histories"


def replayer() -> Replayer:
    return Replayer(workflows=[DeployWorkflow], data_converter=pydantic_data_converter)


@pytest.mark.parametrize("name", ["deploy-build", "rollback-warm", "deploy-recreate-failed"])
async def test_a_history_from_before_local_steps_replays(name: str) -> None:
    text = (HISTORIES / f"{name}.json").read_text()
    assert LOCAL_STEPS not in text  # recorded before the patch: the replay takes the old branch
    result = await replayer().replay_workflow(WorkflowHistory.from_json(f"hist-{name}", text))
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize("name", ["local-steps-deploy-build", "local-steps-rollback-warm"])
async def test_a_history_from_before_the_local_switch_replays(name: str) -> None:
    text = (HISTORIES / f"{name}.json").read_text()
    assert LOCAL_STEPS in text and LOCAL_SWITCH not in text  # the switch was still a regular activity
    assert '"switch_service"' in text
    result = await replayer().replay_workflow(WorkflowHistory.from_json(f"hist-{name}", text))
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize("name", ["local-switch-deploy-build", "local-switch-rollback-warm",
                                  "local-switch-rollback-cold"])
async def test_a_history_from_before_the_warm_switch_replays(name: str) -> None:
    text = (HISTORIES / f"{name}.json").read_text()
    assert LOCAL_SWITCH in text and WARM_SWITCH not in text  # `switching` was a step of its own
    result = await replayer().replay_workflow(WorkflowHistory.from_json(f"hist-{name}", text))
    assert result.replay_failure is None, result.replay_failure


async def test_a_run_of_today_replays_and_runs_its_short_steps_locally(temporal_address: str) -> None:
    client = await Client.connect(temporal_address, data_converter=pydantic_data_converter)
    stand_ins, queue = StandIns(), f"replay-{uuid.uuid4().hex[:6]}"
    facts = Facts(superseding=False, builds=False, rollback=True, warm=True, recreate=False)
    wf_id = f"replay-{uuid.uuid4()}"
    stand_ins.runs[wf_id] = Run(facts)
    async with Worker(client, task_queue=queue, workflows=[DeployWorkflow], activities=stand_ins.all()):
        handle = await client.start_workflow(DeployWorkflow.run, deploy_input(facts), id=wf_id, task_queue=queue)
        await handle.result()
    history = await handle.fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    # the warm rollback up to the switch (switch_if_ready, which writes the phase too, then record_outcome)
    # runs in its first workflow task: no activity is scheduled before the Service is switched
    assert scheduled == ["retire_releases", "prune_releases"], scheduled
    markers = [e.marker_recorded_event_attributes for e in history.events
               if e.HasField("marker_recorded_event_attributes")]
    assert [m.marker_name for m in markers].count("core_local_activity") == 2, markers
    for patch in (LOCAL_STEPS, WARM_SWITCH):  # a warm switch never asks for LOCAL_SWITCH
        assert any(patch.encode() in p.data for m in markers for ps in m.details.values() for p in ps.payloads)
    completed = [e for e in history.events if e.HasField("workflow_task_completed_event_attributes")]
    first_activity = next(i for i, e in enumerate(history.events)
                          if e.HasField("activity_task_scheduled_event_attributes"))
    assert sum(1 for e in completed if e.event_id < history.events[first_activity].event_id) == 1
    result = await replayer().replay_workflow(history)
    assert result.replay_failure is None, result.replay_failure
