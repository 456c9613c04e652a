"""Pure: a verified custom domain -> its cert-manager `Certificate` (HTTP-01 ClusterIssuer) and its own Ingress
(the host, TLS from the Secret the Certificate names), and the one ExternalDNS annotation.

Each custom domain has its own Ingress rather than a second host on the app's: removing the domain deletes
exactly its Ingress, Certificate and Secret, and a domain whose certificate is not issued yet never changes how
the app's platform hostname is served. Shapes as cert-manager.io/v1 documents them (`spec.secretName`,
`spec.dnsNames`, `spec.issuerRef{name,kind,group}`, `spec.privateKey.rotationPolicy`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from workflows.domain.labels import LABEL_APP
from workflows.render.namespace import project_labels
from workflows.render.objects import meta

CERT_API = "cert-manager.io/v1"
LABEL_DOMAIN = "deploy-mcp/domain"
EXTERNAL_DNS_HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"
PORT_NAME = "http"  # the app Service's port name (render/release.py)
DEFAULT_ISSUER = "deploy-mcp-http01"  # the ClusterIssuer manifests/ install (settings dns.issuer may name another)


def domain_object_name(app: str, hostname: str) -> str:
    """`<app>-d-<10 hex>`: a DNS label under 63 characters whatever the hostname's length, stable per hostname."""
    return f"{app}-d-{hashlib.sha256(hostname.encode()).hexdigest()[:10]}"


def tls_secret_name(app: str, hostname: str) -> str:
    return domain_object_name(app, hostname) + "-tls"


def _labels(tenant: str, project: str, app: str, hostname: str) -> dict[str, str]:
    return {**project_labels(tenant, project), LABEL_APP: app,
            LABEL_DOMAIN: hashlib.sha256(hostname.encode()).hexdigest()[:10]}


def domain_certificate(namespace: str, tenant: str, project: str, app: str, hostname: str,
                       issuer: str) -> dict[str, Any]:
    """The Certificate cert-manager issues (and renews 30 days before expiry, its default) by HTTP-01."""
    return {
        "apiVersion": CERT_API,
        "kind": "Certificate",
        "metadata": meta(domain_object_name(app, hostname), namespace, _labels(tenant, project, app, hostname)),
        "spec": {
            "secretName": tls_secret_name(app, hostname),
            "dnsNames": [hostname],
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "privateKey": {"rotationPolicy": "Always"},
        },
    }


def domain_ingress(namespace: str, tenant: str, project: str, app: str, hostname: str,
                   ingress_class: str | None, external_dns: bool = False) -> dict[str, Any]:
    """`hostname` to the app's Service over TLS with the Certificate's Secret."""
    spec: dict[str, Any] = {}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    spec["tls"] = [{"hosts": [hostname], "secretName": tls_secret_name(app, hostname)}]
    spec["rules"] = [{"host": hostname, "http": {"paths": [{
        "path": "/", "pathType": "Prefix", "backend": {"service": {"name": app, "port": {"name": PORT_NAME}}}}]}}]
    md = meta(domain_object_name(app, hostname), namespace, _labels(tenant, project, app, hostname))
    if external_dns:
        md["annotations"] = external_dns_annotations(hostname)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": md, "spec": spec}


def external_dns_annotations(hostname: str) -> dict[str, str]:
    """What ExternalDNS reads from an Ingress to write the record of `hostname` (settings dns.provider =
    external-dns)."""
    return {EXTERNAL_DNS_HOSTNAME: hostname}


def domain_objects(namespace: str, tenant: str, project: str, app: str, hostname: str, issuer: str,
                   ingress_class: str | None, external_dns: bool = False) -> list[dict[str, Any]]:
    """Everything a verified custom domain owns in the cluster but the Secret (cert-manager writes that)."""
    return [domain_certificate(namespace, tenant, project, app, hostname, issuer),
            domain_ingress(namespace, tenant, project, app, hostname, ingress_class, external_dns)]


def certificate_state(cert: dict[str, Any] | None) -> tuple[str, str | None, str | None]:
    """(ready | issuing | failed, the reason, status.notAfter) from a live Certificate's status as cert-manager
    writes it: the `Ready` condition, and `notAfter` (RFC 3339) once issued."""
    if cert is None:
        return "issuing", "the Certificate is not created yet", None
    status = cert.get("status") or {}
    not_after = status.get("notAfter")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return "ready", None, not_after
            reason = f"{cond.get('reason') or 'NotReady'}: {cond.get('message') or ''}".strip(": ")
            # cert-manager marks a failed issuance Ready=False with reason Failed (and keeps retrying with backoff)
            if cond.get("reason") in ("Failed", "Denied") or status.get("lastFailureTime"):
                return "failed", reason, not_after
            return "issuing", reason, not_after
    return "issuing", "cert-manager has not reported on it yet", not_after
