"""A FAKE cert-manager controller: it fulfils cert-manager.io/v1 `Certificate`s the way cert-manager does, with a
real ACME client (PyPI `acme`) against a real ACME server (Pebble in the tests), since no cert-manager binary can
run here.

For each Certificate it orders a certificate for `spec.dnsNames`, answers the HTTP-01 challenges itself on
the port the ACME server validates (Pebble's `httpPort`), writes the issued chain and key into the Secret
`spec.secretName` names (type kubernetes.io/tls: `tls.crt`, `tls.key`, `ca.crt`), and sets the status as
cert-manager documents it: the `Ready` condition (`True`/`Ready`, or `False` with reason `Issuing` while the
order runs and `Failed` with the ACME error when it fails, plus `lastFailureTime`), `notBefore`, `notAfter`,
`renewalTime` (two thirds into the validity, cert-manager's default) and `revision`.

`FakeCertManager` holds the objects in memory and is the custom-domain activities' `DomainCluster`
(workflows/activities/domains.py), so the ACME issuance is tested for real without a Kubernetes API server.
Against a real API server (the lead's testbed) `fulfil_on_cluster` does the same for Certificates it reads
through `workflows.adapters.kube`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from acme import challenges, client, crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwk import JWKRSA

from workflows.adapters.kube import Kube

CERT_API = "cert-manager.io/v1"
CHALLENGE_PATH = "/.well-known/acme-challenge/"


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Issued:
    chain_pem: str  # leaf first, then the intermediates, as an ACME server returns it
    key_pem: str
    not_before: dt.datetime
    not_after: dt.datetime


class _Responder(BaseHTTPRequestHandler):
    tokens: ClassVar[dict[str, str]] = {}  # each issuer's subclass holds its own (AcmeIssuer.start)

    def do_GET(self) -> None:
        token = self.path.removeprefix(CHALLENGE_PATH) if self.path.startswith(CHALLENGE_PATH) else None
        body = self.tokens.get(token or "")
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write((body or "").encode())

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class AcmeIssuer:
    """One ACME account at `directory_url`, answering HTTP-01 on 127.0.0.1:`http_port`."""

    directory_url: str
    ca_file: Path
    http_port: int
    email: str = "operator@deploy-mcp.test"
    _server: ThreadingHTTPServer | None = field(default=None, init=False)
    _client: client.ClientV2 | None = field(default=None, init=False)
    _tokens: dict[str, str] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def start(self) -> None:
        handler = type("Responder", (_Responder,), {"tokens": self._tokens})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.http_port), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _acme(self) -> client.ClientV2:
        if self._client is None:
            key = JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
            # requests takes a CA bundle's path where `acme` annotates a bool: Pebble's listener has its own CA
            net = client.ClientNetwork(key, user_agent="deploy-mcp-fake-cert-manager",
                                       verify_ssl=str(self.ca_file))  # type: ignore[arg-type]
            directory = client.ClientV2.get_directory(self.directory_url, net)
            acme = client.ClientV2(directory, net=net)
            acme.new_account(messages.NewRegistration.from_data(email=self.email, terms_of_service_agreed=True))
            self._client = acme
        return self._client

    def issue(self, dns_names: list[str], timeout: float = 60.0) -> Issued:
        """Blocking (the `acme` client is synchronous): run it in a thread. Raises the ACME error on failure."""
        with self._lock:
            acme = self._acme()
            key = ec.generate_private_key(ec.SECP256R1())
            key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
            order = acme.new_order(crypto_util.make_csr(key_pem, dns_names))
            for authz in order.authorizations:
                chall = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
                response, validation = chall.response_and_validation(acme.net.key)
                self._tokens[chall.chall.encode("token")] = validation
                acme.answer_challenge(chall, response)
            deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
            order = acme.poll_and_finalize(order, deadline)
            leaf = x509.load_pem_x509_certificate(order.fullchain_pem.encode())
            return Issued(order.fullchain_pem, key_pem.decode(), leaf.not_valid_before_utc, leaf.not_valid_after_utc)


def solver_ingress(namespace: str, host: str, service: str, ingress_class: str | None = "traefik"
                   ) -> dict[str, Any]:
    """The Ingress cert-manager's HTTP-01 solver adds while a challenge is pending: the host's
    /.well-known/acme-challenge/ to its solver Service (here: the Service in front of `AcmeIssuer`'s responder)."""
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": [{
        "path": CHALLENGE_PATH, "pathType": "Prefix",
        "backend": {"service": {"name": service, "port": {"number": 8089}}}}]}}]}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": f"cm-acme-http-solver-{service}", "namespace": namespace,
                         "labels": {"acme.cert-manager.io/http01-solver": "true"}}, "spec": spec}


def acme_reason(e: BaseException) -> str:
    """The ACME server's own words for a failed order (the authorization's error), else the exception's."""
    failed = getattr(e, "failed_authzrs", None)
    if failed:
        for authz in failed:
            for chall in authz.body.challenges:
                if chall.error is not None:
                    return f"{chall.error.typ}: {chall.error.detail}"
    return f"{type(e).__name__}: {e}"[:500]


