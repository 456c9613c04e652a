"""The PowerDNS adapter (workflows/adapters/powerdns.py) and the DNS resolver adapter against a REAL PowerDNS
Authoritative server (Debian's pdns-server, gsqlite3 backend) on loopback, started by the `powerdns` fixture.

- The platform zone is created once (a second ensure_zone finds it); the wildcard `*.apps.<domain>` and the
  edge's own name are written to the edge addresses, twice without change (the zone's serial stays), and DNS
  then answers them for any app hostname over the wire, and nothing outside apps.<domain>.
- REPLACE sets the whole RRset (moving the edge replaces the addresses, not adds); DELETE removes it and only it.
- TXT values are quoted as PowerDNS wants and read back by dnspython unquoted.
- Errors: a wrong API key is AuthRefused (not retryable), an unknown zone ResourceNotFound, an invalid record
  InvalidRequest with PowerDNS's reason, a server that is not there ServiceUnavailable (retryable); no message
  holds the API key.
- The worker writes the platform zone from its settings (dns.provider = powerdns) at start, again without
  change; a refused key is logged, not raised.
"""

from __future__ import annotations

import uuid

import dns.resolver
import pytest

from mcp_server.devenv.powerdns import PowerDns
from mcp_server.devenv.processes import free_port
from mcp_server.platform_dns import ensure_platform_zone
from mcp_server.settings import load_settings
from workflows.adapters.dns_resolver import observe, resolver
from workflows.adapters.errors import AuthRefused, InvalidRequest, ResourceNotFound, ServiceUnavailable
from workflows.adapters.powerdns import PowerDnsClient
from workflows.domain.domains import DnsRecord, platform_records


def _zone() -> str:
    return f"p{uuid.uuid4().hex[:10]}.test"


def _client(pdns: PowerDns, key: str | None = None) -> PowerDnsClient:
    return PowerDnsClient(pdns.api_url, key or pdns.api_key, timeout=5.0)


