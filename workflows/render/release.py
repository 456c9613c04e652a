"""The Kubernetes objects the deploy workflow applies, rendered from the specs as plain dicts.

Pure functions: the workflow (deterministic, replayed by Temporal) renders and the activities only send what
was rendered, so every object the platform creates is decided here and can be checked without a cluster.
Each dict is the JSON body the API server receives through server-side apply. Where the cluster's version
changes what an object may say, the choice is made from `ClusterCaps`, never by probing.
"""

from __future__ import annotations

import base64
from typing import Any

from workflows.domain.labels import (
    LABEL_APP,
    LABEL_COMMIT,
    LABEL_DEPLOYMENT_ID,
    LABEL_RELEASE,
)
from workflows.domain.specs import ClusterCaps, HealthCheck, ReleaseSpec
from workflows.render.namespace import project_labels
from workflows.render.objects import meta, restricted_container

"""Name of the namespace's ResourceQuota and LimitRange."""

CONTAINER = "app"
PORT_NAME = "http"
"""Probes, the Service and the Ingress refer to the container port by this name, so an app changing its
port between releases needs no change to the Service."""
SERVICE_PORT = 80
APP_UID = 10001
"""Outside the range images use for real accounts, so the process never maps onto a host user by accident."""
TMP_SIZE = "256Mi"
"""Never reachable from an app: one abused tenant would get the platform's addresses onto spam blocklists."""
"""Egress TCP ports allowed where NetworkPolicy has no `endPort`: SSH, HTTP(S), git and the usual databases."""
"""QUIC and NTP."""


def selector_for(app: str, release: str) -> dict[str, str]:
    """The pods of one release of one app: the Service points at a release by switching this pair."""
    return {LABEL_APP: app, LABEL_RELEASE: release}


def labels_for(spec: ReleaseSpec) -> dict[str, str]:
    """The labels of every object of one release, so all of them are found (and cleaned up) by one selector."""
    labels = project_labels(spec.tenant, spec.project)
    labels.update(selector_for(spec.app, spec.release))
    labels[LABEL_DEPLOYMENT_ID] = spec.deployment_id
    if spec.commit_sha:
        labels[LABEL_COMMIT] = spec.commit_sha
    return labels


# --- One release -----------------------------------------------------------------------------------------------


def release_secret(spec: ReleaseSpec, values: dict[str, str]) -> dict[str, Any]:
    """The release's environment, as the Secret its pods read with `envFrom`.

    `data` (base64) rather than `stringData`: the API server folds `stringData` into `data`, so server-side
    apply would see a field it never sent and could not own it cleanly. Immutable because a release's
    environment never changes (a new release gets a new Secret), and kubelets stop watching immutable Secrets.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(spec.env_secret, spec.namespace, labels_for(spec)),
        "type": "Opaque",
        "immutable": True,
        "data": {k: base64.b64encode(v.encode()).decode("ascii") for k, v in values.items()},
    }


LIVENESS_MIN_PERIOD_SECONDS = 5


def _probes(check: HealthCheck | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Readiness and liveness probes with the same handler; liveness is the more patient of the two, or a
    slow start would be killed before it is ever ready, in a loop. Readiness runs at the check's period (1 s
    by default: on Kubernetes 1.20 a started pod whose first probe came too early waits a whole period to be
    served, decision 0024); liveness at no less than 5 s, so a short stall never restarts a container."""
    handler: dict[str, Any]
    if check is not None and check.type == "http":
        handler = {"httpGet": {"path": check.path, "port": PORT_NAME}}
    else:
        handler = {"tcpSocket": {"port": PORT_NAME}}
    timing = check if check is not None else HealthCheck()
    readiness = {
        **handler,
        "initialDelaySeconds": timing.initial_delay_seconds,
        "periodSeconds": timing.period_seconds,
        "timeoutSeconds": timing.timeout_seconds,
        "failureThreshold": timing.failure_threshold,
    }
    liveness = {
        **readiness,
        "initialDelaySeconds": timing.initial_delay_seconds + 10,
        "periodSeconds": max(timing.period_seconds, LIVENESS_MIN_PERIOD_SECONDS),
        "failureThreshold": max(3, 2 * timing.failure_threshold),
    }
    return readiness, liveness


