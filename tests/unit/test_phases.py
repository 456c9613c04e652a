"""`Phase` (`workflows/domain/phases.py`): its values are the strings the database rows, workflow histories and
MCP results already hold; the terminal set is the one the store has always refused to move a release out of;
the steps are in the order the deploy workflow records them; phases travel through the workflow contracts
as plain strings and come back as `Phase`."""

from __future__ import annotations

import json
import uuid

from temporalio.contrib.pydantic import pydantic_data_converter

from workflows.domain.deploy_contract import DeployResult, PhaseUpdate
from workflows.domain.phases import STEPS, TERMINAL_PHASES, Phase, planned_steps


def test_values_are_the_strings_stored_before() -> None:
    assert [p.value for p in Phase] == [
        "pending", "superseding", "building", "namespace", "stopping-previous", "release", "waiting", "switching",
        "succeeded", "failed", "cancelled", "superseded"]
    assert all(p == p.value and str(p) == p.value and f"{p}" == p.value for p in Phase)


def test_the_terminal_set_is_unchanged_and_disjoint_from_the_steps() -> None:
    assert frozenset({"succeeded", "failed", "cancelled", "superseded"}) == TERMINAL_PHASES
    assert not TERMINAL_PHASES & set(STEPS) and set(STEPS) | TERMINAL_PHASES == set(Phase)
    assert STEPS[0] is Phase.PENDING and STEPS[-1] is Phase.SWITCHING


def test_planned_steps_keep_the_workflow_order() -> None:
    everything = planned_steps(rollback=False, builds=True, recreate=True)
    assert everything == tuple(p for p in STEPS if p is not Phase.SUPERSEDING)
    assert planned_steps(rollback=True, builds=False, recreate=False) == (
        Phase.PENDING, Phase.RELEASE, Phase.WAITING, Phase.SWITCHING)


def test_phases_cross_the_data_converter_as_plain_strings() -> None:
    update = PhaseUpdate(deployment_id=uuid.uuid4(), phase=Phase.STOPPING_PREVIOUS)
    [payload] = pydantic_data_converter.payload_converter.to_payloads([update])
    assert json.loads(payload.data)["phase"] == "stopping-previous"
    [back] = pydantic_data_converter.payload_converter.from_payloads([payload], [PhaseUpdate])
    assert back == update and back.phase is Phase.STOPPING_PREVIOUS
    # a result recorded by the workflow before `Phase` existed reads back the same
    old = DeployResult.model_validate_json(json.dumps({"deployment_id": str(uuid.uuid4()), "phase": "failed",
                                                       "release": "web-r2"}))
    assert old.phase is Phase.FAILED