async def _a(pdns: PowerDns, name: str, rtype: str = "A") -> list[str]:
    r = resolver([f"{pdns.host}:{pdns.dns_port}"], timeout=3.0)
    try:
        ans = await r.resolve(name, rtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return []
    return sorted(rd.to_text() for rd in ans.rrset) if ans.rrset is not None else []


async def test_platform_zone_wildcard_points_at_the_edge_idempotently(powerdns: PowerDns) -> None:
    zone = _zone()
    apps = f"apps.{zone}"
    records = platform_records(apps, f"edge.{apps}", ["127.0.0.1", "::1"])
    async with _client(powerdns) as c:
        assert await c.ensure_zone(zone, [f"ns1.{zone}"]) is True
        assert await c.ensure_zone(zone, [f"ns1.{zone}"]) is False
        await c.apply(zone, records, ttl=60)
        before = await c.zone_rrsets(zone)
        await c.apply(zone, records, ttl=60)
        assert await c.zone_rrsets(zone) == before  # the same records again change nothing (no serial bump either)
        wildcard = await c.rrset(zone, f"*.{apps}", "A")
        assert wildcard is not None and wildcard.contents == ("127.0.0.1",) and wildcard.ttl == 60
        assert await _a(powerdns, f"web-shop-acme.{apps}") == ["127.0.0.1"]
        assert await _a(powerdns, f"web-shop-acme.{apps}", "AAAA") == ["::1"]
        assert await _a(powerdns, f"edge.{apps}") == ["127.0.0.1"]
        # DNS wildcards match deeper names too (RFC 4592); only the certificate is one label deep
        assert await _a(powerdns, f"deeper.web-shop-acme.{apps}") == ["127.0.0.1"]
        assert await _a(powerdns, f"www.{zone}") == []  # outside apps.<domain>: not the platform's
        await c.delete_zone(zone)


async def test_replace_sets_the_whole_rrset_and_delete_removes_only_it(powerdns: PowerDns) -> None:
    zone = _zone()
    apps = f"apps.{zone}"
    async with _client(powerdns) as c:
        await c.ensure_zone(zone, [f"ns1.{zone}"])
        await c.apply(zone, platform_records(apps, f"edge.{apps}", ["127.0.0.1"]), ttl=60)
        await c.apply(zone, platform_records(apps, f"edge.{apps}", ["127.0.0.2"]), ttl=60)  # the edge moved
        assert await _a(powerdns, f"x.{apps}") == ["127.0.0.2"]
        await c.replace(zone, f"www.{zone}", "CNAME", [f"edge.{apps}."], ttl=30)
        await c.replace(zone, f"_deploy-mcp-challenge.www.{zone}", "TXT", ['tok "quoted" 1'], ttl=30)
        seen = await observe(f"www.{zone}", [f"{powerdns.host}:{powerdns.dns_port}"])
        assert seen.error is None
        assert seen.cname == f"edge.{apps}." and seen.txt == ['tok "quoted" 1']
        await c.delete(zone, f"www.{zone}", "CNAME")
        await c.delete(zone, f"www.{zone}", "CNAME")  # deleting what is gone is fine
        assert await c.rrset(zone, f"www.{zone}", "CNAME") is None
        assert await c.rrset(zone, f"_deploy-mcp-challenge.www.{zone}", "TXT") is not None
        assert await _a(powerdns, f"x.{apps}") == ["127.0.0.2"]
        await c.replace(zone, f"_deploy-mcp-challenge.www.{zone}", "TXT", [], ttl=30)  # empty: deleted
        assert (await observe(f"www.{zone}", [f"{powerdns.host}:{powerdns.dns_port}"])).txt == []
        await c.delete_zone(zone)


async def test_errors_say_whether_a_retry_helps_and_never_echo_the_key(powerdns: PowerDns) -> None:
    zone = _zone()
    async with _client(powerdns, key="wrong-key-xyz") as bad:
        with pytest.raises(AuthRefused) as auth:
            await bad.zone_rrsets(zone)
        assert not auth.value.retryable and "api_key" in str(auth.value)
        assert "wrong-key-xyz" not in str(auth.value) and powerdns.api_key not in str(auth.value)
    async with _client(powerdns) as c:
        with pytest.raises(ResourceNotFound) as nf:
            await c.replace(zone, f"www.{zone}", "A", ["127.0.0.1"], ttl=30)
        assert not nf.value.retryable and "dns.zone" in str(nf.value)
        await c.ensure_zone(zone, [f"ns1.{zone}"])
        with pytest.raises(InvalidRequest) as inv:
            await c.apply(zone, [DnsRecord(name=f"www.{zone}", type="A", value="not-an-address", purpose="t")], 30)
        assert not inv.value.retryable and "not-an-address" in str(inv.value)
        await c.delete_zone(zone)
    async with PowerDnsClient(f"http://127.0.0.1:{free_port()}", powerdns.api_key, timeout=2.0) as down:
        with pytest.raises(ServiceUnavailable) as un:
            await down.zone_rrsets(zone)
        assert un.value.retryable and powerdns.api_key not in str(un.value)


async def test_resolver_reports_a_server_that_does_not_answer_as_an_error() -> None:
    seen = await observe("shop.example.test", [f"127.0.0.1:{free_port()}"], timeout=1.0)
    assert seen.error is not None and "shop.example.test" in seen.error


async def test_the_worker_writes_the_platform_zone_from_its_settings(powerdns: PowerDns) -> None:
    zone = _zone()
    settings = load_settings(apps={"platform_domain": zone}, dns={
        "provider": "powerdns", "powerdns_url": powerdns.api_url, "powerdns_api_key": powerdns.api_key,
        "edge_addresses": ["127.0.0.2", "fd00::2"]})
    assert await ensure_platform_zone(settings) is True
    assert await ensure_platform_zone(settings) is True  # again: nothing changes
    assert await _a(powerdns, f"web-shop-acme.apps.{zone}") == ["127.0.0.2"]
    assert await _a(powerdns, f"edge.apps.{zone}", "AAAA") == ["fd00::2"]
    wrong = load_settings(apps={"platform_domain": zone}, dns={
        "provider": "powerdns", "powerdns_url": powerdns.api_url, "powerdns_api_key": "nope",
        "edge_addresses": ["127.0.0.2"]})
    assert await ensure_platform_zone(wrong) is False  # logged, not raised: the worker still starts
    async with _client(powerdns) as c:
        await c.delete_zone(zone)