def tls_secret(namespace: str, name: str, certificate: str, issued: Issued, root_pem: str | None
               ) -> dict[str, Any]:
    data = {"tls.crt": issued.chain_pem, "tls.key": issued.key_pem}
    if root_pem:
        data["ca.crt"] = root_pem
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {"cert-manager.io/certificate-name": certificate}},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def issuing_status(message: str = "Issuing certificate as Secret does not exist") -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "False", "reason": "DoesNotExist", "message": message},
                           {"type": "Issuing", "status": "True", "reason": "DoesNotExist", "message": message}]}


def ready_status(issued: Issued, revision: int) -> dict[str, Any]:
    lifetime = issued.not_after - issued.not_before
    return {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                            "message": "Certificate is up to date and has not expired"}],
            "notBefore": _rfc3339(issued.not_before), "notAfter": _rfc3339(issued.not_after),
            "renewalTime": _rfc3339(issued.not_before + lifetime * 2 / 3), "revision": revision}


def failed_status(reason: str, attempts: int) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "False", "reason": "Failed",
                            "message": f"The certificate request has failed to complete and will be retried: "
                                       f"{reason}"}],
            "lastFailureTime": _rfc3339(dt.datetime.now(dt.UTC)), "failedIssuanceAttempts": attempts}


@dataclass
class FakeCertManager:
    """cert-manager's Certificate controller over objects held in memory (a `DomainCluster`)."""

    issuer: AcmeIssuer
    root_pem: str | None = None
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def apply(self, obj: dict[str, Any]) -> None:
        md = obj["metadata"]
        key = (obj["apiVersion"], obj["kind"], md["namespace"], md["name"])
        old = self.objects.get(key)
        new = copy.deepcopy(obj)
        if old is not None and "status" in old:
            new["status"] = old["status"]
        self.objects[key] = new
        if obj["kind"] == "Certificate" and (old is None or old["spec"] != new["spec"]):
            new["status"] = issuing_status()
            task = asyncio.create_task(self._fulfil(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((api_version, kind, namespace, name), None)

    async def _fulfil(self, key: tuple[str, str, str, str]) -> None:
        cert = self.objects[key]
        spec, ns = cert["spec"], key[2]
        try:
            issued = await asyncio.to_thread(self.issuer.issue, list(spec["dnsNames"]))
        except Exception as e:  # any ACME failure is what cert-manager reports on the Certificate
            if key in self.objects:
                attempts = int((cert.get("status") or {}).get("failedIssuanceAttempts", 0)) + 1
                self.objects[key]["status"] = failed_status(acme_reason(e), attempts)
            return
        if key in self.objects:
            self.objects[("v1", "Secret", ns, spec["secretName"])] = tls_secret(ns, spec["secretName"], key[3],
                                                                                  issued, self.root_pem)
            revision = int((cert.get("status") or {}).get("revision", 0)) + 1
            self.objects[key]["status"] = ready_status(issued, revision)

    async def settle(self) -> None:
        """Until every issuance started so far has finished (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


@contextlib.contextmanager
def acme_issuer(directory_url: str, ca_file: Path, http_port: int) -> Iterator[AcmeIssuer]:
    issuer = AcmeIssuer(directory_url, ca_file, http_port)
    issuer.start()
    try:
        yield issuer
    finally:
        issuer.stop()


CERTIFICATE_CRD: dict[str, Any] = {
    # A stand-in for cert-manager's CRD on the testbed (cert-manager itself cannot be installed there): the same
    # group, version, kind, scope and status subresource; its schema keeps any field (validation of the objects
    # against the real schema: tests/unit/test_render_domains.py).
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "certificates.cert-manager.io", "labels": {"deploy-mcp/fake": "cert-manager"}},
    "spec": {"group": "cert-manager.io", "scope": "Namespaced",
             "names": {"kind": "Certificate", "listKind": "CertificateList", "plural": "certificates",
                       "singular": "certificate", "shortNames": ["cert", "certs"]},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


async def fulfil_on_cluster(kube: Kube, issuer: AcmeIssuer, namespace: str, root_pem: str | None = None,
                            rounds: int = 1) -> int:
    """cert-manager's part on a real API server: each Certificate of `namespace` not Ready is issued, its Secret
    applied and its status written through the status subresource. Returns how many were issued."""
    done = 0
    for _ in range(rounds):
        for cert in await kube.list_objects(CERT_API, "Certificate", namespace):
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (cert.get("status") or {}).get("conditions") or [])
            if ready:
                continue
            spec, name = cert["spec"], cert["metadata"]["name"]
            try:
                issued = await asyncio.to_thread(issuer.issue, list(spec["dnsNames"]))
            except Exception as e:  # reported on the Certificate, as cert-manager does
                await kube.patch(cert, {"status": failed_status(acme_reason(e), 1)}, subresource="status")
                continue
            await kube.apply(tls_secret(namespace, spec["secretName"], name, issued, root_pem))
            await kube.patch(cert, {"status": ready_status(issued, 1)}, subresource="status")
            done += 1
    return done