def release_deployment(spec: ReleaseSpec, replicas: int | None = None) -> dict[str, Any]:
    """The Deployment running one release; `replicas`, when given, overrides the config's count, so a caller
    can scale a release without rewriting its config snapshot.

    Every release is its own Deployment, so a switch between releases is a change of the Service's selector
    and the old release stays runnable; within a release a rollout never drops below the wanted count.
    The pod is as locked down as Pod Security `restricted` asks (non-root, no privilege escalation, no
    capabilities, RuntimeDefault seccomp, read-only root with a small writable /tmp), has no service-account
    token (apps have no business with the Kubernetes API) and no service-link variables (they would leak the
    names of the project's other services into the environment and can clash with the app's own variables).
    """
    config = spec.config
    selector = selector_for(spec.app, spec.release)
    labels = labels_for(spec)
    readiness, liveness = _probes(config.health_check)
    res = config.resources

    container: dict[str, Any] = {"name": CONTAINER, "image": spec.image}
    if config.command:
        container["command"] = list(config.command)
    if config.args:
        container["args"] = list(config.args)
    container.update(
        {
            "ports": [{"name": PORT_NAME, "containerPort": config.port, "protocol": "TCP"}],
            "envFrom": [{"secretRef": {"name": spec.env_secret}}],
            "resources": {
                "requests": {"cpu": f"{res.cpu_millicores}m", "memory": f"{res.memory_mib}Mi"},
                "limits": {"cpu": f"{res.cpu_limit_millicores}m", "memory": f"{res.memory_mib}Mi"},
            },
            "securityContext": restricted_container(),
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - a private emptyDir
            + [{"name": f"vol-{m.volume}", "mountPath": m.mount_path, "readOnly": m.read_only}
               for m in spec.config.mounts],
            "readinessProbe": readiness,
            "livenessProbe": liveness,
        }
    )

    pod: dict[str, Any] = {}
    if spec.runtime_class is not None:
        pod["runtimeClassName"] = spec.runtime_class
    pod.update(
        {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": config.shutdown_grace_seconds,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": APP_UID,
                "runAsGroup": APP_UID,
                "fsGroup": APP_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # apps run only on the nodes set aside for them, never next to the platform's own components
            "nodeSelector": {"pool": "run"},
            "tolerations": [
                {"key": "pool", "operator": "Equal", "value": "run", "effect": "NoSchedule"},
                # the default is 300 s; an app leaves a dead node this long after the node is marked NotReady
                # (docs/decisions/0019-node-failure.md)
                *(
                    {"key": key, "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": spec.node_failure_seconds}
                    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
                ),
            ],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    # a preference: one node left must still run every replica
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": dict(selector)},
                }
            ],
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}}]
            + [{"name": f"vol-{m.volume}", "persistentVolumeClaim": {"claimName": m.claim, "readOnly": m.read_only}}
               for m in spec.config.mounts],
        }
    )
    if spec.image_pull_secret:
        pod["imagePullSecrets"] = [{"name": spec.image_pull_secret}]

    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(spec.release, spec.namespace, labels),
        "spec": {
            "replicas": replicas if replicas is not None else config.replicas,
            "selector": {"matchLabels": selector},
            # the platform keeps its own release history; old ReplicaSets would only hold quota and clutter
            "revisionHistoryLimit": 0,
            "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def release_pdb(spec: ReleaseSpec, caps: ClusterCaps) -> dict[str, Any] | None:
    """A PodDisruptionBudget letting node drains take one replica at a time, or None for a single replica
    (a budget on one replica would block every drain)."""
    if spec.config.replicas <= 1:
        return None
    return {
        "apiVersion": caps.pdb_api,
        "kind": "PodDisruptionBudget",
        "metadata": meta(spec.release, spec.namespace, labels_for(spec)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_for(spec.app, spec.release)}},
    }


# --- The app's stable front ------------------------------------------------------------------------------------


def app_service(namespace: str, tenant: str, project: str, app: str, release: str) -> dict[str, Any]:
    """The app's Service, named after the app and pointed at one release: switching releases (deploy,
    rollback) is applying this object with another `release`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(app, namespace, {**project_labels(tenant, project), LABEL_APP: app}),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_for(app, release),
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def app_ingress(
    namespace: str,
    tenant: str,
    project: str,
    app: str,
    hostname: str,
    ingress_class: str | None,
    tls_secret: str | None,
) -> dict[str, Any]:
    """The app's Ingress: `hostname` to the app's Service, over TLS.

    Without `tls_secret` the TLS entry names only the host, and the edge serves its default certificate, the
    platform's wildcard, which covers every platform hostname (one label under the apps domain). A custom
    domain brings its own certificate Secret.
    """
    tls: dict[str, Any] = {"hosts": [hostname]}
    if tls_secret:
        tls["secretName"] = tls_secret
    spec: dict[str, Any] = {}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    spec["tls"] = [tls]
    spec["rules"] = [
        {
            "host": hostname,
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": app, "port": {"name": PORT_NAME}}},
                    }
                ]
            },
        }
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(app, namespace, {**project_labels(tenant, project), LABEL_APP: app}),
        "spec": spec,
    }
"""VolumeSnapshotClasses (driver.longhorn.io) with `type: snap` and `type: bak`, installed by manifests/storage."""
