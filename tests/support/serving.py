"""A uvicorn server (the platform's HTTP transport) serving inside the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn


@asynccontextmanager
async def serving(server: uvicorn.Server) -> AsyncIterator[None]:
    """`server` listening before the block runs (a start that fails raises here) and stopped after it."""
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            task.result()
    try:
        yield
    finally:
        server.should_exit = True
        await task
