"""Custom domains through a real MCP client (`auto` and `legacy`) on a real Postgres, a real Temporal dev server
running the real custom-domain workflow and activities, and a real PowerDNS (pdns_server, gsqlite3) as the
owner's authoritative DNS that verification asks. The deploy workflow's cluster steps are stand-ins
(tests/support/stand_ins.py); no cluster issues certificates here, so a verified domain stops at `issuing`
and says so (tests/integration/test_fake_cert_manager.py issues for real against Pebble).

- Adding returns the exact records (TXT token at _deploy-mcp-challenge.<host>, CNAME to the edge; A/AAAA for an
  apex); the status is pending_dns naming each missing record, in turn: both, then the CNAME only, then a CNAME
  to somewhere else, until the records are right and the domain verifies (`issuing`, with its reason).
- `get_app` shows the domain compactly; `create_app(domains=[...])` adds them in the same call.
- Another tenant adding the same hostname is refused; wildcards, IPs and names under the platform's own domain
  are refused with the fix; an unverified domain past its deadline is `failed` with the reason and the fix.
- Removing the domain removes its row; records that stop pointing at the edge after verification say so; a
  claim once verified is never taken over, even when its certificate failed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mcp.client import Client

from mcp_server.devenv.powerdns import PowerDns
from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from tests.support.platform import ok
from tests.support.stand_ins import Cluster, StandInImages, stand_in_worker
from tools.context import PlatformConfig, Principal
from workflows.activities.domains import DomainActivities, DomainConfig
from workflows.adapters.powerdns import PowerDnsClient
from workflows.domain.secretbox import SecretBox

pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"])
SCOPES = frozenset({"apps:read", "apps:write", "domains:write"})
EDGE = "edge.apps.test"
KEY = Fernet.generate_key()
WEB = {"project": "shop", "name": "web", "source": {"image": "registry.test/team/web:v1"}, "port": 8080,
       "wait_seconds": 30}


@dataclass
class Platform:
    store: PgStore
    workflows: TemporalWorkflows
    dns: PowerDnsClient
    zone: str
    verify_hours: float = 1.0
    tenant: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:6]}")

    def client(self, mode: str, tenant: str | None = None) -> Client:
        config = PlatformConfig(apps_domain="apps.test", progress_wait_seconds=30, edge_name=EDGE,
                                edge_addresses=("127.0.0.1",), domain_verify_hours=self.verify_hours)
        deps = ServerDeps(store=self.store, config=config, workflows=self.workflows, images=StandInImages(),
                          secretbox=SecretBox(KEY))
        principal = Principal(tenant or self.tenant, "agent", SCOPES, "memory")
        return Client(build_server(deps, transport="memory", principal=principal), mode=mode)


@pytest.fixture
async def platform(store: PgStore, temporal_address: str, powerdns: PowerDns) -> AsyncIterator[Platform]:
    zone = f"o{uuid.uuid4().hex[:8]}.test"
    activities = DomainActivities(store, DomainConfig(edge_name=EDGE, edge_addresses=("127.0.0.1",),
                                                      resolvers=(f"{powerdns.host}:{powerdns.dns_port}",),
                                                      lookup_timeout=2.0))
    async with PowerDnsClient(powerdns.api_url, powerdns.api_key) as dns, \
            stand_in_worker(store, temporal_address, Cluster(), SecretBox(KEY), domains=activities) as workflows:
        await dns.ensure_zone(zone, [f"ns1.{zone}"])
        yield Platform(store, workflows, dns, zone)
        await dns.delete_zone(zone)


async def until(c: Client, host: str, ready: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
    """The domain's view once `ready` holds (the workflow checks and records asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        d: dict[str, Any] = ok(await c.call_tool("domains", {"hostname": host}))["domains"][0]
        if ready(d):
            return d
        assert asyncio.get_running_loop().time() < deadline, d
        await asyncio.sleep(0.2)


def refused(r: Any, *words: str) -> str:
    assert r.is_error, r.structured_content
    text = str(r.content[0].text)
    for w in words:
        assert w in text, text
    return text


