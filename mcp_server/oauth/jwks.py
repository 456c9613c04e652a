"""An external issuer's signing keys: its discovery document (`<issuer>/.well-known/openid-configuration`, OpenID
Connect Discovery 1.0) names its `jwks_uri`; the key set there is kept `jwks_cache_seconds`, fetched again early
when a token names a key not in it (the issuer rotated), but at most once per `jwks_refetch_seconds`, so a flood
of tokens with made-up key ids costs the issuer one request, not one each. A failed fetch keeps the keys held."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

log = logging.getLogger(__name__)
MAX_BYTES = 256 * 1024
# the key type each accepted algorithm verifies with (RFC 7518 §3.1); a key of another type never matches
KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}


class KeysUnavailable(Exception):
    """The issuer's keys could not be read and none are held; the message says which request failed."""


def _checked_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost",) or _is_loopback(parts.hostname or "")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise KeysUnavailable(f"the issuer's {what} {url!r} is not https (http only on a loopback address)")
    return url


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class IssuerKeys:
    def __init__(self, issuer: str, cache_seconds: float, refetch_seconds: float, *, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.cache_seconds, self.refetch_seconds = cache_seconds, refetch_seconds
        self.timeout, self.clock = timeout, clock
        self._keys: KeySet | None = None
        self._fetched = 0.0  # when the keys held were read
        self._tried: float | None = None  # when they were last asked for, read or not: the refetch budget
        self._error = "not read yet"
        self._jwks_uri: str | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the key set was read (the log says so too)

    async def key(self, kid: str | None, alg: str) -> RSAKey | ECKey | None:
        """The issuer's key `kid` for `alg`, refetched once if unknown (and the budget allows); None: no such
        key even then. Raises `KeysUnavailable` while no keys could be read."""
        async with self._lock:
            stale = self._keys is None or self.clock() - self._fetched >= self.cache_seconds
            if stale and self._may_try():
                await self._refresh()
            if self._keys is None:
                raise KeysUnavailable(f"the keys of issuer {self.issuer} could not be read: {self._error}")
            found = self._find(kid, alg)
            if found is None and self._may_try():
                await self._refresh()
                found = self._find(kid, alg)
            return found

    def _may_try(self) -> bool:
        # also after a failure: a broken issuer is asked again once per budget, not on every request
        return self._tried is None or self.clock() - self._tried >= self.refetch_seconds

    def _find(self, kid: str | None, alg: str) -> RSAKey | ECKey | None:
        assert self._keys is not None
        usable = [k for k in self._keys if isinstance(k, RSAKey | ECKey) and k.key_type == KEY_TYPES[alg]
                  and k.get("use") in (None, "sig") and k.get("alg") in (None, alg)
                  and (alg != "ES256" or k.get("crv") == "P-256")]
        if kid is None:
            # a token without `kid` is usable only when the issuer has one key for its algorithm
            return usable[0] if len(usable) == 1 else None
        return next((k for k in usable if k.kid == kid), None)

    async def _refresh(self) -> None:
        """Read the key set; a failure keeps the keys held (and says why in the log)."""
        self._tried = self.clock()
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as http:
                if self._jwks_uri is None:
                    self._jwks_uri = await self._discover(http)
                doc = await _get_json(http, self._jwks_uri, "key set")
            keys = doc.get("keys")
            if not isinstance(keys, list):
                raise KeysUnavailable(f"the key set at {self._jwks_uri} has no `keys` list")
        except (KeysUnavailable, httpx.HTTPError) as e:
            self._jwks_uri = None  # discover again next time: the issuer may have moved its keys
            self._error = str(e) if isinstance(e, KeysUnavailable) else f"a request failed ({type(e).__name__})"
            log.warning("reading the keys of %s failed (%s keys held): %s", self.issuer,
                        "no" if self._keys is None else "the", self._error)
            return
        # one key the library cannot read (another algorithm family, say) must not hide the others
        readable = []
        for k in keys:
            try:
                readable.append(KeySet.import_key_set({"keys": [k]}).keys[0])
            except (JoseError, ValueError, TypeError, KeyError):
                log.info("skipped a key of the issuer's key set it cannot read (kty %r)",
                         k.get("kty") if isinstance(k, dict) else None)
        self._keys, self._fetched = KeySet(readable), self.clock()
        self.fetches += 1
        log.info("read %d key(s) of %s from %s", len(readable), self.issuer, self._jwks_uri)

    async def _discover(self, http: httpx.AsyncClient) -> str:
        url = _checked_url(self.issuer.rstrip("/") + "/.well-known/openid-configuration", "discovery document")
        doc = await _get_json(http, url, "discovery document")
        # OpenID Connect Discovery §4.3: the document must name exactly the issuer it was fetched for
        if doc.get("issuer") != self.issuer:
            raise KeysUnavailable(f"the discovery document at {url} names issuer {doc.get('issuer')!r}, not "
                                  f"{self.issuer!r}; set oauth.oidc.issuer to the issuer exactly as it names itself")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeysUnavailable(f"the discovery document at {url} has no jwks_uri")
        return _checked_url(jwks_uri, "jwks_uri")


async def _get_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    r = await http.get(url, headers={"Accept": "application/json"})
    if r.status_code != 200:
        raise KeysUnavailable(f"GET {url} ({what}) answered HTTP {r.status_code}")
    if len(r.content) > MAX_BYTES:
        raise KeysUnavailable(f"the {what} at {url} is larger than {MAX_BYTES} bytes")
    try:
        doc = r.json()
    except ValueError as e:
        raise KeysUnavailable(f"the {what} at {url} is not JSON") from e
    if not isinstance(doc, dict):
        raise KeysUnavailable(f"the {what} at {url} is not a JSON object")
    return doc
