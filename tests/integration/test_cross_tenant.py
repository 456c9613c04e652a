"""Cross-tenant matrix over streamable HTTP with two real API tokens: for every tool of tools/list that names a
tenant-owned object, tenant B's token against tenant A's object is refused, audited in B's tenant, writes
nothing and starts no workflow, and says exactly what it says for an object that does not exist (so B cannot
even learn that A's object is there).

Which arguments name an object is read from the schemas, not from a list of tools: each argument name has a
role below, and a tool with an argument of no known role fails the test until it is classified here.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter

from mcp_server.auth import create_token
from mcp_server.devenv.images import docker_registry
from mcp_server.devenv.processes import free_port
from mcp_server.server import ServerDeps
from mcp_server.settings import ALL_SCOPES, load_settings
from mcp_server.store import PgStore
from mcp_server.wiring import http_server, make_server
from tests.support.fuzz import EmptyLogs, Fuzzer, RecordingWorkflows, new_task_queue, seed, text_of
from tests.support.serving import serving
from tools.context import PlatformConfig
from tools.volumes import ACTION_ARGS
from workflows.adapters.registry import OciRegistry
from workflows.domain.secretbox import SecretBox

# Arguments that name an existing object: by name (looked up in the caller's tenant) or by id.
BY_NAME = {"app", "volume"}
BY_ID = {"deployment_id", "build_id", "from_snapshot", "to"}
# `project` scopes a lookup (or is created on first use); `name` names a NEW object; the rest are parameters.
SCOPE, NEW = {"project"}, {"name"}
PARAMS = {
    "wait_seconds", "limit", "cursor", "confirm", "mount_path", "read_only", "size_gib", "volume_class", "access",
    "schedule", "retain", "force", "idempotency_key", "env", "secrets", "source", "replicas", "resources",
    "health_check", "shutdown_grace_seconds", "port", "volumes", "values", "names", "since", "until", "contains",
    "regex", "level", "pod", "direction", "follow_seconds", "tool", "host", "token", "ssh_private_key", "username",
    "autoscale", "window_seconds", "labels", "diagnose", "action", "version", "backup", "into", "final_backup",
    "database",
    # custom domains: a hostname is looked up in the caller's tenant only (tests/integration/test_domains.py:
    # another tenant's hostname reads as one that does not exist)
    "hostname", "domains",
    # push deploys: the app is looked up by name (BY_NAME); these only shape the connection
    "branch", "previews", "previews_secrets",
    # dry-run: left at false here, so every call acts (test_plan.py covers plans, which write nothing)
    "plan",
}
# A parameter's value in the matrix' calls, where its schema's own minimum would not get past validation.
PARAM_VALUES: dict[str, Any] = {"mount_path": "/data", "schedule": "0 3 * * *", "values": {"A": "b"},
                                "names": ["A"], "wait_seconds": 0, "follow_seconds": 0, "window_seconds": 0}
A_NAMES = {"project": "alpha", "app": "alpha-app", "volume": "alpha-vol"}
GHOSTS = {"project": "ghost", "app": "ghost-app", "volume": "ghost-vol"}
B_NAMES = {"project": "alpha", "app": "alpha-app", "volume": "alpha-vol"}  # B's own objects of the same names


def unclassified(schemas: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    known = BY_NAME | BY_ID | SCOPE | NEW | PARAMS
    return {tool: sorted(set(s.get("properties", {})) - known) for tool, s in schemas.items()
            if set(s.get("properties", {})) - known}


def minimal(prop: dict[str, Any]) -> Any:
    """A valid value of a (required) parameter from its schema."""
    if "anyOf" in prop:
        return minimal(next(p for p in prop["anyOf"] if p.get("type") != "null"))
    if "enum" in prop:
        return prop["enum"][0]
    return {"integer": prop.get("minimum", 1), "boolean": False, "string": "x", "array": [], "object": {}}[
        prop.get("type", "string")]


def call_args(schema: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
    """Every object argument from `refs` (optional ones too: each is a way in), required parameters filled."""
    props, required = schema.get("properties", {}), set(schema.get("required", []))
    args: dict[str, Any] = {}
    for name, prop in props.items():
        if name in BY_NAME | BY_ID | SCOPE:
            args[name] = refs[name]
        elif name in NEW and name in required:
            args[name] = "fresh"
        elif name in required or name in ("wait_seconds", "follow_seconds"):
            args[name] = PARAM_VALUES.get(name, minimal(prop))
    if "confirm" in args:
        args["confirm"] = f"{args['project']}/{args.get('app') or args.get('volume')}"
    if "build_id" in args and "deployment_id" in args:  # the tool takes exactly one of the two
        del args["deployment_id"]
    return args


def probes(schemas: dict[str, dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any], frozenset[str] | None]]:
    """The matrix: each tool taking an object by name or id; the `volume` tool once per action on an existing
    volume (key "volume:<action>", with only the arguments that action takes). `create` makes a new volume, and
    `restore` names a new one: there `volume` is a NEW name."""
    out: dict[str, tuple[str, dict[str, Any], frozenset[str] | None]] = {}
    for tool, s in schemas.items():
        if not set(s.get("properties", {})) & (BY_NAME | BY_ID):
            continue
        if tool != "volume":
            out[tool] = (tool, s, None)
            continue
        for action, takes in ACTION_ARGS.items():
            if action != "create":
                out[f"volume:{action}"] = (tool, s, takes | {"project", "volume", "wait_seconds", "action"})
    return out


def probe_args(tool: str, schema: dict[str, Any], takes: frozenset[str] | None, refs: dict[str, Any]
               ) -> dict[str, Any]:
    args = call_args(schema, refs)
    if takes is None:
        return args
    action = tool.split(":")[1] if ":" in tool else None
    args = {k: v for k, v in args.items() if k in takes} | {"action": action}
    for k in takes & {"app", "from_snapshot", "confirm", "mount_path", "size_gib", "schedule", "retain"}:
        if k not in args:
            args[k] = refs.get(k) or PARAM_VALUES.get(k, minimal(schema["properties"][k]))
    if "confirm" in takes:
        args["confirm"] = f"{args['project']}/{args['volume']}"
    if action == "restore":
        args["volume"] = "fresh"
    return args


def normalized(text: str, values: dict[str, Any]) -> str:
    for role, value in sorted(values.items(), key=lambda kv: -len(str(kv[1]))):
        text = text.replace(str(value), "<id>" if role in BY_ID else f"<{role}>")
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    run_dir = Path(tempfile.mkdtemp(prefix="deploy-mcp-xtenant-registry-"))
    try:
        with docker_registry(run_dir) as host:
            yield host
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
async def platform(store: PgStore, temporal_address: str, registry: str
                   ) -> AsyncIterator[tuple[str, RecordingWorkflows]]:
    """The MCP server over streamable HTTP on real Postgres, Temporal and registry; yields its URL."""
    temporal = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter)
    workflows = RecordingWorkflows(temporal, new_task_queue())
    settings = load_settings(http={"port": free_port()})
    async with OciRegistry(insecure_hosts=("127.0.0.1",), timeout=2.0) as images:
        deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", registry=registry,
                                                             progress_wait_seconds=0),
                          workflows=workflows, images=images, secretbox=SecretBox(Fernet.generate_key()),
                          logs=EmptyLogs())
        server = http_server(settings, make_server(settings, deps, "http"))
        async with serving(server):
            yield settings.http.mcp_url(), workflows


async def test_tenant_b_cannot_reach_or_detect_tenant_a_objects(
        store: PgStore, registry: str, platform: tuple[str, RecordingWorkflows]) -> None:
    url, workflows = platform
    token_a = await create_token(store, "tenant-a", "agent-a", list(ALL_SCOPES))
    token_b = await create_token(store, "tenant-b", "agent-b", list(ALL_SCOPES))
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token_a}"}) as ha, \
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token_b}"}) as hb, \
            Client(streamable_http_client(url, http_client=ha)) as a, \
            Client(streamable_http_client(url, http_client=hb)) as b:
        seeded_a = await seed(a, store, registry, "tenant-a", **A_NAMES)
        schemas = {t.name: t.input_schema for t in (await b.list_tools()).tools}
        assert not unclassified(schemas), f"classify these arguments in {__name__}: {unclassified(schemas)}"
        matrix = probes(schemas)
        assert {"apps", "deploy", "delete_app", "deployments", "volume:attach", "volume:restore", "builds",
                "rollback"} <= set(matrix)
        a_ids = {k: seeded_a.known[k][0] for k in BY_ID}
        ghost_ids = {k: str(uuid.uuid4()) for k in BY_ID}
        fuzzer = Fuzzer(b, store, workflows, bookkeeping=("api_tokens",))
        seen: list[str] = []

        async def compare(tool: str, theirs: dict[str, Any], ghost: dict[str, Any], stage: str) -> None:
            name, schema, takes = matrix[tool]
            r_theirs = await fuzzer.check(name, probe_args(tool, schema, takes, theirs))
            r_ghost = await fuzzer.check(name, probe_args(tool, schema, takes, ghost))
            assert r_theirs is not None and r_ghost is not None
            assert r_theirs.is_error, f"{stage}: {tool} as B reached A's object: {text_of(r_theirs)[:300]}"
            assert r_ghost.is_error, f"{stage}: {tool}: {text_of(r_ghost)[:300]}"
            mine = normalized(text_of(r_theirs), theirs)
            none = normalized(text_of(r_ghost), ghost)
            assert mine == none, f"{stage}: {tool} tells A's object from a missing one:\n{mine}\n{none}"
            seen.append(f"{stage}:{tool}")

        # By name: B has nothing, and A's names must look like names nobody uses.
        for tool in matrix:
            await compare(tool, A_NAMES | a_ids, GHOSTS | ghost_ids, "names")
        # By id: B has objects of the same names, so the lookup that refuses is the one by A's id.
        await seed(b, store, registry, "tenant-b", **B_NAMES)
        for tool, (_, schema, takes) in matrix.items():
            if set(schema.get("properties", {})) & BY_ID & (takes or set(schema.get("properties", {}))):
                await compare(tool, B_NAMES | a_ids, B_NAMES | ghost_ids, "ids")
        # And A, meanwhile, still sees its own objects untouched.
        r = await a.call_tool("apps", {"project": A_NAMES["project"], "app": A_NAMES["app"]})
        assert not r.is_error and r.structured_content is not None
        assert r.structured_content["status"] != "deleting"
    assert not fuzzer.tally.problems
    assert len(seen) > len(matrix)  # every tool by name, and those with ids by id too
    async with store.pool.connection() as conn:
        rows = await (await conn.execute(
            "SELECT tool, outcome FROM audit_events WHERE tenant = 'tenant-b' AND tool = ANY(%s) AND outcome <> 'ok'",
            (list({name for name, _, _ in matrix.values()}),))).fetchall()
    assert len(rows) == 2 * len(seen)  # every refused call of B is audited, in B's tenant
    assert {r["outcome"] for r in rows} <= {"invalid", "denied", "error"}
