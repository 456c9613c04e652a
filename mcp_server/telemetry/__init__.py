"""What the processes tell an operator: Prometheus metrics (`metrics`, `workflow_metrics`, and the activities'
own in `workflows.activities.metrics`), OpenTelemetry traces (`tracing`), JSON log lines (`logs`), the Temporal
SDK's metrics (`temporal_runtime`). See docs/decisions/0016-telemetry.md."""
