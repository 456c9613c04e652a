"""Domains, pure: the platform zone's records, what a custom domain's owner must create, and whether what DNS
answers proves ownership and points at the edge.

A custom domain is verified by two facts the owner alone can make true: a TXT record holding a random token at
`_deploy-mcp-challenge.<host>` (ownership; the token is per claim, so a second tenant's claim can never be
satisfied by the first one's record), and the host itself resolving to the edge (a CNAME to the edge's name, or
A/AAAA records holding exactly edge addresses). Wildcard custom domains are refused: HTTP-01 cannot issue them
and a DNS-01 proof would need write access to the owner's zone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

CHALLENGE_LABEL = "_deploy-mcp-challenge"
DomainStatus = Literal["pending_dns", "verifying", "issuing", "active", "failed"]
STATUSES: tuple[DomainStatus, ...] = ("pending_dns", "verifying", "issuing", "active", "failed")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TLD = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


class DomainNameError(ValueError):
    """A hostname a custom domain cannot have; the message says why and what to send instead."""


class DnsRecord(BaseModel):
    """One record an owner must create (or the platform writes): `name` without the trailing dot."""

    name: str
    type: Literal["A", "AAAA", "CNAME", "TXT"]
    value: str
    purpose: str = Field(description="Why it is needed.")


def normalize_hostname(raw: str, apps_domain: str) -> str:
    """`raw` as a custom domain's hostname (lower-case, no trailing dot), or DomainNameError."""
    host = raw.strip().lower().rstrip(".")
    if host.startswith("*."):
        raise DomainNameError(f"{raw!r} is a wildcard: custom domains are single hostnames (HTTP-01 certificates "
                              "cannot cover wildcards); add each name, e.g. shop.example.com")
    if "://" in host or "/" in host or ":" in host:
        raise DomainNameError(f"{raw!r} is not a bare hostname: send just the name, e.g. shop.example.com")
    try:
        ipaddress.ip_address(host)
        raise DomainNameError(f"{raw!r} is an IP address: a custom domain is a DNS name, e.g. shop.example.com")
    except ValueError as e:
        if isinstance(e, DomainNameError):
            raise
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL.match(lb) for lb in labels) \
            or not _TLD.match(labels[-1]):
        raise DomainNameError(f"{raw!r} is not a valid DNS hostname: at least two labels of a-z, 0-9 and '-' "
                              "(at most 63 characters each), e.g. shop.example.com")
    apps = apps_domain.lower().rstrip(".")
    if host == apps or host.endswith("." + apps):
        raise DomainNameError(f"{host} is under the platform's own domain {apps}: every app already has a name "
                              "there; add a domain you own")
    return host


def is_apex(host: str) -> bool:
    """Two labels (example.com): the zone apex, which cannot hold a CNAME next to its SOA/NS, so A/AAAA instead.
    Longer names are taken as subdomains; an apex of a multi-label suffix (example.co.uk) may use A/AAAA too, the
    check accepts either."""
    return host.count(".") == 1


def challenge_name(host: str) -> str:
    return f"{CHALLENGE_LABEL}.{host}"


def required_records(host: str, token: str, edge_name: str, edge_addresses: Sequence[str]) -> list[DnsRecord]:
    """The exact records the owner of `host` must create for it to verify."""
    out = [DnsRecord(name=challenge_name(host), type="TXT", value=token,
                     purpose="proves you control the domain (keep it: re-checks read it)")]
    if is_apex(host) and edge_addresses:
        for addr in edge_addresses:
            kind: Literal["A", "AAAA"] = "AAAA" if ipaddress.ip_address(addr).version == 6 else "A"
            out.append(DnsRecord(name=host, type=kind, value=addr, purpose="sends the apex's traffic to the edge"))
    else:
        out.append(DnsRecord(name=host, type="CNAME", value=edge_name, purpose="sends traffic to the edge"))
    return out


def platform_records(apps_domain: str, edge_name: str, edge_addresses: Sequence[str]) -> list[DnsRecord]:
    """What the platform zone holds: `*.<apps domain>` (every app's hostname, one label deep) and the edge's own
    name (what custom domains CNAME to), both A/AAAA to the edge addresses."""
    out = []
    for name in (f"*.{apps_domain}", edge_name):
        for addr in edge_addresses:
            kind: Literal["A", "AAAA"] = "AAAA" if ipaddress.ip_address(addr).version == 6 else "A"
            out.append(DnsRecord(name=name, type=kind, value=addr, purpose="the edge"))
    return out


