"""A worker process for the shutdown tests: the real volume workflow and store activity, a `volume_create`
that takes `SLOW_SECONDS` (and leaves `started`/`finished` files in the marker directory, so the test sees
when it runs and how often), all run by the worker's own `run_until_signalled` (health endpoints, the drain on
SIGTERM). `deploy-mcp worker` itself needs a cluster; this is the same loop without one.

    python -m tests.support.slow_volume_worker MARKER_DIR   (settings from the environment)
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.worker import Worker

from mcp_server.cli import exit_without_finalizing
from mcp_server.settings import load_settings
from mcp_server.store import PgStore
from mcp_server.temporal import connect
from mcp_server.worker import run_until_signalled
from workflows.activities.volume import VolumeActivities
from workflows.domain.volume_contract import VolumeOp, VolumeResult
from workflows.volume import VolumeWorkflow

SLOW_SECONDS = 4.0


def activities(markers: Path, store: PgStore) -> list[Any]:
    @activity.defn(name="ensure_namespace")
    async def ensure_namespace(inp: Any) -> list[str]:
        return []

    @activity.defn(name="volume_create")
    async def volume_create(op: VolumeOp) -> VolumeResult:
        (markers / f"started-{uuid.uuid4().hex[:6]}").touch()
        for _ in range(int(SLOW_SECONDS * 10)):
            activity.heartbeat()
            await asyncio.sleep(0.1)
        (markers / f"finished-{uuid.uuid4().hex[:6]}").touch()
        return VolumeResult(status="bound", refs=[f"PersistentVolumeClaim/{op.spec.namespace}/{op.spec.claim}"])

    return [ensure_namespace, volume_create, VolumeActivities(None, store).volume_record]  # type: ignore[arg-type]


async def main(markers: Path) -> None:
    settings = load_settings()
    assert settings.database.url
    store = await PgStore.open(settings.database.url, min_size=1, max_size=2)
    try:
        client = await connect(settings)
        w = Worker(client, task_queue=settings.temporal.task_queue, workflows=[VolumeWorkflow],
                   activities=activities(markers, store),
                   graceful_shutdown_timeout=timedelta(seconds=settings.worker.shutdown_grace_seconds))
        await run_until_signalled(w, store, settings)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
    exit_without_finalizing(0)
