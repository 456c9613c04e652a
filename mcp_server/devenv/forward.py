"""TCP forwarding from the testbed's node address to services on loopback, for the platform installed in the
testbed: its pods reach the host only at the node IP (10.250.0.1; 127.0.0.1 in a pod is the pod), while the
suite's Postgres, Temporal, registry and API server listen on 127.0.0.1 only. Forwarding a few ports on the
testbed's private bridge keeps those services off every other interface. Part of the dev and test harness.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

NODE_IP = "10.250.0.1"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _handler(target_host: str, target_port: int) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


@asynccontextmanager
async def forwarded(ports: Sequence[int], listen_host: str = NODE_IP, target_host: str = "127.0.0.1"
                    ) -> AsyncIterator[None]:
    """While inside: `listen_host:p` forwards to `target_host:p` for each port p."""
    servers = [await asyncio.start_server(_handler(target_host, p), listen_host, p) for p in ports]
    try:
        yield
    finally:
        for s in servers:
            s.close()
        for s in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)
