"""The issue's end, on the testbed (the lead runs it: real kube-apiserver + kubelet node + the Traefik edge):
an agent adds `shop.<zone>` to an app, creates the records it was told to in the real PowerDNS, and within a
bound an HTTPS request to that name through the edge returns the app over a certificate chained to Pebble's
root. The worker is the real one (DomainActivities with the Kubernetes adapter, the install's RBAC); the fake
cert-manager plays cert-manager's controller against the API server (a stand-in CRD of the same group/kind),
with the real `acme` client against Pebble, answering HTTP-01 on Pebble's httpPort itself. Then removing the
domain deletes its Ingress, Certificate and Secret and leaves the app's own Ingress.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcp_server.devenv.embedded import Testbed
from mcp_server.devenv.images import BUSYBOX_HTTPD, busybox_web_files, push_image
from mcp_server.devenv.platform import Platform, platform_settings
from mcp_server.devenv.powerdns import PowerDns
from tests.conftest import Edge
from tests.fakes.fake_cert_manager import CERTIFICATE_CRD, acme_issuer, fulfil_on_cluster
from tests.support.pebble import Pebble
from tests.support.platform import ok, running_platform
from workflows.adapters.kube import KubeError
from workflows.adapters.powerdns import PowerDnsClient
from workflows.render.domains import domain_object_name, tls_secret_name

pytestmark = [pytest.mark.cluster, pytest.mark.node, pytest.mark.timeout(600)]
REGISTRY = "127.0.0.1:5000"


@pytest.fixture(scope="module")
def pebble(workdir: Path, powerdns: PowerDns) -> Iterator[Pebble]:
    server = Pebble(workdir / f"pebble-tb-{uuid.uuid4().hex[:6]}", f"{powerdns.host}:{powerdns.dns_port}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def zone(powerdns: PowerDns) -> AsyncIterator[tuple[PowerDnsClient, str]]:
    z = f"o{uuid.uuid4().hex[:8]}.test"
    async with PowerDnsClient(powerdns.api_url, powerdns.api_key) as dns:
        await dns.ensure_zone(z, [f"ns1.{z}"])
        await dns.replace(z, f"edge.{z}", "A", ["127.0.0.1"], ttl=30)  # the edge's own name, in the same server
        yield dns, z
        await dns.delete_zone(z)


@pytest.fixture
async def platform(database_url: str, temporal_address: str, needs_node: Testbed, powerdns: PowerDns,
                   zone: tuple[PowerDnsClient, str]) -> AsyncIterator[Platform]:
    settings = platform_settings(database_url, temporal_address, needs_node, dns={
        "edge_hostname": f"edge.{zone[1]}", "edge_addresses": ["127.0.0.1"],
        "resolvers": [f"{powerdns.host}:{powerdns.dns_port}"], "verify_max_backoff_seconds": 5})
    async with running_platform(settings) as p:
        await p.kube.apply(CERTIFICATE_CRD)
        for _ in range(100):  # the API server serves a new CRD within a few seconds
            with contextlib.suppress(KubeError):
                await p.kube.list_objects("cert-manager.io/v1", "Certificate", "default")
                break
            await asyncio.sleep(0.2)
        yield p


async def https_get(edge: Edge, host: str, trust: ssl.SSLContext) -> str:
    last = ""
    async with httpx.AsyncClient(timeout=5, verify=trust) as h:
        for _ in range(150):
            try:
                r = await h.get(f"https://127.0.0.1:{edge.https_port}/", headers={"Host": host},
                                extensions={"sni_hostname": host})
                if r.status_code == 200:
                    return r.text
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.ConnectError as e:  # the edge still serves its default certificate: not reloaded yet
                last = str(e)
            await asyncio.sleep(0.2)
    raise AssertionError(f"the edge never served {host} over a certificate Pebble issued: {last}")


async def test_an_added_domain_is_served_over_https_with_a_pebble_certificate(
        platform: Platform, edge: Edge, pebble: Pebble, zone: tuple[PowerDnsClient, str]) -> None:
    p, (dns, z) = platform, zone
    host = f"shop.{z}"
    repo = f"{p.tenant}/web"
    await push_image(REGISTRY, repo, "v1", busybox_web_files("hello shop"), cmd=BUSYBOX_HTTPD)
    async with p.client(mode="legacy") as c:
        created = ok(await c.call_tool("create_app", {"project": "shop", "name": "web", "port": 8080,
                                                      "source": {"image": f"{REGISTRY}/{repo}:v1"}}))
        assert created["phase"] == "succeeded", created
        app = await p.deps.store.get_app(p.tenant, "shop", "web")
        assert app is not None
        added = ok(await c.call_tool("domain", {"action": "add", "hostname": host, "project": "shop", "app": "web"}))
        for record in added["records"]:
            rtype, name, value = record.split(" ")
            await dns.replace(z, name, rtype, [value + ("." if rtype == "CNAME" else "")], ttl=30)

        with acme_issuer(pebble.directory_url, pebble.acme_ca, pebble.http_port) as issuer:
            async def controller() -> None:
                while True:
                    await fulfil_on_cluster(p.kube, issuer, app.namespace, pebble.root_pem())
                    await asyncio.sleep(0.5)

            task = asyncio.create_task(controller())
            try:
                d: dict[str, Any] = {}
                for _ in range(120):
                    ok(await c.call_tool("domain", {"action": "verify", "hostname": host}))
                    d = ok(await c.call_tool("domains", {"hostname": host}))["domains"][0]
                    if d["status"] == "active":
                        break
                    await asyncio.sleep(1)
                assert d["status"] == "active", d
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        trust = ssl.create_default_context(cadata=pebble.root_pem())
        assert (await https_get(edge, host, trust)).strip() == "hello shop"

        name = domain_object_name("web", host)
        ok(await c.call_tool("domain", {"action": "remove", "hostname": host}))
        for _ in range(100):
            if await p.deps.store.get_domain(p.tenant, host) is None:
                break
            await asyncio.sleep(0.2)
        ns = app.namespace
        assert await p.kube.get("networking.k8s.io/v1", "Ingress", ns, name) is None
        assert await p.kube.get("cert-manager.io/v1", "Certificate", ns, name) is None
        assert await p.kube.get("v1", "Secret", ns, tls_secret_name("web", host)) is None
        assert await p.kube.get("networking.k8s.io/v1", "Ingress", ns, "web") is not None  # the app's own stays
