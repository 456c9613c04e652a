"""The OCI registry client against the real registry (Debian's docker-registry, distribution v2) on a free
loopback port, with images pushed through the distribution API by mcp_server.devenv.images; token auth and error
mapping against an in-process fake that plays a token-auth registry as the distribution spec documents it.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from mcp_server.devenv.images import (
    BUSYBOX_HTTPD,
    OCI_MANIFEST,
    build_image,
    busybox_web_files,
    docker_registry,
    push_image,
)
from mcp_server.devenv.processes import free_port
from workflows.adapters.registry import (
    ImageNotFound,
    OciRegistry,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
)
from workflows.domain.images import parse_image


@pytest.fixture(scope="module")
def registry_host() -> Iterator[str]:
    """A real docker-registry that allows deletes, storage in a temp dir, stopped by PID afterwards."""
    run_dir = Path(tempfile.mkdtemp(prefix="deploy-mcp-registry-"))
    try:
        with docker_registry(run_dir, delete=True) as host:
            yield host
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
async def oci() -> AsyncIterator[OciRegistry]:
    async with OciRegistry() as client:
        yield client


class RecordingTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport, remembering every URL requested."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.urls: list[httpx.URL] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- the real registry --------------------------------------------------------------------------------------


async def test_resolve_returns_the_pushed_digest_for_the_tag_and_the_pinned_ref(
    registry_host: str, oci: OciRegistry
) -> None:
    files = busybox_web_files("<h1>hello from the registry test</h1>")
    digest = await push_image(
        registry_host, "demo/web", "v1", files, entrypoint=BUSYBOX_HTTPD, exposed_ports=[8080], user="65534"
    )
    assert digest.startswith("sha256:") and len(digest) == 71

    resolved = await oci.resolve(parse_image(f"{registry_host}/demo/web:v1"))
    assert resolved.digest == digest
    assert resolved.media_type == OCI_MANIFEST
    assert resolved.repository == f"{registry_host}/demo/web"
    assert resolved.pinned == f"{registry_host}/demo/web@{digest}"

    by_digest = await oci.resolve(parse_image(resolved.pinned))
    assert by_digest == resolved

    again = await push_image(
        registry_host, "demo/web", "v1-again", files, entrypoint=BUSYBOX_HTTPD, exposed_ports=[8080], user="65534"
    )
    assert again == digest, "the same files and config must give the same digest"


async def test_pushed_image_is_a_runnable_oci_image(registry_host: str) -> None:
    """What the cluster will pull: the manifest names the config and one gzip'ed layer, the config's diff_id is
    the sha256 of the uncompressed tar, and the tar holds an executable /busybox and /www/index.html."""
    files = busybox_web_files("<p>ok</p>")
    digest = await push_image(
        registry_host, "demo/check", "v1", files, entrypoint=BUSYBOX_HTTPD, env={"GREETING": "hi"}, exposed_ports=[8080]
    )
    base = f"http://{registry_host}/v2/demo/check"
    async with httpx.AsyncClient() as http:
        manifest_bytes = (await http.get(f"{base}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})).content
        assert "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() == digest
        manifest = json.loads(manifest_bytes)
        config = json.loads((await http.get(f"{base}/blobs/{manifest['config']['digest']}")).content)
        layer = (await http.get(f"{base}/blobs/{manifest['layers'][0]['digest']}")).content

    assert manifest["mediaType"] == OCI_MANIFEST and len(manifest["layers"]) == 1
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"]["Entrypoint"] == BUSYBOX_HTTPD
    assert config["config"]["Env"] == ["GREETING=hi"]
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    tar_bytes = gzip.decompress(layer)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"busybox", "www", "www/index.html"}
        assert members["busybox"].isfile() and members["busybox"].mode == 0o755
        assert members["www"].isdir()
        assert members["www/index.html"].mode == 0o644
        index = tar.extractfile("www/index.html")
        assert index is not None and index.read() == b"<p>ok</p>"


async def test_manifest_exists(registry_host: str, oci: OciRegistry) -> None:
    digest = await push_image(registry_host, "demo/exists", "present", {"hello.txt": b"hi"})
    assert await oci.manifest_exists(parse_image(f"{registry_host}/demo/exists:present"))
    assert await oci.manifest_exists(parse_image(f"{registry_host}/demo/exists@{digest}"))
    assert not await oci.manifest_exists(parse_image(f"{registry_host}/demo/exists:absent"))
    assert not await oci.manifest_exists(parse_image(f"{registry_host}/demo/never-pushed:v1"))
    assert not await oci.manifest_exists(parse_image(f"{registry_host}/demo/exists@sha256:{'0' * 64}"))


async def test_list_tags_of_the_real_registry(registry_host: str) -> None:
    """Debian's docker-registry (distribution 2.8.2) ignores `n` and `last` on tags/list and answers every tag in
    storage order, with no Link header: the client still returns them all, in lexical order, and honours `limit`.
    Link pagination itself is exercised against the fake registry below, which paginates as the spec says."""
    tags = ["e5", "a1", "c3", "b2", "d4"]
    image = build_image({"t.txt": b"tags"})
    async with httpx.AsyncClient() as http:
        for tag in tags:
            assert await push_image(registry_host, "demo/tags", tag, {"t.txt": b"tags"}, client=http) == image.digest

    transport = RecordingTransport()
    async with OciRegistry(transport=transport) as oci:
        ref = parse_image(f"{registry_host}/demo/tags")
        assert await oci.list_tags(ref, page_size=2) == sorted(tags)
        pages = [u for u in transport.urls if u.path == "/v2/demo/tags/tags/list"]
        assert pages[0].params.get("n") == "2"
        assert await oci.list_tags(ref, limit=3, page_size=2) == ["a1", "b2", "c3"]
        assert await oci.list_tags(ref) == sorted(tags)


async def test_missing_tag_is_image_not_found(registry_host: str, oci: OciRegistry) -> None:
    await push_image(registry_host, "demo/missing", "v1", {"x": b"x"})
    ref = parse_image(f"{registry_host}/demo/missing:v2")
    with pytest.raises(ImageNotFound) as info:
        await oci.resolve(ref)
    assert info.value.retryable is False
    message = str(info.value)
    assert f"{registry_host}/demo/missing:v2" in message
    assert "check the repository and the tag" in message and "push the image" in message

    with pytest.raises(ImageNotFound, match=r"repository 127\.0\.0\.1:[0-9]+/demo/nothing-here not found"):
        await oci.list_tags(parse_image(f"{registry_host}/demo/nothing-here"))


async def test_unreachable_registry_is_unavailable_and_retryable() -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    async with OciRegistry(timeout=2.0) as oci:
        with pytest.raises(RegistryUnavailable) as info:
            await oci.resolve(parse_image(f"{host}/demo/web:v1"))
    assert info.value.retryable is True
    assert f"registry {host} could not be reached" in str(info.value)


# -- a fake token-auth registry (in process) ----------------------------------------------------------------


class FakeTokenRegistry:
    """Plays a registry behind token auth, as the distribution token spec documents it: an unauthenticated
    request gets 401 with `WWW-Authenticate: Bearer realm=...,service=...,scope=repository:<name>:pull`; the
    realm answers GET ?service=&scope= (Basic credentials when it requires them) with {"token": ...}; the
    registry then answers requests that carry `Authorization: Bearer <token>`."""

    host = "registry.fake.test"
    realm = "https://auth.fake.test/token"
    service = "fake-registry"
    repository = "team/app"

    def __init__(
        self,
        *,
        credentials: tuple[str, str] | None = None,
        token_field: str = "token",  # noqa: S107  (the JSON field the token service answers with)
        send_digest: bool = True,
        tags: tuple[str, ...] = ("v1",),
        absolute_links: bool = False,
    ) -> None:
        self.absolute_links = absolute_links
        self.credentials = credentials
        self.token_field = token_field
        self.send_digest = send_digest
        self.manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()
        self.digest = "sha256:" + hashlib.sha256(self.manifest).hexdigest()
        self.tags = list(tags)
        self.issued = 0
        self.valid_token: str | None = None
        self.fault: httpx.Response | None = None
        self.requests: list[httpx.Request] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def revoke(self) -> None:
        self.valid_token = None

    @staticmethod
    def _errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.Response(status, json={"errors": [{"code": code, "message": message}]}, headers=headers)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "auth.fake.test":
            return self._token(request)
        assert request.url.host == self.host and request.url.scheme == "https"
        scope = f"repository:{self.repository}:pull"
        if self.valid_token is None or request.headers.get("Authorization") != f"Bearer {self.valid_token}":
            challenge = f'Bearer realm="{self.realm}",service="{self.service}",scope="{scope}"'
            return self._errors(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})
        if self.fault is not None:
            return self.fault
        prefix = f"/v2/{self.repository}/"
        if not request.url.path.startswith(prefix):
            return self._errors(404, "NAME_UNKNOWN", "repository name not known to registry")
        rest = request.url.path[len(prefix) :]
        if rest == "tags/list":
            return self._tags(request)
        reference = rest.removeprefix("manifests/")
        if reference not in (*self.tags, self.digest):
            return self._errors(404, "MANIFEST_UNKNOWN", "manifest unknown")
        headers = {"Content-Type": OCI_MANIFEST}
        if self.send_digest:
            headers["Docker-Content-Digest"] = self.digest
        return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else self.manifest)

    def _token(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        assert params.get("service") == self.service
        assert params.get("scope") == f"repository:{self.repository}:pull"
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if request.headers.get("Authorization") != expected:
                return self._errors(401, "UNAUTHORIZED", "invalid username or password")
        self.issued += 1
        self.valid_token = f"fake-token-{self.issued}"
        return httpx.Response(200, json={self.token_field: self.valid_token, "expires_in": 300})

    def _tags(self, request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("n", "1000"))
        last = request.url.params.get("last")
        ordered = sorted(self.tags)
        remaining = [t for t in ordered if last is None or t > last]
        page = remaining[:n]
        headers = {}
        if len(remaining) > n:
            origin = f"https://{self.host}" if self.absolute_links else ""
            headers["Link"] = f'<{origin}/v2/{self.repository}/tags/list?last={page[-1]}&n={n}>; rel="next"'
        return httpx.Response(200, json={"name": self.repository, "tags": page}, headers=headers)


FAKE_REF = f"{FakeTokenRegistry.host}/{FakeTokenRegistry.repository}:v1"


@pytest.mark.parametrize("token_field", ["token", "access_token"])
async def test_fake_token_registry_resolve_gets_a_token_once(token_field: str) -> None:
    fake = FakeTokenRegistry(token_field=token_field)
    async with OciRegistry(transport=fake.transport()) as oci:
        first = await oci.resolve(parse_image(FAKE_REF))
        second = await oci.resolve(parse_image(FAKE_REF))
    assert first.digest == second.digest == fake.digest
    assert first.pinned == f"registry.fake.test/team/app@{fake.digest}"
    assert [(r.method, r.url.host) for r in fake.requests] == [
        ("HEAD", "registry.fake.test"),  # anonymous: 401 with the challenge
        ("GET", "auth.fake.test"),  # the token
        ("HEAD", "registry.fake.test"),  # with the token
        ("HEAD", "registry.fake.test"),  # the cached token, at once
    ]
    assert fake.issued == 1
    assert all(a.startswith("Bearer ") for r in fake.requests[2:] if (a := r.headers.get("Authorization")))


async def test_fake_token_registry_credentials_go_to_the_token_service_only() -> None:
    fake = FakeTokenRegistry(credentials=("robot", "s3cret-pass"))
    async with OciRegistry(transport=fake.transport(), credentials={fake.host: ("robot", "s3cret-pass")}) as oci:
        assert (await oci.resolve(parse_image(FAKE_REF))).digest == fake.digest
    token_requests = [r for r in fake.requests if r.url.host == "auth.fake.test"]
    assert len(token_requests) == 1 and token_requests[0].headers["Authorization"].startswith("Basic ")
    registry_auth = [r.headers.get("Authorization") for r in fake.requests if r.url.host == fake.host]
    assert registry_auth == [None, "Bearer fake-token-1"]


async def test_fake_token_registry_refreshes_a_revoked_token() -> None:
    fake = FakeTokenRegistry()
    async with OciRegistry(transport=fake.transport()) as oci:
        await oci.resolve(parse_image(FAKE_REF))
        fake.revoke()
        assert (await oci.resolve(parse_image(FAKE_REF))).digest == fake.digest
    assert fake.issued == 2


async def test_fake_token_registry_wrong_credentials_are_an_auth_error_without_secrets() -> None:
    fake = FakeTokenRegistry(credentials=("robot", "right-pass"))
    async with OciRegistry(transport=fake.transport(), credentials={fake.host: ("robot", "wrong-pass")}) as oci:
        with pytest.raises(RegistryAuthError) as info:
            await oci.resolve(parse_image(FAKE_REF))
    message = str(info.value)
    assert info.value.retryable is False
    assert "registry registry.fake.test" in message and "refused the configured credentials" in message
    assert "pull access" in message
    for secret in ("wrong-pass", "right-pass", "fake-token", base64.b64encode(b"robot:wrong-pass").decode()):
        assert secret not in message


async def test_fake_token_registry_without_credentials_says_they_are_missing() -> None:
    fake = FakeTokenRegistry(credentials=("robot", "pass"))
    async with OciRegistry(transport=fake.transport()) as oci:
        with pytest.raises(RegistryAuthError, match="requires credentials to pull team/app and none are configured"):
            await oci.resolve(parse_image(FAKE_REF))


async def test_fake_registry_without_digest_header_is_hashed() -> None:
    fake = FakeTokenRegistry(send_digest=False)
    async with OciRegistry(transport=fake.transport()) as oci:
        resolved = await oci.resolve(parse_image(FAKE_REF))
        assert resolved.digest == fake.digest and resolved.media_type == OCI_MANIFEST
        pinned = await oci.resolve(parse_image(resolved.pinned))
        assert pinned.digest == fake.digest
    assert ("GET", f"/v2/team/app/manifests/{fake.digest}") in [(r.method, r.url.path) for r in fake.requests]


async def test_fake_registry_digest_refs_are_checked() -> None:
    fake = FakeTokenRegistry()
    async with OciRegistry(transport=fake.transport()) as oci:
        ok = await oci.resolve(parse_image(f"registry.fake.test/team/app:ignored@{fake.digest}"))
        assert ok.digest == fake.digest and ok.pinned == f"registry.fake.test/team/app@{fake.digest}"
        with pytest.raises(ImageNotFound, match="MANIFEST_UNKNOWN"):
            await oci.resolve(parse_image(f"registry.fake.test/team/app@sha256:{'a' * 64}"))


@pytest.mark.parametrize("absolute_links", [False, True])
async def test_fake_registry_lists_tags_across_pages(absolute_links: bool) -> None:
    tags = tuple(f"t{i}" for i in range(7))
    fake = FakeTokenRegistry(tags=tags, absolute_links=absolute_links)
    async with OciRegistry(transport=fake.transport()) as oci:
        assert await oci.list_tags(parse_image(FAKE_REF), page_size=3) == list(tags)
        pages = [r.url for r in fake.requests if r.url.path.endswith("/tags/list") and "Authorization" in r.headers]
        assert [(u.params.get("n"), u.params.get("last")) for u in pages] == [("3", None), ("3", "t2"), ("3", "t5")]
        fake.requests.clear()
        assert await oci.list_tags(parse_image(FAKE_REF), limit=4, page_size=3) == list(tags[:4])
        with pytest.raises(ImageNotFound, match="NAME_UNKNOWN"):
            await oci.list_tags(parse_image("registry.fake.test/team/other"))
    assert fake.issued == 2  # one token a repository scope


@pytest.mark.parametrize(
    ("fault", "error", "retryable", "words"),
    [
        (
            httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE", "message": "down"}]}),
            RegistryUnavailable,
            True,
            "HTTP 503",
        ),
        (httpx.Response(500), RegistryUnavailable, True, "HTTP 500"),
        (
            httpx.Response(429, headers={"Retry-After": "7"}, json={"errors": [{"code": "TOOMANYREQUESTS"}]}),
            RegistryUnavailable,
            True,
            "retry after 7 s",
        ),
        (
            httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}),
            ImageNotFound,
            False,
            "push an image to it first",
        ),
        (
            httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "requested access is denied"}]}),
            RegistryAuthError,
            False,
            "DENIED",
        ),
        (
            httpx.Response(400, json={"errors": [{"code": "NAME_INVALID", "message": "invalid name"}]}),
            RegistryError,
            False,
            "NAME_INVALID: invalid name",
        ),
    ],
)
async def test_fake_registry_errors_map_to_types(
    fault: httpx.Response, error: type[RegistryError], retryable: bool, words: str
) -> None:
    fake = FakeTokenRegistry()
    fake.fault = fault
    async with OciRegistry(transport=fake.transport()) as oci:
        with pytest.raises(error) as info:
            await oci.list_tags(parse_image(FAKE_REF))  # a GET, so the error body is there to parse
    assert type(info.value) is error
    assert info.value.retryable is retryable
    assert info.value.status == fault.status_code
    assert "registry.fake.test" in str(info.value) and words in str(info.value)


async def test_fake_basic_auth_registry() -> None:
    expected = "Basic " + base64.b64encode(b"robot:pass").decode()
    seen: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != expected:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
        return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + "b" * 64})

    ref = parse_image("basic.fake.test/team/app:v1")
    async with OciRegistry(transport=httpx.MockTransport(handle)) as oci:
        with pytest.raises(RegistryAuthError, match="none are configured"):
            await oci.resolve(ref)
    async with OciRegistry(
        transport=httpx.MockTransport(handle), credentials={"basic.fake.test": ("robot", "pass")}
    ) as oci:
        assert (await oci.resolve(ref)).digest == "sha256:" + "b" * 64
        assert (await oci.resolve(ref)).digest == "sha256:" + "b" * 64
    assert seen == [None, None, expected, expected]  # after the challenge, Basic is sent up front


async def test_fake_timeout_is_unavailable() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with OciRegistry(transport=httpx.MockTransport(handle), timeout=3) as oci:
        with pytest.raises(RegistryUnavailable, match=r"registry slow\.fake\.test did not answer within 3 s") as info:
            await oci.resolve(parse_image("slow.fake.test/team/app:v1"))
    assert info.value.retryable is True


async def test_fake_plain_http_token_service_gets_no_credentials() -> None:
    fake = FakeTokenRegistry(credentials=("robot", "pass"))
    fake.realm = "http://auth.fake.test/token"
    async with OciRegistry(transport=fake.transport(), credentials={fake.host: ("robot", "pass")}) as oci:
        with pytest.raises(RegistryAuthError, match="refusing to send its credentials there"):
            await oci.resolve(parse_image(FAKE_REF))
    assert not [r for r in fake.requests if r.url.host == "auth.fake.test"]


async def test_fake_registry_answering_another_digest_is_an_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Docker-Content-Digest": "sha256:" + "c" * 64, "Content-Type": OCI_MANIFEST}
        )

    async with OciRegistry(transport=httpx.MockTransport(handle)) as oci:
        with pytest.raises(RegistryError, match="does not serve the content addressed by that digest") as info:
            await oci.resolve(parse_image(f"odd.fake.test/team/app@sha256:{'d' * 64}"))
    assert info.value.retryable is False


async def test_insecure_hosts_are_reached_over_plain_http() -> None:
    schemes: dict[str, str] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        schemes[request.url.host] = request.url.scheme
        return httpx.Response(200, headers={"Docker-Content-Digest": "sha256:" + "e" * 64})

    async with OciRegistry(
        transport=httpx.MockTransport(handle), insecure_hosts=["registry.internal:5000", "[::1]"]
    ) as oci:
        for ref in ("registry.internal:5443/a/b:v1", "[::1]:5000/a/b:v1", "secure.fake.test/a/b:v1", "nginx"):
            await oci.resolve(parse_image(ref))
    assert schemes == {
        "registry.internal": "http",
        "::1": "http",
        "secure.fake.test": "https",
        "registry-1.docker.io": "https",
    }


async def test_concurrent_resolves_of_one_image_share_one_request_and_its_token() -> None:
    fake = FakeTokenRegistry()
    async with OciRegistry(transport=fake.transport()) as oci:
        answers = await asyncio.gather(*(oci.resolve(parse_image(FAKE_REF)) for _ in range(20)))
        assert {a.digest for a in answers} == {fake.digest}
        assert [(r.method, r.url.host) for r in fake.requests] == [
            ("HEAD", "registry.fake.test"), ("GET", "auth.fake.test"), ("HEAD", "registry.fake.test")]
        again = await oci.resolve(parse_image(FAKE_REF))  # after the answer: a request of its own, fresh
    assert again.digest == fake.digest and len(fake.requests) == 4 and fake.issued == 1


async def test_a_cancelled_caller_leaves_the_shared_resolve_to_the_others_and_errors_are_shared() -> None:
    fake = FakeTokenRegistry()
    async with OciRegistry(transport=fake.transport()) as oci:
        first = asyncio.create_task(oci.resolve(parse_image(FAKE_REF)))
        await asyncio.sleep(0)  # the first caller's request is under way
        second = asyncio.create_task(oci.resolve(parse_image(FAKE_REF)))
        await asyncio.sleep(0)
        first.cancel()
        assert (await second).digest == fake.digest
        assert first.cancelled()
        missing = parse_image(f"{FakeTokenRegistry.host}/{FakeTokenRegistry.repository}:nope")
        results = await asyncio.gather(oci.resolve(missing), oci.resolve(missing), return_exceptions=True)
    assert all(isinstance(r, ImageNotFound) for r in results)
