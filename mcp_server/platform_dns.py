"""The platform zone's records, written through the PowerDNS API when the worker starts (settings dns.provider =
powerdns): `*.apps.<domain>` and the edge's own name, both to the edge addresses. Idempotent (an unchanged
zone keeps its serial), so every worker start may do it; moving the edge is a settings change and a restart.
"""

from __future__ import annotations

import logging

from mcp_server.settings import Settings
from workflows.adapters.errors import AdapterError
from workflows.adapters.powerdns import PowerDnsClient
from workflows.domain.domains import platform_records

log = logging.getLogger("deploy_mcp.dns")


async def ensure_platform_zone(settings: Settings) -> bool:
    """True when the records are in place; a refusal or an unreachable PowerDNS is logged, not raised: apps
    keep being served by the records already there."""
    d = settings.dns
    if d.provider != "powerdns":
        return False
    if not d.powerdns_url or d.powerdns_api_key is None or not d.edge_addresses:
        log.warning("dns.provider is powerdns but dns.powerdns_url, dns.powerdns_api_key or dns.edge_addresses is "
                    "unset: the platform zone is not written")
        return False
    apps = settings.apps.domain()
    zone = d.platform_zone(settings.apps.platform_domain)
    records = platform_records(apps, d.edge_name(apps), d.edge_addresses)
    try:
        async with PowerDnsClient(d.powerdns_url, d.powerdns_api_key.get_secret_value(),
                                  server_id=d.powerdns_server_id) as dns:
            await dns.ensure_zone(zone, [f"ns1.{zone}"])
            await dns.apply(zone, records, ttl=d.record_ttl)
    except AdapterError as e:
        log.warning("the platform zone %s could not be written%s: %s", zone,
                    " (retried at the next worker start)" if e.retryable else "", e)
        return False
    log.info("platform zone %s: *.%s and %s -> %s", zone, apps, d.edge_name(apps), ", ".join(d.edge_addresses))
    return True
