"""Spans of this test process, in memory: OpenTelemetry allows one global tracer provider per process, so the
first test that asks installs it (`mcp_server.telemetry.tracing.install` with an in-memory exporter) and each
test collects only while its block runs (spans ended outside any block are dropped, not kept)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcp_server.settings import TelemetrySettings
from mcp_server.telemetry import tracing


class Collecting(SimpleSpanProcessor):
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.on = False
        super().__init__(self.exporter)

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            super().on_end(span)


_collector: list[Collecting] = []


@contextmanager
def collected_spans() -> Iterator[InMemorySpanExporter]:
    """The process traces (from now on: Temporal clients connected after this get the tracing interceptor);
    the exporter holds the spans that end inside the block."""
    if not _collector:
        _collector.append(Collecting())
        assert tracing.install(TelemetrySettings(), "deploy-mcp-test", _collector[0]), "tracing was installed before"
    collector = _collector[0]
    collector.exporter.clear()
    collector.on = True
    try:
        yield collector.exporter
    finally:
        collector.on = False
        collector.exporter.clear()
