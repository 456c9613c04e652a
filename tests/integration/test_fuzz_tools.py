"""Fuzz over MCP, bounded and derandomized (the same calls every run): every tool of tools/list called with
arguments generated from its `inputSchema` and hostile values mixed in (tests/support/fuzz.py), through a real
`Client` in auto and legacy modes, on real Postgres, a real Temporal server and a real OCI registry. Each call:
no internal error, one audit row, and when refused no row written and no workflow started or cancelled.

FUZZ_EXAMPLES (calls per tool and mode, default 35: about 2,000 calls in all) and FUZZ_SEED (a seed instead of
derandomized) let bench/fuzz.py run it longer. `test_hostile_values_deep_in_valid_calls` is the regression list:
values a generated call rarely places deep in an otherwise valid one (each found a crash once).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter

from mcp_server.devenv.images import docker_registry
from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import ALL_SCOPES
from mcp_server.store import PgStore
from tests.support.fuzz import MIB, EmptyLogs, Fuzzer, RecordingWorkflows, fuzz_tools, new_task_queue, seed
from tools.context import PlatformConfig, Principal
from workflows.adapters.registry import OciRegistry
from workflows.domain.secretbox import SecretBox

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "35"))
SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    run_dir = Path(tempfile.mkdtemp(prefix="deploy-mcp-fuzz-registry-"))
    try:
        with docker_registry(run_dir) as host:
            yield host
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
async def workflows(temporal_address: str) -> RecordingWorkflows:
    client = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)
    return RecordingWorkflows(client, new_task_queue())


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_no_tool_call_crashes_loses_its_audit_row_or_half_acts(
        store: PgStore, workflows: RecordingWorkflows, registry: str, mode: str) -> None:
    # A short registry timeout: the hostile image refs point at addresses that may not answer.
    async with OciRegistry(insecure_hosts=("127.0.0.1",), timeout=2.0) as images:
        deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", registry=registry,
                                                                 progress_wait_seconds=0),
                          workflows=workflows, images=images, secretbox=SecretBox(Fernet.generate_key()),
                          logs=EmptyLogs())
        server = build_server(deps, transport="memory",
                              principal=Principal("acme", "agent", frozenset(ALL_SCOPES), "memory"))
        async with Client(server, mode=mode) as c:
            seeded = await seed(c, store, registry, "acme")
            schemas = {t.name: t.input_schema for t in (await c.list_tools()).tools}
            fuzzer = Fuzzer(c, store, workflows)
            tally = await fuzz_tools(fuzzer, schemas, seeded.known, EXAMPLES, SEED)
    print(*tally.slowest, sep="\n")
    assert set(tally.by_tool) == set(schemas)  # every tool was called
    assert tally.calls >= len(schemas) * min(EXAMPLES, 10), tally.by_tool
    assert 0 < tally.refused < tally.calls  # hostile calls were refused, some calls got through
    assert not tally.problems, tally.problems
    print(f"fuzz[{mode}]: {tally.calls} calls, {tally.refused} refused, {len(workflows.started)} workflows started")


def hostile_calls(known: dict[str, list[Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Hostile values where a generated call rarely puts them: deep in otherwise valid calls."""
    image = known["image"][0]
    app = {"project": "shop", "app": "web"}
    new = {"project": "shop", "name": "fresh", "source": {"image": image}, "port": 8080, "wait_seconds": 0}
    calls: list[tuple[str, dict[str, Any]]] = []
    for bad in ("x\x00y", "\ud800", "x" * MIB):
        calls += [
            ("create_app", new | {"env": {"MODE": bad}}),
            ("create_app", new | {"secrets": {"TOKEN": bad}}),
            ("create_app", new | {"health_check": {"type": "http", "path": "/" + bad}}),
            ("create_app", new | {"idempotency_key": bad[:128]}),
            ("deploy", app | {"env": {"MODE": bad}, "wait_seconds": 0}),
            ("deploy", app | {"source": {"image": image + bad[:10]}, "wait_seconds": 0}),
            ("set_secrets", app | {"values": {"TOKEN": bad}}),
            ("set_git_credentials", {"host": "git.example.com", "token": "t", "username": bad[:100]}),
            ("set_git_credentials", {"host": bad[:253], "token": "t"}),
            ("set_git_credentials", {"host": "git.example.com", "token": bad[:4096]}),
            ("get_audit_log", {"tool": bad[:64]}),
            ("get_audit_log", {"cursor": bad[:200]}),
            ("logs", app | {"contains": bad[:1024]}),
            ("logs", app | {"regex": bad[:1024]}),
            ("logs", app | {"since": bad[:64]}),
            ("logs", app | {"pod": bad[:253]}),
            ("builds", app | {"build_id": known["build_id"][0], "cursor": bad[:100]}),
            ("volume", {"action": "policy", "project": "shop", "volume": "data", "schedule": f"0 3 * * {bad[:10]}",
                                   "retain": 1, "wait_seconds": 0}),
            ("volume", {"action": "attach"} | app | {"volume": "data", "mount_path": "/data" + bad[:10],
                                                     "wait_seconds": 0}),
            ("delete_app", app | {"confirm": "shop/web" + bad[:10], "wait_seconds": 0}),
            ("set_secrets", app | {"values": {bad[:100]: None}}),
            ("volume", {"action": "create", "project": "shop", "volume": "v" + bad[:10], "size_gib": 1,
                        "wait_seconds": 0}),
        ]
    calls += [("create_app", new | {"source": {"git": {"url": url}}})
              for url in ("https://169.254.169.254/o/r.git", "https://10.0.0.1/o/r.git", "https://[::1]/o/r.git",
                          "https://localhost/o/r.git", "git@10.0.0.1:o/r", "file:///etc/passwd")]
    calls += [("create_app", new | {"source": {"image": ref}})
              for ref in ("169.254.169.254/latest/app:v1", "10.0.0.1:5000/a/web:v1", "[::1]:5000/a/web:v1",
                          "localhost:5000/../../x:v1", "127.0.0.1:5000/a/web:--help")]
    calls += [("create_app", new | {"source": {"git": {"url": "https://github.com/o/r.git", "ref": ref}}})
              for ref in ("--upload-pack=touch /tmp/pwned", "-oProxyCommand=id", "$(id)", "main\x00")]
    return calls


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_hostile_values_deep_in_valid_calls(
        store: PgStore, workflows: RecordingWorkflows, registry: str, mode: str) -> None:
    async with OciRegistry(insecure_hosts=("127.0.0.1",), timeout=2.0) as images:
        deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", registry=registry,
                                                             progress_wait_seconds=0),
                          workflows=workflows, images=images, secretbox=SecretBox(Fernet.generate_key()),
                          logs=EmptyLogs())
        server = build_server(deps, transport="memory",
                              principal=Principal("acme", "agent", frozenset(ALL_SCOPES), "memory"))
        async with Client(server, mode=mode) as c:
            seeded = await seed(c, store, registry, "acme")
            fuzzer = Fuzzer(c, store, workflows, collect=True)
            for tool, args in hostile_calls(seeded.known):
                await fuzzer.check(tool, args)
    assert not fuzzer.tally.problems, "\n".join(fuzzer.tally.problems)
