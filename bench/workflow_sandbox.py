"""workflow_sandbox: what the workflow sandbox costs a warm rollback's deploy workflow (decision 0023).

The same DeployWorkflow, kind=rollback on a warm release, its steps instant stand-ins on this process's worker,
run start -> result on a real Temporal dev server with three runners: the SDK's default sandbox (which
re-imports the workflow module for every run), the platform's runner (`mcp_server.worker.WORKFLOW_RUNNER`: the
platform's modules passed through) and no sandbox; beside an empty workflow, the floor. Runs interleave, so
drift in the machine's load falls on every runner alike.

Run: .venv/bin/python bench/workflow_sandbox.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench._harness import EmptyWorkflow, Report, quiet
from mcp_server.devenv.embedded import TemporalDevServer
from mcp_server.worker import WORKFLOW_RUNNER
from workflows.deploy import DeployWorkflow
from workflows.domain.deploy_contract import DeployInput, Switched
from workflows.domain.specs import AppConfig

SWITCHED: list[float] = []


@activity.defn(name="switch_if_ready")
async def switch_if_ready(inp: Any) -> Switched | None:
    SWITCHED.append(time.perf_counter())
    return Switched(previous_release=None, refs=[])  # no previous release: no rollback window to wait out


@activity.defn(name="record_outcome")
async def record_outcome(inp: Any) -> None:
    return None


@activity.defn(name="retire_releases")
async def retire_releases(inp: Any) -> list[Any]:
    return []


@activity.defn(name="prune_releases")
async def prune_releases(inp: Any) -> list[str]:
    return []


STEPS = [switch_if_ready, record_outcome, retire_releases, prune_releases]


def rollback_input() -> DeployInput:
    return DeployInput(
        deployment_id=uuid.uuid4(), app_id=uuid.uuid4(), tenant="acme", project="shop", app="web",
        namespace="dm-acme-shop-x", seq=1, kind="rollback", hostname="web-shop-acme.apps.test",
        image="r/web@sha256:" + "a" * 64, image_digest="sha256:" + "a" * 64, config=AppConfig(port=8080))


async def main(runs: int) -> None:
    quiet()
    runners: dict[str, WorkflowRunner] = {
        "default sandbox": SandboxedWorkflowRunner(),
        "platform runner (own modules passed through)": WORKFLOW_RUNNER,
        "no sandbox": UnsandboxedWorkflowRunner(),
    }
    temporal = TemporalDevServer(Path(tempfile.mkdtemp(prefix="deploy-mcp-bench-")) / "temporal")
    address = temporal.start()
    try:
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        queues = {name: f"bench-sandbox-{i}-{uuid.uuid4().hex[:6]}" for i, name in enumerate(runners)}
        floor_queue = f"bench-empty-{uuid.uuid4().hex[:6]}"
        workers = [Worker(client, task_queue=queues[name], workflows=[DeployWorkflow], activities=STEPS,
                          workflow_runner=runner) for name, runner in runners.items()]
        workers.append(Worker(client, task_queue=floor_queue, workflows=[EmptyWorkflow]))
        times: dict[str, list[float]] = {name: [] for name in [*runners, "floor"]}
        switch: dict[str, list[float]] = {name: [] for name in runners}
        async with workers[0], workers[1], workers[2], workers[3]:
            for i in range(runs + 1):  # the first round warms every worker up and is not counted
                for name, queue in queues.items():
                    t = time.perf_counter()
                    await client.execute_workflow(DeployWorkflow.run, rollback_input(), id=f"bench-{uuid.uuid4()}",
                                                  task_queue=queue)
                    if i:
                        times[name].append(time.perf_counter() - t)
                        switch[name].append(SWITCHED[-1] - t)
                t = time.perf_counter()
                await client.execute_workflow(EmptyWorkflow.run, i, id=f"bench-empty-{uuid.uuid4()}",
                                              task_queue=floor_queue)
                if i:
                    times["floor"].append(time.perf_counter() - t)
    finally:
        temporal.stop()
    report = Report()
    for name in runners:
        report.add(f"start -> switch step called: {name}", switch[name])
    for name in runners:
        report.add(f"start -> result: {name}", times[name])
    report.add("floor: empty Temporal workflow", times["floor"])
    for name in runners:
        report.ratio(f"{name}, switch step called / floor", f"start -> switch step called: {name}",
                     ("floor: empty Temporal workflow",))
    report.print("a warm rollback's deploy workflow, its steps instant stand-ins")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    asyncio.run(main(ap.parse_args().runs))
