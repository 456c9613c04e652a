"""PowerDNS Authoritative's HTTP API, as far as the platform needs it: find or create the platform zone, replace
or delete one RRset, read what a name holds.

Wire format (PowerDNS docs/http-api, `authoritative-api-swagger.yaml`), checked against a real `pdns-server`
in tests/integration/test_powerdns.py:
- every request carries `X-API-Key`; a wrong key is 401 with a plain-text body.
- `GET /api/v1/servers/{server}/zones/{zone}` answers the Zone with its `rrsets` (`name`, `type`, `ttl`,
  `records: [{content, disabled}]`), 404 when there is no such zone; names are absolute (trailing dot).
- `POST /api/v1/servers/{server}/zones` `{"name", "kind": "Native", "nameservers": [...]}` answers 201 with the
  Zone, 409 when it exists.
- `PATCH /api/v1/servers/{server}/zones/{zone}` `{"rrsets": [{"name", "type", "ttl", "changetype": "REPLACE",
  "records": [...]}]}` or `changetype: "DELETE"` answers 204; an invalid record is 422 with `{"error": "..."}`.
  REPLACE sets the whole RRset, so writing the same records twice changes nothing: every write is idempotent.

Failures are `PowerDnsError`s on the shared adapter error base; messages name the zone or record and the fix and
never hold the API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from workflows.adapters.errors import AdapterError, AuthRefused, InvalidRequest, ResourceNotFound, ServiceUnavailable
from workflows.adapters.http import http_client
from workflows.domain.domains import DnsRecord

RecordType = Literal["A", "AAAA", "CNAME", "TXT", "NS"]


class PowerDnsError(AdapterError):
    """A PowerDNS API call failed. `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PowerDnsAuthError(PowerDnsError, AuthRefused):
    """401/403: the API key is wrong (settings `dns.powerdns_api_key`, the server's `api-key`)."""


class PowerDnsNotFound(PowerDnsError, ResourceNotFound):
    """The zone does not exist on this server."""


class PowerDnsUnavailable(PowerDnsError, ServiceUnavailable):
    """Unreachable, timed out or 5xx: PowerDNS may answer later."""

    retryable = True


class PowerDnsInvalid(PowerDnsError, InvalidRequest):
    """400/422: PowerDNS refused the record itself (its message says which field); sending it again fails again."""


def absolute(name: str) -> str:
    """`name` with the trailing dot PowerDNS wants (names are case-insensitive: sent lower-case)."""
    return name.lower().rstrip(".") + "."


def txt_content(value: str) -> str:
    """A TXT record's content as PowerDNS takes it: one quoted character-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class RRset:
    """All records of one name and type. `name` is absolute; `contents` as PowerDNS shows them (TXT quoted)."""

    name: str
    type: str
    ttl: int
    contents: tuple[str, ...]


def _excerpt(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])[:300]
    except ValueError:
        pass
    return " ".join(resp.text.split())[:300] or f"HTTP {resp.status_code}"


class PowerDnsClient:
    """One PowerDNS server's API. Use as an async context manager, or call `aclose`."""

    def __init__(self, url: str, api_key: str, *, server_id: str = "localhost", timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._base = f"/api/v1/servers/{quote(server_id, safe='')}"
        self._http = http_client(base_url=self.url, headers={"X-API-Key": api_key}, timeout=timeout,
                                 connect_timeout=min(timeout, 3.0), transport=transport)

    async def __aenter__(self) -> PowerDnsClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _zone_path(self, zone: str) -> str:
        return f"{self._base}/zones/{quote(absolute(zone), safe='.')}"

    async def _request(self, method: str, path: str, what: str, *, body: Any = None) -> httpx.Response:
        try:
            resp = await self._http.request(method, path, json=body)
        except httpx.TimeoutException as e:
            raise PowerDnsUnavailable(f"PowerDNS at {self.url} did not answer in time while it {what}; "
                                      "it is retried") from e
        except httpx.HTTPError as e:
            raise PowerDnsUnavailable(f"PowerDNS at {self.url} is unreachable while it {what} ({type(e).__name__}); "
                                      "check settings dns.powerdns_url and that the webserver/API is enabled") from e
        if resp.status_code in (401, 403):
            raise PowerDnsAuthError(f"PowerDNS at {self.url} refused the API key while it {what}: set "
                                    "dns.powerdns_api_key to the server's api-key", status=resp.status_code)
        if resp.status_code == 404:
            raise PowerDnsNotFound(f"PowerDNS at {self.url} has no such zone while it {what}: create the zone or "
                                   "set dns.zone to one it serves", status=404)
        if resp.status_code in (429,) or resp.status_code >= 500:
            raise PowerDnsUnavailable(f"PowerDNS at {self.url} answered {resp.status_code} while it {what}: "
                                      f"{_excerpt(resp)}", status=resp.status_code)
        if resp.status_code >= 400:
            raise PowerDnsInvalid(f"PowerDNS refused the change while it {what}: {_excerpt(resp)}",
                                  status=resp.status_code)
        return resp

    async def zone_rrsets(self, zone: str) -> list[RRset]:
        """Every RRset of `zone` (PowerDnsNotFound when the server has no such zone)."""
        resp = await self._request("GET", self._zone_path(zone), f"read zone {absolute(zone)}")
        out = []
        for r in resp.json().get("rrsets", []):
            contents = tuple(sorted(rec["content"] for rec in r.get("records", []) if not rec.get("disabled")))
            out.append(RRset(r["name"], r["type"], int(r.get("ttl", 0)), contents))
        return out

    async def ensure_zone(self, zone: str, nameservers: Sequence[str]) -> bool:
        """The zone exists afterwards; True when this call created it (Native: served from the database)."""
        try:
            await self._request("GET", self._zone_path(zone), f"read zone {absolute(zone)}")
            return False
        except PowerDnsNotFound:
            pass
        body = {"name": absolute(zone), "kind": "Native", "nameservers": [absolute(n) for n in nameservers]}
        try:
            await self._request("POST", f"{self._base}/zones", f"created zone {absolute(zone)}", body=body)
        except PowerDnsInvalid as e:
            if e.status == 409:  # created by someone else between our GET and POST
                return False
            raise
        return True

    async def delete_zone(self, zone: str) -> None:
        try:
            await self._request("DELETE", self._zone_path(zone), f"deleted zone {absolute(zone)}")
        except PowerDnsNotFound:
            return

    async def replace(self, zone: str, name: str, rtype: RecordType, contents: Sequence[str], ttl: int) -> None:
        """`name`/`rtype` holds exactly `contents` afterwards (TXT contents unquoted: quoted here)."""
        if not contents:
            await self.delete(zone, name, rtype)
            return
        records = [{"content": txt_content(c) if rtype == "TXT" else c, "disabled": False} for c in contents]
        rrset = {"name": absolute(name), "type": rtype, "ttl": ttl, "changetype": "REPLACE", "records": records}
        await self._request("PATCH", self._zone_path(zone), f"wrote {rtype} {absolute(name)}",
                            body={"rrsets": [rrset]})

    async def delete(self, zone: str, name: str, rtype: RecordType) -> None:
        """`name`/`rtype` holds nothing afterwards (deleting what is not there is not an error)."""
        rrset = {"name": absolute(name), "type": rtype, "changetype": "DELETE"}
        await self._request("PATCH", self._zone_path(zone), f"deleted {rtype} {absolute(name)}",
                            body={"rrsets": [rrset]})

    async def rrset(self, zone: str, name: str, rtype: RecordType) -> RRset | None:
        wanted = absolute(name)
        for r in await self.zone_rrsets(zone):
            if r.name == wanted and r.type == rtype:
                return r
        return None

    async def apply(self, zone: str, records: Sequence[DnsRecord], ttl: int) -> None:
        """Each (name, type) among `records` holds exactly their values afterwards, in one PATCH (PowerDNS applies
        an rrsets list atomically); other RRsets of the zone are left alone. Idempotent."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for rec in records:
            grouped.setdefault((absolute(rec.name), rec.type), []).append(rec.value)
        rrsets: list[dict[str, Any]] = [{"name": name, "type": rtype, "ttl": ttl, "changetype": "REPLACE",
                   "records": [{"content": txt_content(v) if rtype == "TXT" else v, "disabled": False}
                               for v in sorted(set(values))]}
                  for (name, rtype), values in sorted(grouped.items())]
        current = {(r.name, r.type): r for r in await self.zone_rrsets(zone)}
        rrsets = [r for r in rrsets if (have := current.get((str(r["name"]), str(r["type"])))) is None
                  or have.ttl != ttl or have.contents != tuple(sorted(str(x["content"]) for x in r["records"]))]
        if rrsets:  # only what differs: an unchanged zone keeps its serial (no NOTIFY, no secondary transfers)
            await self._request("PATCH", self._zone_path(zone), f"wrote {len(rrsets)} RRsets in {absolute(zone)}",
                                body={"rrsets": rrsets})
