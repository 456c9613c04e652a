"""The platform harness (`mcp_server.devenv.platform`) as the tests run it, and what only tests need: `ok()`
for tool results, and the fake Longhorn beside every platform on the testbed (no storage controller runs
there)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.types import CallToolResult

from mcp_server.devenv import platform
from mcp_server.devenv.processes import ManagedProcess
from mcp_server.settings import Settings
from tests.fakes.fake_longhorn import fake_longhorn


def ok(r: CallToolResult) -> dict[str, Any]:
    """The structured result of a tool call that must have succeeded (else the tool's error text fails it)."""
    assert not r.is_error, r.content[0].text  # type: ignore[union-attr]
    content: dict[str, Any] | None = r.structured_content
    assert content is not None
    return content


@asynccontextmanager
async def running_platform(settings: Settings, *, start_worker: bool = True) -> AsyncIterator[platform.Platform]:
    """`mcp_server.devenv.platform.running_platform` with the fake Longhorn beside it."""
    async with platform.running_platform(settings, start_worker=start_worker, beside=[fake_longhorn]) as p:
        yield p


def worker_process(settings: Settings, run_dir: Path, name: str) -> ManagedProcess:
    """`deploy-mcp worker` as its own process on exactly these settings, stopped with SIGKILL (a worker that
    dies: no graceful shutdown, its activities lost mid-flight)."""
    env = dict(os.environ) | platform.settings_env(settings) | {"DEPLOY_MCP_STATE_DIR": str(run_dir)}
    exe = Path(sys.executable).parent / "deploy-mcp"
    return ManagedProcess(name, [str(exe), "worker"], run_dir, env=env, stop_signal=signal.SIGKILL)
