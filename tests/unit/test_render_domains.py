"""Custom domains, pure: hostnames accepted and refused, the records an owner is told to create, the verdict on
what DNS answered, the status each check leads to, and the rendered Certificate/Ingress/ClusterIssuers.

The cert-manager objects (rendered Certificate, manifests/components/tls) validate against cert-manager's own
CRD schemas when `CERT_MANAGER_CRDS` names a directory holding `cert-manager.io_certificates.yaml` and
`cert-manager.io_clusterissuers.yaml` (upstream deploy/crds/; not vendored here); without it those two tests
check the fields cert-manager documents as required. `diagnose_deployment` names the domains in trouble.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tools.diagnose import domain_troubles
from tools.records import DomainRecord
from workflows.domain.domains import (
    DnsCheck,
    DomainNameError,
    ObservedDns,
    check_dns,
    decide,
    normalize_hostname,
    platform_records,
    required_records,
)
from workflows.render.domains import (
    EXTERNAL_DNS_HOSTNAME,
    certificate_state,
    domain_certificate,
    domain_ingress,
    domain_object_name,
)

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
EDGE = "edge.apps.example.com"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "why"), [
    ("*.shop.example.com", "wildcard"), ("192.0.2.1", "IP address"), ("https://shop.example.com", "bare hostname"),
    ("localhost", "valid DNS hostname"), ("a..b.com", "valid DNS hostname"), ("x" * 64 + ".com", "valid DNS"),
    ("web-shop-acme.apps.example.com", "platform's own domain"), ("apps.example.com", "platform's own domain"),
    ("shop.example.123", "valid DNS hostname"),
])
def test_hostnames_refused_say_why(raw: str, why: str) -> None:
    with pytest.raises(DomainNameError, match=why):
        normalize_hostname(raw, "apps.example.com")


def test_hostnames_are_normalised() -> None:
    assert normalize_hostname(" Shop.Example.COM. ", "apps.example.com") == "shop.example.com"


def test_records_cname_for_a_subdomain_a_aaaa_for_an_apex() -> None:
    sub = required_records("shop.example.com", "tok", EDGE, ["192.0.2.10", "2001:db8::10"])
    assert [(r.type, r.name, r.value) for r in sub] == [
        ("TXT", "_deploy-mcp-challenge.shop.example.com", "tok"), ("CNAME", "shop.example.com", EDGE)]
    apex = required_records("example.com", "tok", EDGE, ["192.0.2.10", "2001:db8::10"])
    assert [(r.type, r.value) for r in apex[1:]] == [("A", "192.0.2.10"), ("AAAA", "2001:db8::10")]
    assert [r.type for r in required_records("example.com", "tok", EDGE, [])] == ["TXT", "CNAME"]  # no addresses
    wild = platform_records("apps.example.com", EDGE, ["192.0.2.10"])
    assert [(r.name, r.type) for r in wild] == [("*.apps.example.com", "A"), (EDGE, "A")]


def test_the_dns_verdict_names_each_gap() -> None:
    ok = check_dns("shop.example.com", "tok", EDGE, ["192.0.2.10"], ObservedDns(txt=["tok"], cname=EDGE + "."))
    assert ok.ok and ok.missing == []
    by_address = check_dns("example.com", "tok", EDGE, ["192.0.2.10"], ObservedDns(txt=["tok"],
                                                                                     addresses=["192.0.2.10"]))
    assert by_address.ok
    wrong = check_dns("shop.example.com", "tok", EDGE, ["192.0.2.10"],
                      ObservedDns(txt=["other"], addresses=["192.0.2.10", "198.51.100.1"]))
    assert not wrong.owned and not wrong.points_at_edge
    assert "TXT _deploy-mcp-challenge.shop.example.com = tok is missing (found other)" in wrong.missing[0]
    assert "198.51.100.1" in wrong.missing[1] and f"CNAME {EDGE}" in wrong.missing[1]
    moved = check_dns("shop.example.com", "tok", EDGE, [], ObservedDns(txt=["tok"], cname="elsewhere.net."))
    assert moved.owned and "points to elsewhere.net, not " + EDGE in moved.missing[0]


def test_each_check_leads_to_an_explicit_status() -> None:
    gap = DnsCheck(owned=False, points_at_edge=True, missing=["TXT x missing"])
    good = DnsCheck(owned=True, points_at_edge=True)
    later, past = NOW + timedelta(hours=1), NOW - timedelta(seconds=1)
    assert decide(None, "timeout", False, NOW, later, None).status == "verifying"
    assert decide(gap, None, False, NOW, later, None).status == "pending_dns"
    failed = decide(gap, None, False, NOW, past, None)
    assert failed.status == "failed" and failed.done and "action=verify" in (failed.fix or "")
    drifted = decide(gap, None, True, NOW, past, None)  # verified once: never expires, says what moved
    assert drifted.status == "pending_dns" and not drifted.done and "stopped pointing" in (drifted.detail or "")
    assert decide(good, None, False, NOW, later, None).status == "issuing"
    assert decide(good, None, False, NOW, later, ("issuing", "Issuing", None)).status == "issuing"
    active = decide(good, None, True, NOW, later, ("ready", None, NOW + timedelta(days=60)))
    assert active.status == "active" and active.detail is None
    expiring = decide(good, None, True, NOW, later, ("ready", None, NOW + timedelta(days=5)))
    assert expiring.status == "active" and "has not renewed" in (expiring.detail or "")
    acme = decide(good, None, True, NOW, later, ("failed", "urn:ietf:params:acme:error:dns: NXDOMAIN", None))
    assert acme.status == "failed" and "NXDOMAIN" in (acme.detail or "") and not acme.done


def test_certificate_status_as_cert_manager_writes_it() -> None:
    assert certificate_state(None)[0] == "issuing"
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}],
                        "notAfter": "2027-03-01T00:00:00Z"}}
    assert certificate_state(ready) == ("ready", None, "2027-03-01T00:00:00Z")
    failed = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Failed",
                                         "message": "order failed"}], "lastFailureTime": "2026-12-01T00:00:00Z"}}
    assert certificate_state(failed) == ("failed", "Failed: order failed", None)
    issuing = {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "DoesNotExist"}]}}
    assert certificate_state(issuing)[0] == "issuing"


def test_the_ingress_names_the_certificate_secret_and_external_dns_by_setting() -> None:
    cert = domain_certificate("ns", "acme", "shop", "web", "shop.example.com", "deploy-mcp-http01")
    ing = domain_ingress("ns", "acme", "shop", "web", "shop.example.com", "traefik", external_dns=True)
    assert ing["spec"]["tls"] == [{"hosts": ["shop.example.com"], "secretName": cert["spec"]["secretName"]}]
    assert ing["metadata"]["annotations"] == {EXTERNAL_DNS_HOSTNAME: "shop.example.com"}
    assert "annotations" not in domain_ingress("ns", "acme", "shop", "web", "shop.example.com", None)["metadata"]
    long_host = "a" * 60 + ".b" * 90 + ".com"
    assert len(domain_object_name("web", long_host)) <= 63


def _crds() -> dict[str, dict[str, Any]]:
    root = os.environ.get("CERT_MANAGER_CRDS")
    if not root:
        return {}
    out = {}
    for name in ("certificates", "clusterissuers"):
        crd = yaml.safe_load((Path(root) / f"cert-manager.io_{name}.yaml").read_text())
        v1 = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        out[crd["spec"]["names"]["kind"]] = v1["schema"]["openAPIV3Schema"]
    return out


def _component() -> list[dict[str, Any]]:
    out = subprocess.run([KUBECTL, "kustomize", str(MANIFESTS / "components" / "tls")], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:  # a Component renders only inside a Kustomization: read its files directly
        docs = []
        for f in ("issuers.yaml", "wildcard.yaml"):
            docs += [d for d in yaml.safe_load_all((MANIFESTS / "components" / "tls" / f).read_text()) if d]
        return docs
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_cert_manager_objects_fit_its_schema() -> None:
    objs = [domain_certificate("ns", "acme", "shop", "web", "shop.example.com", "deploy-mcp-http01"),
            *[o for o in _component() if o["apiVersion"] == "cert-manager.io/v1"]]
    assert sorted(o["kind"] for o in objs) == ["Certificate", "Certificate", "ClusterIssuer", "ClusterIssuer"]
    schemas = _crds()
    for obj in objs:
        if schemas:
            jsonschema.validate({k: v for k, v in obj.items() if k != "metadata"}, schemas[obj["kind"]])
        if obj["kind"] == "Certificate":
            assert obj["spec"]["secretName"] and obj["spec"]["dnsNames"]
            assert obj["spec"]["issuerRef"]["kind"] == "ClusterIssuer"
        else:
            solver = obj["spec"]["acme"]["solvers"][0]
            assert obj["spec"]["acme"]["privateKeySecretRef"]["name"] and ("http01" in solver or "dns01" in solver)


def _record(host: str, status: str, detail: str | None = None, verified: bool = False) -> DomainRecord:
    return DomainRecord(id=uuid.uuid4(), app_id=uuid.uuid4(), tenant="acme", project="shop", app="web",
                        namespace="ns", hostname=host, kind="custom", status=status, verification_token="t",
                        tls_secret=None, detail=detail, fix=None, verify_deadline=None,
                        verified_at=NOW if verified else None, checked_at=None, cert_not_after=None,
                        workflow_id=None, created_at=NOW, updated_at=NOW)


def test_diagnose_names_the_domains_an_agent_must_act_on() -> None:
    troubles = domain_troubles([
        _record("a.example.com", "pending_dns", "TXT missing"),  # waiting for the owner: not a release problem
        _record("b.example.com", "pending_dns", "records stopped pointing at the edge: x", verified=True),
        _record("c.example.com", "failed", "the certificate could not be issued: rateLimited"),
        _record("d.example.com", "active", "certificate expires 2026-12-05 and has not renewed"),
        _record("e.example.com", "active"),
    ])
    assert [t.split(":")[0] for t in troubles] == ["b.example.com", "c.example.com", "d.example.com"]
    assert "rateLimited" in troubles[1] and "has not renewed" in troubles[2]
