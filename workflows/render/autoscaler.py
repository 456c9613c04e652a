"""The app's HorizontalPodAutoscaler: one per app, named after the app, scaling the serving release's
Deployment (`scaleTargetRef` is switched with the Service, docs/decisions/0015-autoscaling.md).

`autoscaling/v2` (Kubernetes 1.23+) and `autoscaling/v2beta2` (1.12-1.25) share this shape; the version comes
from `ClusterCaps.hpa_api`, read from discovery.
"""

from __future__ import annotations

from typing import Any

from workflows.domain.labels import LABEL_APP
from workflows.domain.scaling import Autoscale
from workflows.domain.specs import ClusterCaps
from workflows.render.namespace import project_labels
from workflows.render.objects import meta


def _utilization(resource: str, percent: int) -> dict[str, Any]:
    return {"type": "Resource",
            "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": percent}}}


def app_autoscaler(namespace: str, tenant: str, project: str, app: str, release: str, autoscale: Autoscale,
                   caps: ClusterCaps) -> dict[str, Any]:
    """The autoscaler of `app`, targeting the Deployment of `release`."""
    metrics = [_utilization("cpu", autoscale.cpu_percent)]
    if autoscale.memory_percent is not None:
        metrics.append(_utilization("memory", autoscale.memory_percent))
    return {
        "apiVersion": caps.hpa_api,
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(app, namespace, {**project_labels(tenant, project), LABEL_APP: app}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": release},
            "minReplicas": autoscale.min,
            "maxReplicas": autoscale.max,
            "metrics": metrics,
        },
    }
