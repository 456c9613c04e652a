"""The database tools through an MCP client, on the real store (embedded Postgres), with the workflows played by
a recorder that carries out what the database workflow would record (status, the rotation's promotion) and
accepts releases: hostile input refused with the field named and nothing recorded; another tenant's database
not found; create_app(database=...) hands the app DATABASE_URL and PG* as secrets of its release, sealed;
attach/detach; rotate changes the stored password and releases the app with it; a restore shows `restoring`
until its workflow ends and refuses a second one meanwhile; delete refuses while an app
uses it and without the confirm string, and takes a final dump first. No password appears in any tool result
or audit row."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.types import CallToolResult

from mcp_server.server import ServerDeps, build_server
from mcp_server.settings import ALL_SCOPES
from mcp_server.store import PgStore
from tests.support.platform import ok
from tests.support.stand_ins import StandInImages
from tools.context import PlatformConfig, Principal
from workflows.domain.database_contract import DatabaseOp, DatabaseResult
from workflows.domain.database_observation import Connections, DatabaseObservation, DiskUse, ObserveInput
from workflows.domain.deploy_contract import DeployInput
from workflows.domain.diagnose_contract import Diagnosis
from workflows.domain.secretbox import SecretBox

SCOPES = frozenset(ALL_SCOPES)


@dataclass
class Recorder:
    """The `Workflows` port: database operations finish at once, as their activities would record them."""

    store: PgStore
    box: SecretBox
    ops: list[DatabaseOp] = field(default_factory=list)
    deploys: list[DeployInput] = field(default_factory=list)
    fail_backups: bool = False
    hold_restores: bool = False  # a restore still running when the call's wait ends
    observed: list[ObserveInput] = field(default_factory=list)
    observation: DatabaseObservation = field(default_factory=DatabaseObservation)

    async def run_database(self, workflow_id: str, op: DatabaseOp, wait_seconds: float) -> DatabaseResult | None:
        self.ops.append(op)
        if op.op == "create":
            await self.store.set_database_status(op.database_id, "ready")
            return DatabaseResult(status="ready", engine="statefulset")
        if op.op == "rotate":
            await self.store.promote_pending_password(op.database_id)
            await self.store.set_database_status(op.database_id, "ready")
            return DatabaseResult(status="rotated")
        if op.op == "restore":
            if op.backup_name:
                await self.store.start_database_backup(op.database_id, "safety", op.backup_name)
                await self.store.finish_database_backup(op.database_id, op.backup_name, "ok", 99, None)
            if self.hold_restores:
                return None
            await self.store.set_database_status(op.database_id, "ready")
            return DatabaseResult(status="restored", message=op.restore_from)
        if op.op == "backup":
            assert op.backup_name
            await self.store.start_database_backup(op.database_id, op.backup_kind, op.backup_name)
            status = "failed" if self.fail_backups else "ok"
            await self.store.finish_database_backup(op.database_id, op.backup_name, status, 1234,
                                                    "pg_dump: boom" if self.fail_backups else None)
            return DatabaseResult(status="failed" if self.fail_backups else "backed-up")
        await self.store.delete_database_row(op.database_id)
        return DatabaseResult(status="deleted")

    async def start_deploy(self, workflow_id: str, inp: DeployInput) -> None:
        self.deploys.append(inp)

    async def start_delete(self, workflow_id: str, inp: Any) -> None: ...

    async def cancel(self, workflow_id: str) -> None: ...

    async def diagnose(self, inp: Any) -> Diagnosis:
        return Diagnosis(healthy=False, desired_replicas=1)

    async def run_volume(self, workflow_id: str, op: Any, wait_seconds: float) -> Any: ...

    async def run_scale(self, workflow_id: str, inp: Any, wait_seconds: float) -> Any: ...

    async def app_metrics(self, inp: Any) -> Any: ...

    async def observe_database(self, inp: ObserveInput) -> DatabaseObservation:
        self.observed.append(inp)
        return self.observation

    async def signal_domain(self, workflow_id: str, inp: Any, signal: Any) -> None: ...


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key().decode())


def server(store: PgStore, recorder: Recorder, tenant: str = "acme") -> Any:
    deps = ServerDeps(store=store, config=PlatformConfig(apps_domain="apps.test", progress_wait_seconds=0),
                      workflows=recorder, images=StandInImages(), secretbox=recorder.box)
    return build_server(deps, transport="memory", principal=Principal(tenant, "alice", SCOPES, "memory"))


def err(r: CallToolResult) -> str:
    assert r.is_error, r.structured_content
    return str(r.content[0].text)  # type: ignore[union-attr]


def project_name() -> str:
    import uuid

    return f"p{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("args", "field_named"), [
    ({"version": 9}, "database.version"),
    ({"size_gib": 5000}, "database.size_gib"),
    ({"volume_class": "gold"}, "database.volume_class"),
    ({"resources": {"memory_mib": 1}}, "database.resources.memory_mib"),
    ({"name": "Bad_Name"}, "name"),
    ({"name": "a" * 21}, "name"),
])
async def test_hostile_input_is_refused_with_the_field_and_nothing_is_made(
        store: PgStore, box: SecretBox, args: dict[str, Any], field_named: str) -> None:
    rec = Recorder(store, box)
    project = project_name()
    async with Client(server(store, rec)) as c:
        r = await c.call_tool("database", {"action": "create", "project": project, "name": "orders", **args})
    assert field_named in err(r)
    assert rec.ops == [] and await store.list_databases("acme", project) == []


async def test_create_app_with_a_database_gives_it_sealed_connection_secrets(store: PgStore, box: SecretBox) -> None:
    rec = Recorder(store, box)
    project = project_name()
    outputs: list[str] = []
    async with Client(server(store, rec)) as c:
        created = ok(await c.call_tool("create_app", {
            "project": project, "name": "web", "source": {"image": "r/web:1"}, "port": 8080,
            "database": {"size_gib": 2}, "wait_seconds": 0}))
        outputs.append(json.dumps(created))
        app = await store.get_app("acme", project, "web")
        assert app is not None
        d = await store.get_database("acme", project, "web")
        assert d is not None and d.app == "web" and d.size_gib == 2 and d.status == "ready"
        password = box.open(bytes(d.ciphertext))["password"]
        sv = await store.current_secrets(app.id)
        assert set(sv.names) >= {"DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"}
        values = box.open(sv.ciphertext or b"")
        url = urlsplit(values["DATABASE_URL"])
        assert url.password == password and url.hostname == f"postgres--web.{app.namespace}.svc"
        assert values["PGPASSWORD"] == password and "DATABASE_URL" not in app.spec.get("env", {})
        assert [o.op for o in rec.ops] == ["create"] and rec.ops[0].spec.app == "web"
        got = ok(await c.call_tool("apps", {"project": project, "app": "web"}))
        outputs.append(json.dumps(got))
        assert got["database"] == {"name": "web", "status": "ready", "status_reason": None, "last_backup": None}
        listed = ok(await c.call_tool("databases", {"project": project, "name": "web"}))
        outputs.append(json.dumps(listed))
        assert listed["databases"][0]["app"] == "web" and listed["supported_versions"] == [15]

        # rotate: a new password in the store, and a release of the app that carries it
        rotated = ok(await c.call_tool("database", {"action": "rotate", "project": project, "name": "web"}))
        outputs.append(json.dumps(rotated))
        d2 = await store.get_database("acme", project, "web")
        assert d2 is not None and d2.pending_ciphertext is None
        new_password = box.open(bytes(d2.ciphertext))["password"]
        assert new_password != password
        sv2 = await store.current_secrets(app.id)
        assert box.open(sv2.ciphertext or b"")["PGPASSWORD"] == new_password and sv2.version > sv.version
        assert rotated["release"] is not None and rec.deploys[-1].secrets_version == sv2.version

        # delete: refused while the app uses it, and without the confirm string
        r = await c.call_tool("database", {"action": "delete", "project": project, "name": "web",
                                           "confirm": f"{project}/web"})
        assert "uses the database" in err(r)
        r = await c.call_tool("database", {"action": "delete", "project": project, "name": "web", "confirm": "x"})
        assert "confirm" in err(r)
        detached = ok(await c.call_tool("database", {"action": "detach", "project": project, "name": "web"}))
        outputs.append(json.dumps(detached))
        sv3 = await store.current_secrets(app.id)
        assert not {"DATABASE_URL", "PGPASSWORD"} & set(sv3.names)
        deleted = ok(await c.call_tool("database", {"action": "delete", "project": project, "name": "web",
                                                    "confirm": f"{project}/web"}))
        outputs.append(json.dumps(deleted))
        assert [o.op for o in rec.ops][-2:] == ["backup", "delete"] and rec.ops[-2].backup_kind == "final"
        assert await store.get_database("acme", project, "web") is None
    audit = json.dumps([e.model_dump(mode="json") for e in await store.list_audit("acme", None, None, None, 100)])
    for secret in (password, new_password):
        assert all(secret not in o for o in outputs) and secret not in audit


async def test_a_failed_backup_shows_and_another_tenant_sees_nothing(store: PgStore, box: SecretBox) -> None:
    rec = Recorder(store, box, fail_backups=True)
    project = project_name()
    async with Client(server(store, rec)) as c:
        ok(await c.call_tool("database", {"action": "create", "project": project, "name": "orders"}))
        done = ok(await c.call_tool("database", {"action": "backup", "project": project, "name": "orders"}))
        assert done["done"] and done["database"]["status"] == "backup-failed"
        assert "pg_dump: boom" in done["database"]["status_reason"]
        r = await c.call_tool("database", {"action": "delete", "project": project, "name": "orders",
                                           "confirm": f"{project}/orders"})
        assert ok(r)["next_step"].startswith("Not deleted")  # no final dump, no delete
        assert await store.get_database("acme", project, "orders") is not None
    async with Client(server(store, rec, tenant="evil")) as c:
        r = await c.call_tool("databases", {"project": project, "name": "orders"})
        assert "No database named" in err(r)
        r = await c.call_tool("database", {"action": "rotate", "project": project, "name": "orders"})
        assert "No database named" in err(r)


async def test_restore_names_a_good_backup_and_can_go_into_a_new_database(store: PgStore, box: SecretBox) -> None:
    rec = Recorder(store, box)
    project = project_name()
    async with Client(server(store, rec)) as c:
        ok(await c.call_tool("database", {"action": "create", "project": project, "name": "orders"}))
        made = ok(await c.call_tool("database", {"action": "backup", "project": project, "name": "orders"}))
        dump = made["database"]["last_backup"]["name"]
        r = await c.call_tool("database", {"action": "restore", "project": project, "name": "orders",
                                           "backup": "deploy-mcp-20200101T000000.000Z.dmcpbak"})
        assert "backup" in err(r) and dump in err(r)
        same = ok(await c.call_tool("database", {"action": "restore", "project": project, "name": "orders",
                                                 "backup": dump}))
        assert same["done"] and rec.ops[-1].op == "restore" and rec.ops[-1].restore_from == dump
        assert rec.ops[-1].backup_name and rec.ops[-1].backup_name != dump  # the safety dump's name
        listed = ok(await c.call_tool("databases", {"project": project, "name": "orders"}))
        assert [b["kind"] for b in listed["databases"][0]["backups"]] == ["safety", "manual"]
        into = ok(await c.call_tool("database", {"action": "restore", "project": project, "name": "orders",
                                                 "backup": dump, "into": "orders-copy"}))
        assert into["database"]["name"] == "orders-copy"
        orders = await store.get_database("acme", project, "orders")
        assert orders is not None and rec.ops[-1].source_database_id == orders.id
        assert rec.ops[-1].backup_name is None  # a new database has nothing to keep


async def test_a_restore_that_outlives_its_call_shows_restoring_and_refuses_a_second(store: PgStore,
                                                                                    box: SecretBox) -> None:
    rec = Recorder(store, box, hold_restores=True)
    project = project_name()
    async with Client(server(store, rec)) as c:
        ok(await c.call_tool("database", {"action": "create", "project": project, "name": "orders"}))
        dump = ok(await c.call_tool("database", {"action": "backup", "project": project,
                                                 "name": "orders"}))["database"]["last_backup"]["name"]
        args = {"action": "restore", "project": project, "name": "orders", "backup": dump}
        first = ok(await c.call_tool("database", args))
        assert not first["done"] and first["database"]["status"] == "restoring", first
        listed = ok(await c.call_tool("databases", {"project": project, "name": "orders"}))["databases"][0]
        assert listed["status"] == "restoring"
        # the safety dump made the count of good dumps (the restore's key) grow: a second call would be
        # another restore, so it is refused while the first runs
        assert "being restored" in err(await c.call_tool("database", args))
        assert [o.op for o in rec.ops].count("restore") == 1
        assert "restoring" in err(await c.call_tool("database", {"action": "rotate", "project": project,
                                                                 "name": "orders"}))
        orders = await store.get_database("acme", project, "orders")
        assert orders is not None
        await store.set_database_status(orders.id, "ready")  # what the workflow records at its end
        rec.hold_restores = False
        again = ok(await c.call_tool("database", args))
        assert again["done"] and again["database"]["status"] == "ready"


async def test_diagnose_names_a_database_that_is_not_ready(store: PgStore, box: SecretBox) -> None:
    rec = Recorder(store, box)
    project = project_name()
    async with Client(server(store, rec)) as c:
        created = ok(await c.call_tool("create_app", {
            "project": project, "name": "web", "source": {"image": "r/web:1"}, "port": 8080, "database": {},
            "wait_seconds": 0}))
        d = await store.get_database("acme", project, "web")
        assert d is not None
        await store.set_database_status(d.id, "failed", "database dm-x/postgres--web not Ready after 300 s")
        diag = ok(await c.call_tool("deployments", {"deployment_id": created["deployment_id"], "diagnose": True}))
        assert diag["next_step"].startswith("Its database web is failed: database dm-x/postgres--web not Ready")


async def test_delete_app_with_a_database_refuses_until_told_to_detach_or_delete(store: PgStore,
                                                                                  box: SecretBox) -> None:
    """delete_app of an app with a database: refused by default with the database and the fix named, nothing
    changed; `database=detach` keeps the database (no longer admitting the app, the app's secrets without the
    connection variables); `database=delete` refuses when the final backup fails, with nothing changed, and
    otherwise dumps, detaches and deletes the database before the app goes."""
    rec = Recorder(store, box)
    project = project_name()
    async with Client(server(store, rec)) as c:
        for app in ("web", "api"):
            ok(await c.call_tool("create_app", {
                "project": project, "name": app, "source": {"image": f"r/{app}:1"}, "port": 8080,
                "database": {}, "wait_seconds": 0}))
        web = await store.get_app("acme", project, "web")
        assert web is not None
        ops_before = len(rec.ops)
        refused = err(await c.call_tool("delete_app", {"project": project, "app": "web", "confirm": f"{project}/web"}))
        assert "database web" in refused and "database=detach" in refused and "database=delete" in refused
        still = await store.get_app("acme", project, "web")
        d = await store.get_database("acme", project, "web")
        assert still is not None and still.status == web.status and d is not None and d.app == "web"
        assert len(rec.ops) == ops_before

        ok(await c.call_tool("delete_app", {"project": project, "app": "web", "confirm": f"{project}/web",
                                            "database": "detach"}))
        d = await store.get_database("acme", project, "web")
        assert d is not None and d.app_id is None and d.status == "ready"
        # its objects re-applied without the app: the policy no longer admits pods labelled web
        assert rec.ops[-1].op == "create" and rec.ops[-1].spec.app is None
        assert not {"DATABASE_URL", "PGPASSWORD"} & set((await store.current_secrets(web.id)).names)
        gone = await store.get_app("acme", project, "web")
        assert gone is None or gone.status == "deleting"

        rec.fail_backups = True
        ops_before = len(rec.ops)
        refused = err(await c.call_tool("delete_app", {"project": project, "app": "api", "confirm": f"{project}/api",
                                                       "database": "delete"}))
        assert "final backup" in refused
        api = await store.get_app("acme", project, "api")
        d = await store.get_database("acme", project, "api")
        assert api is not None and api.status != "deleting" and d is not None and d.app == "api"
        assert [o.op for o in rec.ops[ops_before:]] == ["backup"]

        rec.fail_backups = False
        ok(await c.call_tool("delete_app", {"project": project, "app": "api", "confirm": f"{project}/api",
                                            "database": "delete"}))
        assert [o.op for o in rec.ops[ops_before + 1:]] == ["backup", "delete"]
        assert rec.ops[ops_before + 1].backup_kind == "final"
        assert await store.get_database("acme", project, "api") is None
    entries = [e for e in await store.list_audit("acme", None, None, None, 100) if e.tool == "delete_app"]
    assert [e.outcome for e in entries][:2] == ["ok", "error"] and entries[0].arguments["database"] == "delete"


async def test_databases_and_diagnose_show_the_observed_disk_and_connections(store: PgStore, box: SecretBox) -> None:
    """`databases` with a name asks the cluster now (the list does not: each look runs a query job); diagnose
    of an app with a database says when its disk is over 85% full or its connections near max_connections."""
    rec = Recorder(store, box)
    project = project_name()
    when = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    rec.observation = DatabaseObservation(
        ready=True, pod="postgres--web-0",
        disk=DiskUse(used_bytes=9 * 2**30, capacity_bytes=10 * 2**30, percent=90.0, observed_at=when),
        connections=Connections(current=19, max=20, observed_at=when))
    async with Client(server(store, rec)) as c:
        created = ok(await c.call_tool("create_app", {
            "project": project, "name": "web", "source": {"image": "r/web:1"}, "port": 8080, "database": {},
            "wait_seconds": 0}))
        listed = ok(await c.call_tool("databases", {"project": project}))
        assert listed["databases"][0]["observed"] is None and rec.observed == []
        one = ok(await c.call_tool("databases", {"project": project, "name": "web"}))["databases"][0]
        assert one["observed"]["disk"]["percent"] == 90.0 and one["observed"]["connections"]["current"] == 19
        assert one["observed"]["disk"]["observed_at"].startswith("2026-12-02T12:00")
        assert [i.spec.name for i in rec.observed] == ["web"] and rec.observed[0].spec.app == "web"

        diag = ok(await c.call_tool("deployments", {"deployment_id": created["deployment_id"], "diagnose": True}))
        assert "disk is 90% full" in diag["next_step"] and "19 of 20 connections" in diag["next_step"]
        assert diag["database"]["connections"]["max"] == 20

        rec.observation = DatabaseObservation(disk=DiskUse(unknown="the kubelet of node run-1 is unreadable"),
                                              connections=Connections(unknown="no database pod is running"))
        one = ok(await c.call_tool("databases", {"project": project, "name": "web"}))["databases"][0]
        assert one["observed"]["disk"] == {"used_bytes": None, "capacity_bytes": None, "percent": None,
                                           "observed_at": None, "unknown": "the kubelet of node run-1 is unreadable"}
        diag = ok(await c.call_tool("deployments", {"deployment_id": created["deployment_id"], "diagnose": True}))
        assert "full" not in diag["next_step"] and diag["database"]["connections"]["unknown"]

        # a database still being made is not asked: its pod comes and goes
        d = await store.get_database("acme", project, "web")
        assert d is not None
        await store.set_database_status(d.id, "creating")
        asked = len(rec.observed)
        one = ok(await c.call_tool("databases", {"project": project, "name": "web"}))["databases"][0]
        assert one["observed"]["disk"]["unknown"] == "the database is creating" and len(rec.observed) == asked
