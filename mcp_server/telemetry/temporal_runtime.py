"""The Temporal SDK's own metrics (task queue polls, schedule-to-start latency, workflow and activity task
outcomes; `temporal_*`), served in Prometheus' format by the SDK's Rust core on a port of its own.

A runtime is per process and its port binds once, so it is made once and shared by every client of the worker.
"""

from __future__ import annotations

import logging

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from mcp_server.settings import Settings

log = logging.getLogger(__name__)

_runtimes: dict[str, Runtime] = {}


def metrics_runtime(settings: Settings) -> Runtime | None:
    """The runtime exporting the SDK's metrics on `worker.health_host:telemetry.temporal_metrics_port`; None when
    that port is 0 (the default runtime, no metrics)."""
    port = settings.telemetry.temporal_metrics_port
    if port == 0:
        return None
    address = f"{settings.worker.health_host}:{port}"
    if address not in _runtimes:
        _runtimes[address] = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
            bind_address=address, counters_total_suffix=True, durations_as_seconds=True)))
        log.info("Temporal SDK metrics on http://%s/metrics", address)
    return _runtimes[address]