async def test_add_tells_the_records_and_verification_follows_dns(platform: Platform, mode: str) -> None:
    p, host = platform, f"shop.{platform.zone}"
    async with p.client(mode) as c:
        ok(await c.call_tool("create_app", WEB))
        added = ok(await c.call_tool("domain", {"action": "add", "hostname": host.upper() + ".",
                                                "project": "shop", "app": "web"}))
        assert added["hostname"] == host
        txt, cname = (r.split(" ") for r in added["records"])
        assert txt[:2] == ["TXT", f"_deploy-mcp-challenge.{host}"] and txt[2].startswith("deploy-mcp-verify=")
        assert cname == ["CNAME", host, EDGE]

        d = await until(c, host, lambda d: d["status"] == "pending_dns")
        assert "TXT" in d["detail"] and "CNAME" in d["detail"] and "records" in d["next_step"]

        await p.dns.replace(p.zone, txt[1], "TXT", [txt[2]], ttl=30)
        ok(await c.call_tool("domain", {"action": "verify", "hostname": host}))
        d = await until(c, host, lambda d: "TXT" not in (d["detail"] or ""))
        assert d["status"] == "pending_dns" and "no CNAME" in d["detail"]

        await p.dns.replace(p.zone, host, "CNAME", ["somewhere.else.test."], ttl=30)
        ok(await c.call_tool("domain", {"action": "verify", "hostname": host}))
        d = await until(c, host, lambda d: "somewhere.else.test" in (d["detail"] or ""))
        assert d["status"] == "pending_dns" and EDGE in d["detail"]

        await p.dns.replace(p.zone, host, "CNAME", [EDGE + "."], ttl=30)
        ok(await c.call_tool("domain", {"action": "verify", "hostname": host}))
        d = await until(c, host, lambda d: d["status"] == "issuing")
        assert "no cluster" in d["detail"]
        app = ok(await c.call_tool("apps", {"project": "shop", "app": "web"}))
        assert app["domains"][0]["hostname"] == host and app["domains"][0]["status"] == "issuing"

        # the owner moves the CNAME away after verification: the status says so
        await p.dns.replace(p.zone, host, "CNAME", ["elsewhere.test."], ttl=30)
        ok(await c.call_tool("domain", {"action": "verify", "hostname": host}))
        d = await until(c, host, lambda d: d["status"] == "pending_dns")
        assert "stopped pointing at the edge" in d["detail"] and "elsewhere.test" in d["detail"]

        gone = ok(await c.call_tool("domain", {"action": "remove", "hostname": host}))
        assert "Removal started" in gone["next_step"]
        for _ in range(100):
            if not ok(await c.call_tool("domains", {}))["domains"]:
                break
            await asyncio.sleep(0.1)
        assert ok(await c.call_tool("domains", {}))["domains"] == []
        assert await p.store.get_domain(p.tenant, host) is None


async def test_one_app_of_one_tenant_per_hostname_and_names_refused(platform: Platform, mode: str) -> None:
    p, host = platform, f"www.{platform.zone}"
    async with p.client(mode) as c:
        created = ok(await c.call_tool("create_app", WEB | {"domains": [host]}))
        assert "domains" in created["next_step"]
        assert ok(await c.call_tool("domains", {}))["domains"][0]["hostname"] == host
        again = ok(await c.call_tool("domain", {"action": "add", "hostname": host, "project": "shop", "app": "web"}))
        assert again["records"] == ok(await c.call_tool("domains", {"hostname": host}))["domains"][0]["records"]
        for bad, words in (("*.example.com", ("wildcard",)), ("10.0.0.1", ("IP address",)),
                           ("x.apps.test", ("platform",)), ("https://a.example.com", ("bare hostname",)),
                           ("nodot", ("valid DNS hostname",))):
            refused(await c.call_tool("domain", {"action": "add", "hostname": bad, "project": "shop", "app": "web"}),
                    "hostname", *words)
        refused(await c.call_tool("domain", {"action": "add", "hostname": "a.example.com"}), "project")
        apex = ok(await c.call_tool("domain", {"action": "add", "hostname": platform.zone, "project": "shop",
                                               "app": "web"}))
        assert [r.split(" ")[0] for r in apex["records"]] == ["TXT", "A"]
        assert apex["records"][1] == f"A {platform.zone} 127.0.0.1"
    other = f"o{uuid.uuid4().hex[:6]}"
    async with p.client(mode, tenant=other) as c:
        ok(await c.call_tool("create_app", WEB))
        refused(await c.call_tool("domain", {"action": "add", "hostname": host, "project": "shop", "app": "web"}),
                "claimed by another app")
        refused(await c.call_tool("domains", {"hostname": host}), "No domain")  # not shown to another tenant


async def test_unverified_past_its_deadline_fails_with_reason_and_fix(platform: Platform, mode: str) -> None:
    p, host = platform, f"late.{platform.zone}"
    p.verify_hours = 0.5 / 3600  # half a second
    async with p.client(mode) as c:
        ok(await c.call_tool("create_app", WEB))
        ok(await c.call_tool("domain", {"action": "add", "hostname": host, "project": "shop", "app": "web"}))
        await asyncio.sleep(0.6)
        ok(await c.call_tool("domain", {"action": "verify", "hostname": host}))
        d = await until(c, host, lambda d: d["status"] == "failed")
        assert "not verified before" in d["detail"] and "action=verify" in d["next_step"]
        # a failed claim lapses: another tenant may take the name over (with a new token)
    async with p.client(mode, tenant=f"o{uuid.uuid4().hex[:6]}") as c:
        ok(await c.call_tool("create_app", WEB))
        taken = ok(await c.call_tool("domain", {"action": "add", "hostname": host, "project": "shop", "app": "web"}))
        assert taken["status"] == "verifying"


async def test_a_verified_claim_never_lapses_even_when_its_certificate_failed(platform: Platform, mode: str) -> None:
    p, host = platform, f"kept.{platform.zone}"
    async with p.client(mode) as c:
        ok(await c.call_tool("create_app", WEB))
    mine = await p.store.get_app(p.tenant, "shop", "web")
    assert mine is not None
    past = datetime.now(UTC) - timedelta(hours=1)
    d, _ = await p.store.add_domain(mine.id, host, "tok-a", past, "x-tls")
    await p.store.set_domain_status(d.id, "tok-a", status="failed", verified_at=past, detail="ACME refused")
    other = f"o{uuid.uuid4().hex[:6]}"
    async with p.client(mode, tenant=other) as c:
        ok(await c.call_tool("create_app", WEB))
        refused(await c.call_tool("domain", {"action": "add", "hostname": host, "project": "shop", "app": "web"}),
                "claimed by another app")
    kept = await p.store.get_domain(p.tenant, host)
    assert kept is not None and kept.verification_token == "tok-a"
