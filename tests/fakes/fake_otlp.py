"""A fake OpenTelemetry collector: the OTLP/HTTP traces receiver (aiohttp, on 127.0.0.1, in the caller's event
loop), keeping the spans it is sent so a test can read them.

As the OTLP specification documents the HTTP transport (opentelemetry-proto, `docs/specification.md`,
"OTLP/HTTP"):
- `POST /v1/traces` with `Content-Type: application/x-protobuf`: the body is a binary
  `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`, optionally `Content-Encoding: gzip`.
  Success answers 200 with a binary `ExportTraceServiceResponse` of the same content type.
- A body that does not decode answers 400; another content type (this fake does not take OTLP/JSON) 415;
  another path 404.

Each span is kept flat (`ReceivedSpan`: trace and span ids in hex, parent id, name, kind, attributes, the
resource's `service.name`), in arrival order.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

PROTOBUF = "application/x-protobuf"


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    attributes: dict[str, Any]
    service: str | None


@dataclass
class FakeOtlp:
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        if request.content_type != PROTOBUF:
            return web.Response(status=415, text=f"unsupported content type {request.content_type}")
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        try:
            message.ParseFromString(body)
        except DecodeError as e:
            return web.Response(status=400, text=f"not an ExportTraceServiceRequest: {e}")
        self.requests += 1
        for resource_spans in message.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    self.spans.append(ReceivedSpan(
                        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex() or None, name=s.name, kind=s.kind,
                        attributes={kv.key: _value(kv.value) for kv in s.attributes},
                        service=resource.get("service.name")))
        return web.Response(status=200, body=ExportTraceServiceResponse().SerializeToString(),
                            content_type=PROTOBUF)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        return app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}/v1/traces"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def fake_otlp_running() -> AsyncIterator[FakeOtlp]:
    """A started FakeOtlp on a free loopback port (its `url` is the traces endpoint), stopped on exit."""
    fake = FakeOtlp()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
