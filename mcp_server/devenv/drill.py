"""The restore drill (docs/operations.md#backups): everything destroyed and brought back from backups alone.

Two apps (one with a volume holding data, one with a secret and two releases), a volume backup and a Plane A
backup; then the database is dropped, Temporal's state is lost and the testbed is torn down and started from an
empty state. A fresh Postgres gets the backup restored, a new worker starts on it, and without any call the
reconciler brings both apps back at their URLs with the secret decrypted and the volume's data imported from its
backup. What survives the disaster is what survives one in production: the backup archive, the Longhorn backup
target (`longhorn_root`) and the image registry (outside the cluster, like Harbor).

Driven by tests/e2e/test_restore_drill.py (which asserts) and bench/restore_drill.py (which prints the RTO). The
storage controller that runs beside the platform is handed in (`longhorn`), so this harness never imports the
tests.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp.client import Client
from mcp.types import CallToolResult

from mcp_server.backup import operations
from mcp_server.devenv.embedded import EmbeddedPostgres, TemporalDevServer, Testbed
from mcp_server.devenv.images import busybox_web_files, push_image
from mcp_server.devenv.platform import platform_settings, running_platform
from mcp_server.devenv.processes import ManagedProcess, free_port, port_open
from mcp_server.settings import Settings
from mcp_server.store import migrate
from workflows.adapters.kube import Kube

LonghornFactory = Callable[[Kube, Path], AbstractAsyncContextManager[object]]
REGISTRY = "127.0.0.1:5000"
BACKUP_KEY = "RFJJTEwtS0VZLURSSUxMLUtFWS1EUklMTC1LRVktISE="  # 32 bytes, base64: the drill's own, not a secret
CGI = "#!/busybox sh\necho 'Content-Type: text/plain'\necho\n"
GREETING = "s3cr3t-greeting"


@dataclass
class DrillResult:
    rto_seconds: float  # platform started -> every app serving at its URL
    restore_seconds: float  # the Plane A restore into the fresh Postgres
    rebuild_seconds: float  # testbed down + up from an empty state
    urls: dict[str, str] = field(default_factory=dict)
    served: dict[str, str] = field(default_factory=dict)  # app -> what its URL answered after the restore
    releases_after: int = 0
    rolled_back_to: str = ""
    repaired: list[str] = field(default_factory=list)


def ok(r: CallToolResult) -> dict[str, Any]:
    if r.is_error:
        raise AssertionError(r.content[0].text)  # type: ignore[union-attr]
    content: dict[str, Any] | None = r.structured_content
    assert content is not None
    return content


async def _images(tenant: str) -> tuple[str, str, str]:
    """A counter persisting to /data, and a greeter printing its secret (v1, then v2)."""
    counter = busybox_web_files("counter") | {
        "www/cgi-bin/bump": ((CGI + "n=$(/busybox cat /data/count 2>/dev/null || echo 0); n=$((n+1)); "
                              "echo $n > /data/count; echo $n\n").encode(), 0o755),
        "www/cgi-bin/read": ((CGI + "/busybox cat /data/count 2>/dev/null || echo none\n").encode(), 0o755)}
    cmd = ["/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
    await push_image(REGISTRY, f"{tenant}/counter", "v1", counter, cmd=cmd)
    for tag in ("v1", "v2"):
        greeter = busybox_web_files(tag) | {
            "www/cgi-bin/hello": ((CGI + f'echo "{tag}:$GREETING"\n').encode(), 0o755)}
        await push_image(REGISTRY, f"{tenant}/greeter", tag, greeter, cmd=cmd)
    return (f"{REGISTRY}/{tenant}/counter:v1", f"{REGISTRY}/{tenant}/greeter:v1", f"{REGISTRY}/{tenant}/greeter:v2")


async def _until_done(c: Client, deployment_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = ok(await c.call_tool("deployments", {"deployment_id": deployment_id}))
        if got["phase"] in ("succeeded", "failed", "superseded", "cancelled"):
            if got["phase"] != "succeeded":
                raise AssertionError(f"release {deployment_id} ended {got['phase']}: {got}")
            return got
        await asyncio.sleep(0.5)
    raise AssertionError(f"release {deployment_id} did not finish in {timeout:.0f} s")


@asynccontextmanager
async def _edge(run_dir: Path) -> AsyncIterator[int]:
    """The testbed's edge (Traefik over the cluster's Ingresses), as `deploy-mcp testbed edge` runs it."""
    http, https = free_port(), free_port()
    exe = Path(sys.executable).parent / "deploy-mcp"
    proc = ManagedProcess("edge", [str(exe), "testbed", "edge", "--http-port", str(http), "--https-port",
                                   str(https), "--run-dir", str(run_dir / "edge")], run_dir / "edge-run")
    proc.start()
    try:
        proc.wait_ready(lambda: port_open("127.0.0.1", http) and port_open("127.0.0.1", https), 60, "listening")
        yield http
    finally:
        proc.stop()


async def _edge_answer(h: httpx.AsyncClient, port: int, url: str, path: str) -> str | None:
    host = url.split("://", 1)[-1].split("/", 1)[0]
    try:
        r = await h.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    except httpx.HTTPError:
        return None
    return r.text.strip() if r.status_code == 200 else None


def _settings(url: str, temporal: str, testbed: Testbed, state: Path) -> Settings:
    settings = platform_settings(
        url, temporal, testbed, reconcile={"enabled": True, "period_seconds": 3, "sweep_seconds": 5},
        state_dir=state, backup={"target": f"file://{state.parent / 'backups'}", "key": BACKUP_KEY})
    # the secrets key lives in the state directory (as in `dev`), so the restore's copy of it is what opens
    # the secrets afterwards; the backup key is the operator's, kept apart from the backups
    return settings.model_copy(update={"secrets_key": None})


async def restore_drill(testbed: Testbed, work: Path, longhorn: LonghornFactory,
                        say: Callable[[str], None] = print) -> DrillResult:
    longhorn_root = work / "longhorn-target"
    longhorn_root.mkdir(parents=True, exist_ok=True)
    (work / "backups").mkdir(exist_ok=True)  # the operator's backup directory (a mounted volume, say)
    beside = [lambda kube: longhorn(kube, longhorn_root)]

    # --- before: two apps, a volume backup, a Plane A backup -------------------------------------------------
    pg1 = EmbeddedPostgres(work / "pg1", port=free_port())
    t1 = TemporalDevServer(work / "temporal1")
    (work / "temporal1").mkdir(parents=True, exist_ok=True)
    url1 = pg1.start()
    try:
        await migrate(url1)
        t1.start()
        settings1 = _settings(url1, t1.address, testbed, work / "state1")
        async with running_platform(settings1, beside=beside) as p, p.client() as c:
            tenant = p.tenant
            counter, greeter1, greeter2 = await _images(tenant)
            data = ok(await c.call_tool("create_app", {
                "project": "drill", "name": "data", "source": {"image": counter}, "port": 8080,
                "shutdown_grace_seconds": 1,  # waits: the volume is provisioned before the release
                "volumes": [{"name": "store", "size_gib": 1, "volume_class": "fast", "mount_path": "/data"}]}))
            sec = ok(await c.call_tool("create_app", {
                "project": "drill", "name": "sec", "source": {"image": greeter1}, "port": 8080,
                "secrets": {"GREETING": GREETING}, "wait_seconds": 0}))
            await _until_done(c, data["deployment_id"])
            await _until_done(c, sec["deployment_id"])
            ns = ok(await c.call_tool("apps", {"project": "drill", "app": "data"}))["namespace"]
            for n in range(1, 4):
                assert await p.service_get(ns, "data", "/cgi-bin/bump") == str(n)
            v2 = ok(await c.call_tool("deploy", {"project": "drill", "app": "sec", "source": {"image": greeter2},
                                                 "wait_seconds": 0}))
            await _until_done(c, v2["deployment_id"])
            assert await p.service_get(ns, "sec", "/cgi-bin/hello") == f"v2:{GREETING}"
            backup = ok(await c.call_tool("volume", {"action": "backup", "project": "drill", "volume": "store",
                                                            "wait_seconds": 120}))
            assert backup["status"] == "ready", backup
            urls = {"data": data["url"], "sec": sec["url"]}
        created = await operations.create(settings1)
        say(f"drill: Plane A backup {created.name} ({created.size} bytes), volume backup ready")
    finally:
        t1.stop()
        pg1.stop()

    # --- the disaster: database, Temporal and the cluster are gone ------------------------------------------
    shutil.rmtree(work / "pg1")
    shutil.rmtree(work / "temporal1")
    shutil.rmtree(work / "state1")  # the secrets key went with the machine; the backup carries it
    started = time.monotonic()
    testbed.down()
    testbed.up(node=True, nodes=2)
    rebuild = time.monotonic() - started
    say(f"drill: testbed rebuilt from an empty state in {rebuild:.1f} s")

    # --- the restore ----------------------------------------------------------------------------------------
    pg2 = EmbeddedPostgres(work / "pg2", port=free_port())
    t2 = TemporalDevServer(work / "temporal2")
    (work / "temporal2").mkdir(parents=True, exist_ok=True)
    url2 = pg2.start()
    try:
        t2.start()
        settings2 = _settings(url2, t2.address, testbed, work / "state2")
        started = time.monotonic()
        restored = await operations.restore(settings2, created.name)
        restore_seconds = time.monotonic() - started
        assert restored.keys_written_to == work / "state2" / "secrets.key", restored.keys_written_to
        async with _edge(work) as edge_port, running_platform(settings2, beside=beside, tenant=tenant,
                                                                start_worker=False) as p, \
                httpx.AsyncClient(timeout=5, trust_env=False) as h:
            served: dict[str, str] = {}
            platform_started = time.monotonic()
            await p.start_worker()
            checks = {"data": "/cgi-bin/read", "sec": "/cgi-bin/hello"}
            while len(served) < len(checks):
                if time.monotonic() - platform_started > 240:
                    raise AssertionError(f"after 240 s only {sorted(served)} serve again")
                for app, path in checks.items():
                    if app not in served and (got := await _edge_answer(h, edge_port, urls[app], path)):
                        served[app] = got
                await asyncio.sleep(0.3)
            rto = time.monotonic() - platform_started
            say(f"drill: RTO {rto:.1f} s (worker started -> both apps serving at their URLs); restore "
                f"{restore_seconds:.1f} s")
            result = DrillResult(rto_seconds=rto, restore_seconds=restore_seconds, rebuild_seconds=rebuild,
                                 urls=urls, served=served)
            async with p.client() as c:
                listed = ok(await c.call_tool("deployments", {"project": "drill", "app": "sec"}))
                result.releases_after = len(listed["deployments"])
                back = ok(await c.call_tool("rollback", {"project": "drill", "app": "sec", "wait_seconds": 0}))
                await _until_done(c, back["deployment_id"])
                sec_url = urls["sec"]
                deadline = time.monotonic() + 60
                while (got := await _edge_answer(h, edge_port, sec_url, "/cgi-bin/hello")) != f"v1:{GREETING}":
                    if time.monotonic() > deadline:
                        raise AssertionError(f"after the rollback {sec_url} answers {got!r}")
                    await asyncio.sleep(0.3)
                result.rolled_back_to = got
                audit = ok(await c.call_tool("get_audit_log", {"limit": 200}))
                result.repaired = [ref for row in audit["entries"] if row["principal"] == "platform"
                                   for ref in row["k8s_refs"]]
            return result
    finally:
        t2.stop()
        pg2.stop()
