"""When a recreate may start the next release: the previous release's pods have stopped (`has_stopped`), read
from the pod shapes the API server returns (core/v1 Pod status: phase, container and init container states)."""

from __future__ import annotations

from typing import Any

from workflows.domain.diagnosis import has_stopped

DELETING = {"name": "web-r1-abc", "deletionTimestamp": "2026-12-04T02:06:28Z"}


def pod(metadata: dict[str, Any], phase: str, containers: dict[str, dict[str, Any]],
        init: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": metadata, "spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]},
            "status": {"phase": phase,
                       "containerStatuses": [{"name": n, "state": s} for n, s in containers.items()],
                       "initContainerStatuses": [{"name": n, "state": s} for n, s in (init or {}).items()]}}


TERMINATED = {"terminated": {"exitCode": 137, "finishedAt": "2026-12-04T02:06:31Z"}}
RUNNING = {"running": {"startedAt": "2026-12-04T02:01:00Z"}}


def test_a_pod_being_deleted_has_stopped_once_every_container_is_terminated() -> None:
    assert has_stopped(pod(DELETING, "Running", {"app": TERMINATED, "sidecar": TERMINATED}))
    assert not has_stopped(pod(DELETING, "Running", {"app": TERMINATED, "sidecar": RUNNING}))


def test_a_finished_pod_has_stopped_deleted_or_not() -> None:
    assert has_stopped(pod({"name": "x"}, "Succeeded", {"app": TERMINATED, "sidecar": TERMINATED}))
    assert has_stopped(pod({"name": "x"}, "Failed", {}))


def test_a_pod_not_being_deleted_runs_on_even_with_its_containers_terminated() -> None:
    # restartPolicy Always: the kubelet starts them again
    assert not has_stopped(pod({"name": "x"}, "Running", {"app": TERMINATED, "sidecar": TERMINATED}))


def test_a_pod_being_deleted_that_never_reported_every_container_or_still_initialises_has_not_stopped() -> None:
    assert not has_stopped(pod(DELETING, "Pending", {}))
    assert not has_stopped(pod(DELETING, "Pending", {"app": {"waiting": {"reason": "ContainerCreating"}},
                                                     "sidecar": TERMINATED}))
    assert not has_stopped(pod(DELETING, "Running", {"app": TERMINATED}))  # the sidecar never reported
    assert not has_stopped(pod(DELETING, "Pending", {"app": TERMINATED, "sidecar": TERMINATED},
                               init={"migrate": RUNNING}))
