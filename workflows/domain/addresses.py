"""Which network addresses a build may fetch source from: the classes a build must not reach (loopback,
private, link-local, cloud metadata, CGNAT, ...; IPv4 inside IPv6 judged as IPv4) and the operator's allow list.

Pure: the git adapter resolves the host and asks `refused_address`; the tools and the build share the rule."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from dataclasses import dataclass

# --- addresses a build may fetch from -------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_address(text: str) -> IPAddress:
    """An IP address as getaddrinfo returns it (an IPv6 scope "%eth0" is dropped)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def address_class(address: IPAddress) -> str | None:
    """Why a build must not fetch from `address` ("loopback", "private", ...), or None for a public address.
    IPv4-mapped and NAT64 (64:ff9b::/96) IPv6 addresses are judged by the IPv4 address they carry."""
    if address in METADATA_ADDRESSES:
        return "cloud metadata endpoint"
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is None and address in NAT64:
            mapped = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if mapped is not None:
            inner = address_class(mapped)
            return f"{inner} (IPv4 {mapped} inside IPv6)" if inner else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "carrier-grade NAT (100.64.0.0/10)"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public (special-purpose)"
    return None


@dataclass(frozen=True)
class AllowList:
    """The operator's exceptions: host names (exact, case-insensitive), IP addresses and CIDR networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def refused_address(host: str, addresses: Iterable[str], allow: Collection[str] | AllowList) -> tuple[str, str] | None:
    """The first (address, class) a build must not fetch `host` from, or None when every address is public or
    allowed. A host named in the allow list is allowed whatever it resolves to."""
    allowed = allow if isinstance(allow, AllowList) else AllowList.parse(allow)
    if allowed.allows_host(host):
        return None
    for text in addresses:
        address = parse_address(text)
        if allowed.allows_address(address):
            continue
        cls = address_class(address)
        if cls is not None:
            return str(address), cls
    return None
