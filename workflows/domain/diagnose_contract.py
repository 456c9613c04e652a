"""The diagnose workflow's input and result (`DiagnoseInput`, `Diagnosis`): explicit message types, shared by
the workflow, its activities and the tools that report why a release is unhealthy."""

from __future__ import annotations

from workflows.domain.diagnosis import Failure
from workflows.domain.specs import Msg


class DiagnoseInput(Msg):
    namespace: str
    release: str


class Diagnosis(Msg):
    healthy: bool
    failure: Failure | None = None
    desired_replicas: int = 0
    ready_replicas: int = 0
    containers: list[str] = []  # "pod/container: state (exit code, restarts)"
    events: list[str] = []  # "Reason: message", newest last
    logs: list[str] = []  # last lines of the first failing pod
