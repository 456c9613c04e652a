"""OpenTelemetry traces: a tool call's span (the server's call wrapper), under the MCP SDK's own `tools/call`
span, over Temporal's client, workflow and activity spans (temporalio's `TracingInterceptor`) down to each
Kubernetes request (`workflows.adapters.kube`).

The code creates spans through the OpenTelemetry API alone, whose tracer is a no-op until a provider is
installed. `install` loads the SDK and the OTLP/HTTP exporter only when `telemetry.otlp_endpoint` is set, so a
process without an endpoint imports neither and pays a no-op call per span.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mcp_server.settings import TelemetrySettings

if TYPE_CHECKING:  # the SDK is imported only when tracing is on
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from temporalio.contrib.opentelemetry import TracingInterceptor

log = logging.getLogger(__name__)

_installed: list[TracerProvider] = []


def tracer_provider(settings: TelemetrySettings, service: str, processor: SpanProcessor | None = None
                    ) -> TracerProvider | None:
    """A provider handing its spans to `processor` (tests) or exporting them in batches by OTLP/HTTP to
    `settings.otlp_endpoint`; None when neither is given (tracing off)."""
    if processor is None and settings.otlp_endpoint is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name or service}))
    if processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=10))
    provider.add_span_processor(processor)
    return provider


def install(settings: TelemetrySettings, service: str, processor: SpanProcessor | None = None) -> bool:
    """Make this process trace (the global provider; once per process, as OpenTelemetry allows). True when on."""
    if _installed:
        return True
    provider = tracer_provider(settings, service, processor)
    if provider is None:
        return False
    from opentelemetry import trace

    trace.set_tracer_provider(provider)
    _installed.append(provider)
    log.info("traces: exported %s as %s", f"to {settings.otlp_endpoint}" if processor is None else "in process",
             settings.service_name or service)
    return True


def enabled() -> bool:
    return bool(_installed)


def temporal_interceptors() -> list[TracingInterceptor]:
    """Temporal's tracing interceptor when this process traces (on the client: the worker built on that client
    inherits it, for workflow and activity spans), else none."""
    if not _installed:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def shutdown() -> None:
    """Flush what is buffered (a process about to exit would lose its last spans)."""
    for provider in _installed:
        provider.shutdown()
