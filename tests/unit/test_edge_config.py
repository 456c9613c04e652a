"""The testbed edge's routing table: each Ingress host goes to its Service's ready pod addresses on the
target port, as Traefik's Kubernetes provider routes; no endpoints, no router (Traefik answers 404)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_server.devenv.edge import traefik_dynamic_config

CERT, KEY = Path("/c.pem"), Path("/k.pem")


def ingress(host: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "web"},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]}}


SERVICE = {"metadata": {"namespace": "ns", "name": "web"},
           "spec": {"clusterIP": "10.251.0.9", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def endpoints(*ips: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "web"},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 8080}]}]}


def test_a_host_routes_to_every_ready_pod_on_the_target_port() -> None:
    config = traefik_dynamic_config([ingress("web-p-t.apps.test")], {("ns", "web"): SERVICE}, CERT, KEY,
                                    {("ns", "web"): endpoints("10.244.0.5", "10.244.1.7")})
    routers, services = config["http"]["routers"], config["http"]["services"]
    assert {r["rule"] for r in routers.values()} == {"Host(`web-p-t.apps.test`)"}
    assert {tuple(r["entryPoints"]) for r in routers.values()} == {("web",), ("websecure",)}
    (backend,) = services.values()
    assert backend["loadBalancer"]["servers"] == [{"url": "http://10.244.0.5:8080"}, {"url": "http://10.244.1.7:8080"}]
    assert config["tls"]["stores"]["default"]["defaultCertificate"] == {"certFile": "/c.pem", "keyFile": "/k.pem"}


def test_no_ready_endpoints_means_no_router() -> None:
    config = traefik_dynamic_config([ingress("web-p-t.apps.test")], {("ns", "web"): SERVICE}, CERT, KEY,
                                    {("ns", "web"): {"metadata": {"namespace": "ns", "name": "web"}, "subsets": []}})
    assert "http" not in config
    assert "http" not in traefik_dynamic_config([ingress("x.apps.test")], {}, CERT, KEY, {})


def test_a_custom_domains_certificate_is_served_by_sni_beside_the_default() -> None:
    custom = ingress("shop.example.test") | {"spec": {**ingress("shop.example.test")["spec"],
                                                      "tls": [{"hosts": ["shop.example.test"], "secretName": "c-tls"}]}}
    files = {("ns", "c-tls"): (Path("/certs/ns_c-tls.crt"), Path("/certs/ns_c-tls.key"))}
    config = traefik_dynamic_config([custom], {("ns", "web"): SERVICE}, CERT, KEY,
                                    {("ns", "web"): endpoints("10.42.0.7")}, files)
    assert config["tls"]["certificates"] == [{"certFile": "/certs/ns_c-tls.crt", "keyFile": "/certs/ns_c-tls.key"}]
    assert config["tls"]["stores"]["default"]["defaultCertificate"]["certFile"] == str(CERT)
    # the Secret not written yet: the default certificate only
    assert "certificates" not in traefik_dynamic_config([custom], {}, CERT, KEY, {}, {})["tls"]
