"""An async client of the OCI distribution API: resolve an image tag to the digest a deployment pins, check a
manifest exists, list tags.

Deployments run `<registry>/<repository>@<digest>`, never a tag, so that what runs is exactly what was
resolved when the release was made; this module is where a tag becomes that digest. It speaks the wire
protocol directly (HEAD/GET /v2/<name>/manifests/<reference>, /v2/<name>/tags/list with Link pagination,
anonymous, Basic and Bearer-token auth), and turns every failure into a `RegistryError` whose `retryable`
tells a workflow whether trying again can help and whose message tells an agent what to do. Messages never
hold credentials or tokens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from workflows.adapters.errors import AdapterError, AuthRefused, InvalidRequest, ResourceNotFound, ServiceUnavailable
from workflows.adapters.http import http_client
from workflows.domain.addresses import AllowList, refused_address
from workflows.domain.images import ImageRef, digest_problem

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

_NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"})
_TOKEN_DEFAULT_TTL = 60.0  # the token spec's default when the token endpoint gives no expires_in
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


class RegistryError(AdapterError):
    """A registry call failed. `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, registry: str = "", status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.registry = registry
        self.status = status
        self.code = code


class ImageNotFound(RegistryError, ResourceNotFound):
    """The repository or the tag/digest does not exist (404, MANIFEST_UNKNOWN, NAME_UNKNOWN)."""

    retryable = False


class RegistryAuthError(RegistryError, AuthRefused):
    """Still 401/403 after authenticating: credentials are missing, wrong, or lack pull access."""

    retryable = False


class RegistryNotAllowed(RegistryError, InvalidRequest):
    """The registry's address is not public and not one the operator allows (`image_registry.allowed_hosts`):
    the platform never calls it, so an image reference cannot make the server reach inside its network
    (a cloud metadata endpoint, the cluster's API, a database)."""


class RegistryUnavailable(RegistryError, ServiceUnavailable):
    """The registry could not answer now: 5xx, 429, a timeout or a connection error."""

    retryable = True


@dataclass(frozen=True)
class ResolvedImage:
    """An image resolved to its content digest. `repository` is `<registry>/<repository>` as written."""

    repository: str
    digest: str
    media_type: str
    pinned: str


@dataclass(frozen=True)
class _Challenge:
    scheme: str  # lowercase: "bearer" or "basic"
    params: dict[str, str]


def _parse_challenge(header: str) -> _Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        m.group(1).lower(): re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return _Challenge(scheme.lower(), params)


def _strip_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _oci_errors(response: httpx.Response) -> list[tuple[str, str]]:
    """(code, message) pairs of an OCI error body, or [] when there is none (HEAD responses have no body)."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    out = []
    for e in errors:
        if isinstance(e, dict):
            out.append((str(e.get("code") or "UNKNOWN"), str(e.get("message") or "").strip()))
    return out


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class OciRegistry:
    """A client of one or more registries. Plain http for `insecure_hosts` (port ignored), https otherwise.

    `credentials` maps a registry host as written in references (or its API host, e.g. registry-1.docker.io)
    to (username, password), used for Basic auth and for the Bearer token endpoint. Close with `aclose()`
    or use as an async context manager.
    """

    def __init__(
        self,
        *,
        insecure_hosts: Collection[str] = ("127.0.0.1", "localhost"),
        allowed_hosts: Collection[str] = (),
        credentials: Mapping[str, tuple[str, str]] | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._insecure = frozenset(_strip_port(h) for h in insecure_hosts)
        self._allowed = AllowList.parse([*self._insecure, *(_strip_port(h) for h in allowed_hosts)])
        self._credentials = dict(credentials or {})
        self._timeout = timeout
        self._client = http_client(
            transport=transport,
            timeout=timeout,
            follow_redirects=True,  # httpx drops Authorization when a redirect leaves the origin
        )
        # Every request, a redirect's and a token service's included, goes to a public or allowed address.
        self._client.event_hooks["request"] = [self._check_destination]
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (host, scope) -> (token, expiry)
        self._basic_hosts: set[str] = set()  # hosts that asked for Basic: send it up front from then on
        self._resolving: dict[ImageRef, asyncio.Task[ResolvedImage]] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OciRegistry:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- public API ---------------------------------------------------------------------------------------

    async def resolve(self, ref: ImageRef) -> ResolvedImage:
        """The digest `ref` names now: HEAD the manifest (an index for multi-platform images), read
        Docker-Content-Digest, and hash the manifest when the registry does not send it. A reference with a
        digest is checked to exist and returned as is.

        Calls for the same reference while one is being answered share its answer (or its error): it is as
        fresh as each of them, and many agents creating apps of one image cost the registry one request, not
        one each (and one token exchange on a cold cache). A caller cancelled while waiting leaves the request
        to the others."""
        running = self._resolving.get(ref)
        if running is None:
            running = asyncio.create_task(self._resolve(ref))
            self._resolving[ref] = running
            running.add_done_callback(lambda done: self._resolved(ref, done))
        return await asyncio.shield(running)

    def _resolved(self, ref: ImageRef, done: asyncio.Task[ResolvedImage]) -> None:
        del self._resolving[ref]  # the entry is this task: no other is made for `ref` while it runs
        if not done.cancelled():
            done.exception()  # seen here, so a request whose callers all went away logs no "never retrieved"

    async def _resolve(self, ref: ImageRef) -> ResolvedImage:
        url = self._manifest_url(ref)
        headers = {"Accept": _ACCEPT}
        response = await self._request("HEAD", url, ref, headers=headers)
        if response.status_code == 405:  # a registry without HEAD on manifests
            response = await self._request("GET", url, ref, headers=headers)
        self._raise_for_status(response, ref)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        digest = response.headers.get("Docker-Content-Digest", "").strip()
        same_algorithm = ref.digest is not None and digest.partition(":")[0] == ref.digest.partition(":")[0]
        if same_algorithm and digest != ref.digest:
            raise RegistryError(
                f"registry {ref.registry} answered {ref} with the digest {digest}: it does not serve the content "
                "addressed by that digest; use another registry",
                registry=ref.registry,
            )
        if not digest or digest_problem(digest) or not digest.startswith("sha256:"):
            if response.request.method != "GET":
                response = await self._request("GET", url, ref, headers=headers)
                self._raise_for_status(response, ref)
                media_type = response.headers.get("Content-Type", "").split(";")[0].strip() or media_type
            computed = "sha256:" + hashlib.sha256(response.content).hexdigest()
            if ref.digest is not None and ref.digest.startswith("sha256:") and computed != ref.digest:
                raise RegistryError(
                    f"registry {ref.registry} served content for {ref} whose sha256 is {computed}: the manifest "
                    "does not match its digest",
                    registry=ref.registry,
                )
            digest = computed
            if not media_type or media_type not in MANIFEST_MEDIA_TYPES:
                media_type = self._body_media_type(response) or media_type
        final = ref.digest or digest
        return ResolvedImage(repository=ref.name, digest=final, media_type=media_type, pinned=ref.pinned(final))

    async def manifest_exists(self, ref: ImageRef) -> bool:
        """Whether the registry has a manifest for `ref`'s tag or digest. Other failures raise."""
        try:
            response = await self._request("HEAD", self._manifest_url(ref), ref, headers={"Accept": _ACCEPT})
            if response.status_code == 405:
                response = await self._request("GET", self._manifest_url(ref), ref, headers={"Accept": _ACCEPT})
            self._raise_for_status(response, ref)
        except ImageNotFound:
            return False
        return True

    async def list_tags(self, ref: ImageRef, limit: int = 1000, *, page_size: int = 100) -> list[str]:
        """Up to `limit` tags of `ref`'s repository in lexical order, asking for `page_size` a request and
        following Link rel="next" pagination. `ref`'s tag and digest are ignored. Sorted here because not every
        registry keeps the spec's order: distribution 2.8 ignores `n`/`last` and answers in storage order."""
        if limit < 1 or page_size < 1:
            raise ValueError("limit and page_size must be at least 1")
        base = httpx.URL(f"{self._scheme(ref)}://{ref.api_host}/v2/{ref.repository}/tags/list")
        url: httpx.URL | None = base.copy_with(params={"n": str(min(page_size, limit))})
        tags: list[str] = []
        seen: set[str] = set()
        while url is not None and len(tags) < limit:
            response = await self._request("GET", url, ref, headers={"Accept": "application/json"})
            self._raise_for_status(response, ref, what="repository")
            try:
                page = response.json().get("tags") or []
            except (ValueError, AttributeError) as e:
                raise RegistryError(
                    f"registry {ref.registry} answered the tag list of {ref.name} with something that is not the "
                    "JSON the distribution API defines",
                    registry=ref.registry,
                ) from e
            tags.extend(str(t) for t in page)
            link = response.links.get("next", {}).get("url")
            url = None
            if link and page:
                nxt = response.request.url.join(link)
                if (nxt.scheme, nxt.netloc) != (base.scheme, base.netloc) or str(nxt) in seen:
                    break  # never follow a registry elsewhere, and never loop
                seen.add(str(nxt))
                url = nxt
        return sorted(tags)[:limit]

    # -- HTTP, auth and errors ----------------------------------------------------------------------------

    def _scheme(self, ref: ImageRef) -> str:
        return "http" if _strip_port(ref.api_host) in self._insecure else "https"

    def _manifest_url(self, ref: ImageRef) -> httpx.URL:
        return httpx.URL(f"{self._scheme(ref)}://{ref.api_host}/v2/{ref.repository}/manifests/{ref.reference}")

    def _creds(self, ref: ImageRef) -> tuple[str, str] | None:
        return self._credentials.get(ref.registry) or self._credentials.get(ref.api_host)

    @staticmethod
    def _scope(ref: ImageRef) -> str:
        return f"repository:{ref.repository}:pull"

    def _cached_auth(self, ref: ImageRef) -> str | None:
        cached = self._tokens.get((ref.api_host, self._scope(ref)))
        if cached is not None and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        creds = self._creds(ref)
        if ref.api_host in self._basic_hosts and creds is not None:
            return _basic(*creds)
        return None

    async def _check_destination(self, request: httpx.Request) -> None:
        host = request.url.host
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, request.url.port or 443,
                                                                  type=socket.SOCK_STREAM)
        except OSError:
            return  # unresolvable: the request itself fails, reported as an unreachable registry
        refused = refused_address(host, [str(info[4][0]) for info in infos], self._allowed)
        if refused is not None:
            address, cls = refused
            shown = host if host == address else f"{host} ({address})"
            raise RegistryNotAllowed(
                f"registry {shown} is a {cls} address: images come from public registries or those the operator "
                f"allows; if this is the operator's own registry, add {host} to the image_registry.allowed_hosts "
                "setting", registry=host)

    async def _send(self, method: str, url: httpx.URL | str, host: str, headers: Mapping[str, str]) -> httpx.Response:
        try:
            return await self._client.request(method, url, headers=headers)  # not streamed: the body is read
        except httpx.TimeoutException as e:
            raise RegistryUnavailable(
                f"registry {host} did not answer within {self._timeout:g} s ({type(e).__name__}); try again later",
                registry=host,
            ) from e
        except httpx.TransportError as e:
            cause = str(e) or type(e).__name__
            hint = ""
            if httpx.URL(url).scheme == "https" and re.search(r"ssl|certificate|tls", cause, re.IGNORECASE):
                hint = "; if this registry serves plain http, list its host in the platform's insecure registries"
            raise RegistryUnavailable(f"registry {host} could not be reached: {cause}{hint}", registry=host) from e

    async def _request(
        self, method: str, url: httpx.URL, ref: ImageRef, *, headers: Mapping[str, str]
    ) -> httpx.Response:
        """Send with the cached auth; on 401 answer the challenge once (token or Basic) and retry."""
        host = ref.api_host
        sent_auth = self._cached_auth(ref)
        first = dict(headers) if sent_auth is None else {**headers, "Authorization": sent_auth}
        response = await self._send(method, url, ref.registry, first)
        if response.status_code != 401:
            return response
        self._tokens.pop((host, self._scope(ref)), None)
        challenge = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        creds = self._creds(ref)
        if challenge is not None and challenge.scheme == "bearer" and challenge.params.get("realm"):
            token = await self._fetch_token(ref, challenge, creds)
            auth = f"Bearer {token}"
        elif challenge is not None and challenge.scheme == "basic" and creds is not None:
            self._basic_hosts.add(host)
            auth = _basic(*creds)
        else:
            raise self._auth_error(ref, creds, response)
        if auth == sent_auth:
            raise self._auth_error(ref, creds, response)
        response = await self._send(method, url, ref.registry, {**headers, "Authorization": auth})
        if response.status_code == 401:
            raise self._auth_error(ref, creds, response)
        return response

    async def _fetch_token(self, ref: ImageRef, challenge: _Challenge, creds: tuple[str, str] | None) -> str:
        realm = httpx.URL(challenge.params["realm"])
        params = {"scope": challenge.params.get("scope") or self._scope(ref)}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        if realm.scheme not in ("http", "https"):
            raise RegistryAuthError(
                f"registry {ref.registry} names a token service that is not an http(s) URL", registry=ref.registry
            )
        headers: dict[str, str] = {"Accept": "application/json"}
        if creds is not None:
            if realm.scheme != "https" and realm.host not in self._insecure:
                raise RegistryAuthError(
                    f"registry {ref.registry} sends clients for tokens to a plain-http service ({realm.host}); "
                    "refusing to send its credentials there",
                    registry=ref.registry,
                )
            headers["Authorization"] = _basic(*creds)
        response = await self._send("GET", realm.copy_merge_params(params), ref.registry, headers)
        if response.status_code >= 500 or response.status_code == 429:
            raise RegistryUnavailable(
                f"the token service of registry {ref.registry} ({realm.host}) answered HTTP {response.status_code}; "
                "try again later",
                registry=ref.registry,
                status=response.status_code,
            )
        if response.status_code in (401, 403):
            raise self._auth_error(ref, creds, response, token_service=realm.host)
        token: Any = None
        expires_in: Any = None
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                token = body.get("token") or body.get("access_token")
                expires_in = body.get("expires_in")
        if not isinstance(token, str) or not token:
            raise RegistryError(
                f"the token service of registry {ref.registry} ({realm.host}) answered HTTP {response.status_code} "
                "without a token",
                registry=ref.registry,
                status=response.status_code,
            )
        ttl = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else _TOKEN_DEFAULT_TTL
        self._tokens[(ref.api_host, self._scope(ref))] = (token, time.monotonic() + max(ttl - 10.0, ttl / 2))
        return token

    def _auth_error(
        self,
        ref: ImageRef,
        creds: tuple[str, str] | None,
        response: httpx.Response,
        *,
        token_service: str | None = None,
    ) -> RegistryAuthError:
        errors = _oci_errors(response)
        detail = "; ".join(f"{c}: {m}" if m else c for c, m in errors)
        where = f"registry {ref.registry}" + (f" (token service {token_service})" if token_service else "")
        if creds is None:
            why = (
                f"{where} requires credentials to pull {ref.repository} and none are configured for it; add "
                "credentials with pull access for this registry"
            )
        else:
            why = (
                f"{where} refused the configured credentials for {ref.repository}: they are wrong or lack pull "
                "access; fix the credentials or grant them pull access"
            )
        if ref.registry == "docker.io":
            why += " (Docker Hub also answers this way for a repository that does not exist)"
        return RegistryAuthError(
            why + (f" [HTTP {response.status_code}{': ' + detail if detail else ''}]"),
            registry=ref.registry,
            status=response.status_code,
            code=errors[0][0] if errors else None,
        )

    def _raise_for_status(self, response: httpx.Response, ref: ImageRef, *, what: str = "image") -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        errors = _oci_errors(response)
        codes = [c for c, _ in errors]
        code = codes[0] if codes else None
        detail = "; ".join(f"{c}: {m}" if m else c for c, m in errors)
        suffix = f" [HTTP {status}{': ' + detail if detail else ''}]"
        if status == 404 or any(c in _NOT_FOUND_CODES for c in codes):
            subject = f"repository {ref.name}" if what == "repository" else f"image {ref}"
            if "NAME_UNKNOWN" in codes and what != "repository":
                hint = f"the repository {ref.name} does not exist; check its name, or push the image first"
            elif what == "repository":
                hint = "check the repository name, or push an image to it first"
            else:
                hint = "check the repository and the tag (or digest), or push the image first"
            raise ImageNotFound(
                f"{subject} not found in registry {ref.registry}: {hint}{suffix}",
                registry=ref.registry,
                status=status,
                code=code,
            )
        if status in (401, 403):
            raise self._auth_error(ref, self._creds(ref), response)
        if status == 429 or status >= 500:
            after = response.headers.get("Retry-After")
            raise RegistryUnavailable(
                f"registry {ref.registry} is unavailable (HTTP {status}"
                + (", too many requests" if status == 429 else "")
                + (f", retry after {after} s" if after and after.isdigit() else "")
                + f"); try again later{suffix if detail else ''}",
                registry=ref.registry,
                status=status,
                code=code,
            )
        raise RegistryError(
            f"registry {ref.registry} refused the request for {ref}{suffix}",
            registry=ref.registry,
            status=status,
            code=code,
        )

    @staticmethod
    def _body_media_type(response: httpx.Response) -> str | None:
        try:
            body = json.loads(response.content)
        except ValueError:
            return None
        media_type = body.get("mediaType") if isinstance(body, dict) else None
        return media_type if isinstance(media_type, str) else None
