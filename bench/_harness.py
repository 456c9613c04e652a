"""Shared by the bench scripts: the platform on embedded services and the testbed, in one process, with the
fake Longhorn beside it as in the tests (no storage controller runs on the testbed)."""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from mcp_server.devenv.embedded import EmbeddedPostgres, TemporalDevServer, Testbed
from mcp_server.devenv.platform import Platform, platform_settings, running_platform
from mcp_server.store import migrate
from tests.fakes.fake_longhorn import fake_longhorn


def quiet() -> None:
    """Bench output is the table: request logs of httpx (set to INFO by the MCP SDK's logging) are noise."""
    for name in ("httpx", "mcp", "temporalio"):
        logging.getLogger(name).setLevel(logging.WARNING)


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@contextmanager
def services() -> Iterator[tuple[str, str, Testbed]]:
    """Postgres + Temporal dev server in a temp dir, and the testbed (started here unless it already runs)."""
    work = Path(tempfile.mkdtemp(prefix="deploy-mcp-bench-"))
    os.chmod(work, 0o755)  # noqa: S103 - the embedded Postgres runs as its own user
    pg, temporal, tb = EmbeddedPostgres(work / "pg"), TemporalDevServer(work / "temporal"), Testbed()
    started_testbed = False
    try:
        url, address = pg.start(), temporal.start()
        if not tb.running()["kubelet"]:
            tb.build()
            tb.down()
            tb.up(node=True, nodes=2)
            started_testbed = True
        yield url, address, tb
    finally:
        if started_testbed:
            tb.down()
        temporal.stop()
        pg.stop()


@asynccontextmanager
async def platform(url: str, address: str, tb: Testbed, *, start_worker: bool = True,
                   **overrides: object) -> AsyncIterator[Platform]:
    await migrate(url)
    settings = platform_settings(url, address, tb, **overrides)
    async with running_platform(settings, start_worker=start_worker, beside=[fake_longhorn]) as p:
        yield p