class ObservedDns(BaseModel):
    """What the resolvers answered for one host; `error` when they could not be asked (retry later)."""

    txt: list[str] = Field(default_factory=list)
    cname: str | None = None
    addresses: list[str] = Field(default_factory=list)
    error: str | None = None


class DnsCheck(BaseModel):
    """The verdict on one host: `owned` (the token is there), `points_at_edge`, and what is missing in words."""

    owned: bool
    points_at_edge: bool
    missing: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.owned and self.points_at_edge


def check_dns(host: str, token: str, edge_name: str, edge_addresses: Sequence[str], seen: ObservedDns) -> DnsCheck:
    """Whether `seen` proves ownership of `host` and sends it to the edge; `missing` names each gap and its fix."""
    missing: list[str] = []
    owned = token in seen.txt
    if not owned:
        found = f" (found {', '.join(seen.txt)[:200]})" if seen.txt else ""
        missing.append(f"TXT {challenge_name(host)} = {token} is missing{found}")
    edge = edge_name.lower().rstrip(".")
    allowed = {str(ipaddress.ip_address(a)) for a in edge_addresses}
    if seen.cname is not None:
        points = seen.cname.lower().rstrip(".") == edge
        if not points:
            missing.append(f"CNAME {host} points to {seen.cname.rstrip('.')}, not {edge}: change it to {edge}")
    elif seen.addresses:
        got = {str(ipaddress.ip_address(a)) for a in seen.addresses}
        points = bool(allowed) and got <= allowed
        if not points:
            want = ", ".join(sorted(allowed)) or edge
            missing.append(f"{host} resolves to {', '.join(sorted(got))}, not the edge ({want}): "
                           f"use CNAME {edge}" + (f" or A/AAAA {want}" if allowed else ""))
    else:
        points = False
        missing.append(f"{host} has no CNAME (or A/AAAA) record: create CNAME {host} -> {edge}")
    return DnsCheck(owned=owned, points_at_edge=points, missing=missing)


class Decision(BaseModel):
    """The status one check leads to, with what it means and the owner's next step."""

    status: DomainStatus
    detail: str | None = None
    fix: str | None = None
    verified: bool = False  # ownership and routing proven now
    done: bool = False  # failed for good: nothing more will be checked


RENEWAL_WARNING = timedelta(days=14)
"""cert-manager renews 30 days before expiry: a certificate with less than this left has missed renewals."""


def decide(check: DnsCheck | None, lookup_error: str | None, was_verified: bool, now: datetime,
           deadline: datetime, cert: tuple[str, str | None, datetime | None] | None) -> Decision:
    """The status after one check. `check` None with `lookup_error`: DNS could not be asked. `cert`: (ready |
    issuing | failed, reason, notAfter) of the domain's Certificate, None when no cluster can issue it."""
    if check is None:
        return Decision(status="verifying", detail=f"DNS could not be asked ({lookup_error}); checking again",
                        fix="nothing to do unless it persists: then tell the operator (settings dns.resolvers)")
    if not check.ok:
        gaps = "; ".join(check.missing)
        if was_verified:
            return Decision(status="pending_dns", detail=f"records stopped pointing at the edge: {gaps}",
                            fix="restore the records listed in `records`; the certificate cannot renew meanwhile")
        if now >= deadline:
            return Decision(status="failed", done=True, detail=f"not verified before {deadline:%Y-%m-%d %H:%M} UTC: "
                            f"{gaps}", fix="create the records listed in `records`, then call "
                            "`domain(action=verify)` to start over")
        return Decision(status="pending_dns", detail=gaps, fix="create the records listed in `records`; "
                        "verification retries by itself (or call `domain(action=verify)`)")
    if cert is None:
        return Decision(status="issuing", verified=True, detail="verified; no cluster is configured to issue its "
                        "certificate yet", fix="tell the operator (cert-manager and KUBECONFIG)")
    state, reason, not_after = cert
    if state == "ready":
        if not_after is not None and not_after - now < RENEWAL_WARNING:
            return Decision(status="active", verified=True, detail=f"certificate expires {not_after:%Y-%m-%d} and "
                            f"has not renewed{': ' + reason if reason else ''}",
                            fix="check that the records still point at the edge; else tell the operator")
        return Decision(status="active", verified=True)
    if state == "failed":
        return Decision(status="failed", verified=True, detail=f"the certificate could not be issued: {reason}",
                        fix="keep the CNAME/A records pointing at the edge (HTTP-01 is answered there); cert-manager "
                            "retries with backoff, `domain(action=verify)` checks again now")
    return Decision(status="issuing", verified=True, detail=reason or "waiting for the ACME order")
