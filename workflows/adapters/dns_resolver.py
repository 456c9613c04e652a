"""Asking DNS what a custom domain holds (dnspython): the TXT ownership token, the host's CNAME, else its A/AAAA.

The resolvers are the operator's (settings `dns.resolvers`, `ip` or `ip:port`), else the system's. Answers are
read with the cache off: a verification retry must see a record the owner just created. A name that does not
exist or has no such record is an empty answer, not an error; only "could not ask" (timeouts, every server
failing) is `DnsLookupUnavailable`, which a retry can cure.
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from workflows.adapters.errors import ServiceUnavailable
from workflows.domain.domains import ObservedDns, challenge_name


class DnsLookupUnavailable(ServiceUnavailable):
    """No resolver answered (timeout, SERVFAIL from all): the records may be fine; ask again later."""


def _nameserver(spec: str) -> dns.nameserver.Nameserver:
    host, port = spec, 53
    if spec.startswith("["):  # [v6]:port
        host, _, rest = spec[1:].partition("]")
        port = int(rest.lstrip(":") or 53)
    elif spec.count(":") == 1:
        host, _, p = spec.partition(":")
        port = int(p)
    return dns.nameserver.Do53Nameserver(host, port)


def resolver(nameservers: Sequence[str] = (), timeout: float = 5.0) -> dns.asyncresolver.Resolver:
    r = dns.asyncresolver.Resolver(configure=not nameservers)
    if nameservers:
        r.nameservers = [_nameserver(s) for s in nameservers]
    r.lifetime = timeout
    r.cache = None
    return r


async def _answer(r: dns.asyncresolver.Resolver, name: str, rtype: str) -> list[str]:
    try:
        ans = await r.resolve(name, rtype, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as e:
        raise DnsLookupUnavailable(f"no resolver answered {rtype} {name} ({type(e).__name__}); asked again "
                                   "later") from e
    if ans.rrset is None:
        return []
    if rtype == "TXT":
        return [b"".join(rd.strings).decode(errors="replace") for rd in ans.rrset]
    if rtype == "CNAME":
        return [rd.target.to_text() for rd in ans.rrset]
    return [rd.to_text() for rd in ans.rrset]


async def observe(host: str, nameservers: Sequence[str] = (), timeout: float = 5.0) -> ObservedDns:
    """What DNS holds for `host`: the challenge TXT, the CNAME (if any), else A and AAAA. Never raises: a lookup
    that could not be made comes back as `error`."""
    r = resolver(nameservers, timeout)
    try:
        txt = await _answer(r, challenge_name(host), "TXT")
        cnames = await _answer(r, host, "CNAME")
        addresses: list[str] = []
        if not cnames:
            addresses = await _answer(r, host, "A") + await _answer(r, host, "AAAA")
    except DnsLookupUnavailable as e:
        return ObservedDns(error=str(e))
    return ObservedDns(txt=txt, cname=cnames[0] if cnames else None, addresses=addresses)
