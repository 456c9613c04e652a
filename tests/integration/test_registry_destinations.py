"""The registry client never calls a non-public address the operator did not allow (an image reference is
agent input: `169.254.169.254/x:v1` must not make the server reach the cloud metadata endpoint or anything
inside its network), neither directly, nor through a redirect, nor through a token service's realm.

Real sockets on loopback: a listener on 127.0.0.2 (loopback, not allowed) counts the connections it gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mcp_server.devenv.processes import free_port
from workflows.adapters.registry import ImageNotFound, OciRegistry, RegistryNotAllowed
from workflows.domain.images import parse_image


class Listener:
    """An HTTP server that counts connections and answers every request with `answer`."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(self.answer)
        await writer.drain()
        writer.close()


@pytest.fixture
async def forbidden() -> AsyncIterator[tuple[Listener, int]]:
    listener = Listener(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    port = free_port()
    server = await asyncio.start_server(listener.handle, "127.0.0.2", port)
    async with server:
        yield listener, port


@pytest.mark.parametrize("image", ["169.254.169.254/x:v1", "10.0.0.1:5000/a:b", "[fd00:ec2::254]/x:v1"])
async def test_metadata_and_private_registries_are_refused_without_a_call(image: str) -> None:
    async with OciRegistry() as registry:
        with pytest.raises(RegistryNotAllowed, match=r"image_registry\.allowed_hosts") as e:
            await registry.resolve(parse_image(image))
    assert not e.value.retryable


async def test_a_loopback_registry_not_allowed_gets_no_connection(forbidden: tuple[Listener, int]) -> None:
    listener, port = forbidden
    async with OciRegistry() as registry:
        with pytest.raises(RegistryNotAllowed, match="loopback"):
            await registry.resolve(parse_image(f"127.0.0.2:{port}/team/web:v1"))
    assert listener.connections == 0
    # allowed by the operator, the same registry is asked (and answers 404: not found, not refused)
    async with OciRegistry(insecure_hosts=["127.0.0.2"], allowed_hosts=[]) as registry:
        with pytest.raises(ImageNotFound):
            await registry.resolve(parse_image(f"127.0.0.2:{port}/team/web:v1"))
    assert listener.connections >= 1


async def test_a_redirect_to_a_forbidden_address_is_not_followed(forbidden: tuple[Listener, int]) -> None:
    target, target_port = forbidden
    redirect = Listener(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.2:{target_port}/v2/x/"
                        "manifests/v1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    port = free_port()
    server = await asyncio.start_server(redirect.handle, "127.0.0.1", port)
    async with server, OciRegistry() as registry:
        with pytest.raises(RegistryNotAllowed, match=r"127\.0\.0\.2"):
            await registry.resolve(parse_image(f"127.0.0.1:{port}/team/web:v1"))
    assert redirect.connections == 1 and target.connections == 0


async def test_a_token_realm_on_a_forbidden_address_is_not_asked(forbidden: tuple[Listener, int]) -> None:
    target, target_port = forbidden
    challenge = Listener(("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.2:"
                          f"{target_port}/token\",service=\"r\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                         .encode())
    port = free_port()
    server = await asyncio.start_server(challenge.handle, "127.0.0.1", port)
    async with server, OciRegistry() as registry:
        with pytest.raises(RegistryNotAllowed):
            await registry.resolve(parse_image(f"127.0.0.1:{port}/team/web:v1"))
    assert target.connections == 0
