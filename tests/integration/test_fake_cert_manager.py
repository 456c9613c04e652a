"""Certificates from a REAL ACME server: Debian's Pebble on loopback, resolving names through the REAL PowerDNS
(the platform zone's wildcard and edge records, the owner's CNAME and TXT), fulfilled by the fake cert-manager
(tests/fakes/fake_cert_manager.py) with the real `acme` client, which answers HTTP-01 on Pebble's httpPort.

- An issued chain verifies up to the root Pebble generated at start; the Secret is kubernetes.io/tls with
  tls.crt/tls.key/ca.crt; the Certificate is Ready with notAfter 90 days out and renewalTime at two thirds.
- Pebble refusing (a name its DNS cannot resolve) ends as Ready=False reason Failed with Pebble's own reason,
  and the domain's status reads `failed` naming it.
- Through the tools and the real custom-domain workflow: add -> the records created in PowerDNS -> `active`
  with the certificate's expiry, in get_app too; remove deletes its Ingress, Certificate and Secret only.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from mcp.client import Client

from mcp_server.devenv.powerdns import PowerDns
from mcp_server.server import ServerDeps, build_server
from mcp_server.store import PgStore
from tests.fakes.fake_cert_manager import FakeCertManager, acme_issuer
from tests.support.pebble import Pebble
from tests.support.platform import ok
from tests.support.stand_ins import Cluster, StandInImages, stand_in_worker
from tools.context import PlatformConfig, Principal
from workflows.activities.domains import DomainActivities, DomainConfig
from workflows.adapters.powerdns import PowerDnsClient
from workflows.domain.domains import decide, platform_records
from workflows.domain.secretbox import SecretBox
from workflows.render.domains import certificate_state, domain_certificate, domain_object_name, tls_secret_name

KEY = Fernet.generate_key()


@pytest.fixture(scope="module")
def pebble(workdir: Path, powerdns: PowerDns) -> Iterator[Pebble]:
    server = Pebble(workdir / f"pebble-{uuid.uuid4().hex[:6]}", f"{powerdns.host}:{powerdns.dns_port}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Zones:
    dns: PowerDnsClient
    apps: str  # the platform's apps domain, its zone holding *.apps and the edge
    owner: str  # the custom domain owner's zone

    @property
    def edge(self) -> str:
        return f"edge.{self.apps}"


@pytest.fixture
async def zones(powerdns: PowerDns) -> AsyncIterator[Zones]:
    u = uuid.uuid4().hex[:8]
    async with PowerDnsClient(powerdns.api_url, powerdns.api_key) as dns:
        z = Zones(dns, f"apps.p{u}.test", f"o{u}.test")
        for zone in (z.apps, z.owner):
            await dns.ensure_zone(zone, [f"ns1.{zone}"])
        await dns.apply(z.apps, platform_records(z.apps, z.edge, ["127.0.0.1"]), ttl=30)
        yield z
        for zone in (z.apps, z.owner):
            await dns.delete_zone(zone)


def chain_verifies(chain_pem: str, root_pem: str) -> None:
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    for child, parent in zip(certs, [*certs[1:], root], strict=True):
        child.verify_directly_issued_by(parent)


async def test_pebble_issues_a_chain_to_its_root_and_refuses_an_unresolvable_name(
        pebble: Pebble, zones: Zones) -> None:
    host = f"shop.{zones.owner}"
    await zones.dns.replace(zones.owner, host, "CNAME", [zones.edge + "."], ttl=30)
    with acme_issuer(pebble.directory_url, pebble.acme_ca, pebble.http_port) as issuer:
        fake = FakeCertManager(issuer, root_pem=pebble.root_pem())
        cert = domain_certificate("ns1", "acme", "shop", "web", host, "deploy-mcp-http01")
        await fake.apply(cert)
        assert certificate_state(await fake.get(cert["apiVersion"], "Certificate", "ns1", cert["metadata"]["name"])
                                 )[0] == "issuing"
        await fake.settle()
        live = await fake.get(cert["apiVersion"], "Certificate", "ns1", cert["metadata"]["name"])
        state, reason, not_after = certificate_state(live)
        assert state == "ready", reason
        assert not_after is not None
        expires = dt.datetime.fromisoformat(not_after)
        assert dt.timedelta(days=89) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=90)
        secret = await fake.get("v1", "Secret", "ns1", tls_secret_name("web", host))
        assert secret is not None and secret["type"] == "kubernetes.io/tls"
        chain = base64.b64decode(secret["data"]["tls.crt"]).decode()
        chain_verifies(chain, pebble.root_pem())
        leaf = x509.load_pem_x509_certificate(chain.encode())
        assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName) == [host]

        missing = domain_certificate("ns1", "acme", "shop", "web", f"nowhere.{zones.owner}", "deploy-mcp-http01")
        await fake.apply(missing)
        await fake.settle()
        state, reason, _ = certificate_state(await fake.get(CERT, "Certificate", "ns1", missing["metadata"]["name"]))
        assert state == "failed" and reason is not None and "nowhere" in reason, reason
        now = dt.datetime.now(dt.UTC)
        from workflows.domain.domains import DnsCheck
        d = decide(DnsCheck(owned=True, points_at_edge=True), None, True, now, now, (state, reason, None))
        assert d.status == "failed" and "could not be issued" in (d.detail or "") and d.fix


CERT = "cert-manager.io/v1"


async def test_an_agent_adds_a_domain_and_it_becomes_active_with_a_real_certificate(
        pebble: Pebble, zones: Zones, store: PgStore, temporal_address: str, powerdns: PowerDns) -> None:
    host = f"shop.{zones.owner}"
    with acme_issuer(pebble.directory_url, pebble.acme_ca, pebble.http_port) as issuer:
        fake = FakeCertManager(issuer, root_pem=pebble.root_pem())
        activities = DomainActivities(store, DomainConfig(
            edge_name=zones.edge, edge_addresses=("127.0.0.1",), resolvers=(f"{powerdns.host}:{powerdns.dns_port}",),
            ingress_class="traefik"), cluster=fake)
        async with stand_in_worker(store, temporal_address, Cluster(), SecretBox(KEY), domains=activities) as wf:
            config = PlatformConfig(apps_domain=zones.apps, progress_wait_seconds=30, edge_name=zones.edge,
                                    edge_addresses=("127.0.0.1",))
            deps = ServerDeps(store=store, config=config, workflows=wf, images=StandInImages(),
                              secretbox=SecretBox(KEY))
            principal = Principal("acme", "agent", frozenset({"apps:read", "apps:write", "domains:write"}), "memory")
            async with Client(build_server(deps, transport="memory", principal=principal)) as c:
                ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "port": 8080, "wait_seconds": 30,
                                                    "source": {"image": "registry.test/team/web:v1"}}))
                added = ok(await c.call_tool("domain", {"action": "add", "hostname": host, "project": "shop",
                                                        "app": "web"}))
                for record in added["records"]:  # the owner does what the agent was told
                    rtype, name, value = record.split(" ")
                    await zones.dns.replace(zones.owner, name, rtype, [value + ("." if rtype == "CNAME" else "")],
                                            ttl=30)
                ok(await c.call_tool("domain", {"action": "verify", "hostname": host}))
                d: dict[str, object] = {}
                for _ in range(150):
                    d = ok(await c.call_tool("domains", {"hostname": host}))["domains"][0]
                    if d["status"] == "active":
                        break
                    await asyncio.sleep(0.2)
                    if d["status"] == "issuing":
                        ok(await c.call_tool("domain", {"action": "verify", "hostname": host}))
                assert d["status"] == "active", d
                expires = dt.datetime.fromisoformat(str(d["expires"]))
                assert expires - dt.datetime.now(dt.UTC) > dt.timedelta(days=89)
                app = ok(await c.call_tool("apps", {"project": "shop", "app": "web"}))
                assert app["domains"] == [{"hostname": host, "status": "active", "expires": d["expires"]}]

                name = domain_object_name("web", host)
                ns = app["namespace"]
                ingress = await fake.get("networking.k8s.io/v1", "Ingress", ns, name)
                assert ingress is not None and ingress["spec"]["rules"][0]["host"] == host
                assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": tls_secret_name("web", host)}]
                others = {k for k in fake.objects if k[3] != name and k[3] != tls_secret_name("web", host)}
                ok(await c.call_tool("domain", {"action": "remove", "hostname": host}))
                for _ in range(100):
                    if await store.get_domain("acme", host) is None:
                        break
                    await asyncio.sleep(0.1)
                assert await store.get_domain("acme", host) is None
                assert set(fake.objects) == others  # its Ingress, Certificate and Secret, nothing else
