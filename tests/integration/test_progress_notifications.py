"""Progress notifications over a real MCP client (in-process, `auto` and `legacy` modes): `create_app`,
`deploy` and `rollback` wait on the real deploy workflow (a real Temporal dev server, a real Postgres, the
real store activities: set_phase, record_outcome, wait_workflows_closed) while stand-ins registered under the
cluster activities' names step it through its phases. Whatever the run (a plain release, a failure, a
superseded release and the one superseding it, a warm rollback), the client receives progress that strictly
increases, one total per call, and the last notification is the total with the outcome's phase."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.support.platform import ok
from tests.support.stand_ins import Cluster, StandInImages
from tools.context import PlatformConfig, Principal
from workflows.activities.deploy import DeployActivities
from workflows.adapters.kube import Kube
from workflows.deploy import DeployWorkflow
from workflows.domain.secretbox import SecretBox

pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])
SCOPES = frozenset({"apps:read", "apps:write"})


@dataclass
class Harness:
    store: PgStore
    workflows: TemporalWorkflows
    cluster: Cluster
    # the workflow ids are business keys (deploy/<tenant>/...) on a Temporal server the whole session shares
    tenant: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:6]}")

    def client(self, mode: str) -> Client:
        deps = ServerDeps(store=self.store, config=PlatformConfig(apps_domain="apps.test", rollback_window_seconds=1,
                                                                 progress_wait_seconds=60),
                          workflows=self.workflows, images=StandInImages())
        principal = Principal(self.tenant, "agent", SCOPES, "memory")
        return Client(build_server(deps, transport="memory", principal=principal), mode=mode)


@pytest.fixture
async def harness(store: PgStore, temporal_address: str) -> AsyncIterator[Harness]:
    temporal = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)
    queue = f"progress-{uuid.uuid4().hex[:8]}"
    # the store's own activities, for real: the phases the tool polls are the ones the workflow recorded
    real = DeployActivities(cast(Kube, None), store, SecretBox(Fernet.generate_key()), temporal=temporal)
    cluster = Cluster()
    worker = Worker(temporal, task_queue=queue, workflows=[DeployWorkflow],
                    activities=[real.set_phase, real.record_outcome, real.set_image, real.wait_workflows_closed,
                                *cluster.activities()],
                    max_heartbeat_throttle_interval=timedelta(milliseconds=100),
                    default_heartbeat_throttle_interval=timedelta(milliseconds=100))
    async with worker:
        yield Harness(store, TemporalWorkflows(temporal, queue), cluster)


@dataclass
class Progress:
    notes: list[tuple[float, float | None, str]] = field(default_factory=list)

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.notes.append((progress, total, message or ""))

    def check(self, outcome: str) -> list[str]:
        """Strictly increasing, one total, ending at it with `outcome`; returns the phases reported."""
        values = [p for p, _, _ in self.notes]
        assert values and all(a < b for a, b in itertools.pairwise(values)), self.notes
        totals = {t for _, t, _ in self.notes}
        assert len(totals) == 1 and None not in totals, self.notes
        assert values[-1] == totals.pop(), self.notes
        phases = [m.rsplit(": ", 1)[-1] for _, _, m in self.notes]
        assert phases[-1] == outcome, self.notes
        return phases


def web(tag: str) -> dict[str, Any]:
    return {"image": f"registry.test/team/web:{tag}"}


async def test_release_failure_and_warm_rollback_report_increasing_progress(harness: Harness, mode: str) -> None:
    harness.cluster.fail.add("web-r2")
    created, failed, second, back = Progress(), Progress(), Progress(), Progress()
    async with harness.client(mode) as c:
        r1 = ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "source": web("v1"),
                                                 "port": 8080}, progress_callback=created))
        r2 = ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "source": web("v2")},
                                  progress_callback=failed))
        r3 = ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "source": web("v3")},
                                  progress_callback=second))
        rb = ok(await c.call_tool("rollback", {"project": "shop", "app": "web"}, progress_callback=back))
    assert (r1["phase"], r2["phase"], r3["phase"], rb["phase"]) == ("succeeded", "failed", "succeeded", "succeeded")
    assert rb["release"] == "web-r1"
    assert created.check("succeeded")[0] == "pending" and created.notes[-1][:2] == (5, 5)
    assert "waiting" in failed.check("failed")
    second.check("succeeded")
    assert set(back.check("succeeded")) <= {"pending", "switching", "succeeded"}  # warm: only the switch
    assert back.notes[-1][:2] == (4, 4)  # planned: pending, release, waiting, switching; warm, it skips two


async def test_a_superseded_release_and_the_one_superseding_it_both_count_forward(harness: Harness,
                                                                                   mode: str) -> None:
    harness.cluster.hold.add("web-r2")
    first, slow, fast = Progress(), Progress(), Progress()
    async with harness.client(mode) as c:
        ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "source": web("v1"), "port": 8080},
                             progress_callback=first))

        async def supersede() -> dict[str, Any]:
            await asyncio.wait_for(harness.cluster.held.wait(), 30)  # r2 is waiting for Ready, forever
            return ok(await c.call_tool("deploy", {"project": "shop", "app": "web", "source": web("v3")},
                                        progress_callback=fast))

        r2, r3 = await asyncio.gather(
            c.call_tool("deploy", {"project": "shop", "app": "web", "source": web("v2")}, progress_callback=slow),
            supersede())
    assert ok(r2)["phase"] == "cancelled" and r3["phase"] == "succeeded"
    first.check("succeeded")
    assert "waiting" in slow.check("cancelled")
    assert fast.check("succeeded")[:2] == ["pending", "superseding"]
    assert 0 < fast.notes[1][0] < 1  # not a step the record plans: between pending and the next one
