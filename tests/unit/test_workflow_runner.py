"""The worker's sandbox runner (decision 0023): only the platform's own package passes through, and every
registered workflow still validates in the SDK's default sandbox, which re-imports and restricts it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from mcp_server.worker import WORKFLOW_RUNNER, WORKFLOWS


def test_worker_passes_through_only_the_platforms_workflow_modules() -> None:
    assert isinstance(WORKFLOW_RUNNER, SandboxedWorkflowRunner)
    added = WORKFLOW_RUNNER.restrictions.passthrough_modules - SandboxRestrictions.default.passthrough_modules
    assert added == {"workflows"}
    assert not WORKFLOW_RUNNER.restrictions.passthrough_all_modules


@pytest.mark.parametrize("cls", WORKFLOWS, ids=lambda c: c.__name__)
async def test_every_workflow_validates_in_the_default_sandbox(cls: type) -> None:
    SandboxedWorkflowRunner().prepare_workflow(workflow._Definition.must_from_class(cls))


async def test_the_default_sandbox_refuses_a_non_deterministic_call(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a workflow module that reads the clock at import is refused."""
    (tmp_path / "sandbox_probe_clock.py").write_text(
        "import datetime\nfrom temporalio import workflow\nSTAMP = datetime.datetime.now()\n\n"
        "@workflow.defn(name='probe')\nclass Probe:\n    @workflow.run\n    async def run(self) -> None:\n"
        "        return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module("sandbox_probe_clock")
    try:
        with pytest.raises(Exception, match="datetime"):
            SandboxedWorkflowRunner().prepare_workflow(workflow._Definition.must_from_class(probe.Probe))
    finally:
        sys.modules.pop("sandbox_probe_clock", None)
