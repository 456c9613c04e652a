"""The Kubernetes objects the deploy workflow applies, rendered from the specs as plain dicts.

Pure functions: the workflow (deterministic, replayed by Temporal) renders and the activities only send what
was rendered, so every object the platform creates is decided here and can be checked without a cluster.
Each dict is the JSON body the API server receives through server-side apply. Where the cluster's version
changes what an object may say, the choice is made from `ClusterCaps`, never by probing.
"""

from __future__ import annotations

import base64
from typing import Any

from workflows.specs import (
    LABEL_APP,
    LABEL_COMMIT,
    LABEL_DEPLOYMENT_ID,
    LABEL_PROJECT,
    LABEL_RELEASE,
    LABEL_SNAPSHOT_KIND,
    LABEL_TENANT,
    LABEL_VOLUME,
    MANAGED_BY,
    ClusterCaps,
    Guardrails,
    HealthCheck,
    ReleaseSpec,
    VolumeSpec,
)

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

GUARDRAILS = "guardrails"
"""Name of the namespace's ResourceQuota and LimitRange."""
INGRESS_POLICY = "ingress-from-edge-and-project"
EGRESS_POLICY = "egress-public-only"

CONTAINER = "app"
PORT_NAME = "http"
"""Probes, the Service and the Ingress refer to the container port by this name, so an app changing its
port between releases needs no change to the Service."""
SERVICE_PORT = 80
APP_UID = 10001
"""Outside the range images use for real accounts, so the process never maps onto a host user by accident."""
TMP_SIZE = "256Mi"

SMTP_PORTS: tuple[int, ...] = (25, 465, 587)
"""Never reachable from an app: one abused tenant would get the platform's addresses onto spam blocklists."""

PRIVATE_IPV4: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # carrier-grade NAT; also where some clouds put internal services
    "169.254.0.0/16",  # link-local, including the 169.254.169.254 cloud metadata endpoint
    "127.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
PRIVATE_IPV6: tuple[str, ...] = ("fc00::/7", "fe80::/10", "::1/128", "ff00::/8")

FALLBACK_TCP_PORTS: tuple[int, ...] = (22, 80, 443, 3306, 5432, 6379, 8080, 8443, 9418, 27017)
"""Egress TCP ports allowed where NetworkPolicy has no `endPort`: SSH, HTTP(S), git and the usual databases."""
FALLBACK_UDP_PORTS: tuple[int, ...] = (443, 123)
"""QUIC and NTP."""

PSA_LABELS: dict[str, str] = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def _meta(name: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def project_labels(tenant: str, project: str) -> dict[str, str]:
    """The labels of every object the platform creates for a project."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_TENANT: tenant, LABEL_PROJECT: project}


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


# --- Namespace and its guardrails -----------------------------------------------------------------------------


def _port_ranges_excluding(blocked: tuple[int, ...], low: int = 1, high: int = 65535) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    start = low
    for port in sorted(set(blocked)):
        if start <= port - 1:
            ranges.append((start, port - 1))
        start = port + 1
    if start <= high:
        ranges.append((start, high))
    return ranges


def _port_entry(protocol: str, first: int, last: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"protocol": protocol, "port": first}
    if last != first:
        entry["endPort"] = last
    return entry


def public_egress_ports(caps: ClusterCaps) -> list[dict[str, Any]]:
    """The ports an app may reach on public addresses: everything but SMTP where the cluster can say so."""
    if caps.network_policy_end_port:
        tcp = [_port_entry("TCP", lo, hi) for lo, hi in _port_ranges_excluding(SMTP_PORTS)]
        return [*tcp, _port_entry("UDP", 1, 65535)]
    return [
        *({"protocol": "TCP", "port": p} for p in FALLBACK_TCP_PORTS),
        *({"protocol": "UDP", "port": p} for p in FALLBACK_UDP_PORTS),
    ]


def namespace_objects(
    tenant: str, project: str, namespace: str, guard: Guardrails, caps: ClusterCaps
) -> list[dict[str, Any]]:
    """A project's namespace and its guardrails, in apply order (the namespace first).

    - Pod Security `restricted` is enforced, so no pod in it can run privileged whatever creates it.
    - ResourceQuota caps what the project may hold; LoadBalancer and NodePort Services are forbidden because
      traffic enters only through the platform's edge.
    - LimitRange gives containers that declare nothing a request and a limit (the quota would otherwise
      refuse them) and caps any one container.
    - Ingress is allowed only from the edge's namespace and from the project's own pods.
    - Egress is allowed to DNS (any resolver: the cluster DNS sits on a private address), to the project's own
      pods, and to public IPv4/IPv6 addresses only: private, link-local (cloud metadata), loopback, multicast
      and reserved ranges are cut out, so an app cannot reach the node, the control plane or other tenants.

    SMTP (25, 465, 587) is never allowed. NetworkPolicy can only allow, so "every port but SMTP" is written
    as port ranges with `endPort`. A cluster without `endPort` (before 1.22) silently drops the field, which
    would turn each range into its first port only; there the policy fails closed instead, to an explicit
    list of common ports (`FALLBACK_TCP_PORTS`, `FALLBACK_UDP_PORTS`).
    """
    labels = project_labels(tenant, project)
    ns: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(namespace, None, {**labels, **PSA_LABELS}),
    }
    memory = f"{guard.quota_memory_mib}Mi"
    quota: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(GUARDRAILS, namespace, labels),
        "spec": {
            "hard": {
                "requests.cpu": f"{guard.quota_cpu_millicores}m",
                "requests.memory": memory,
                # memory request = limit for platform pods; capping limits too stops a hand-made pod with a
                # small request and a huge limit from overcommitting the node
                "limits.memory": memory,
                "pods": str(guard.quota_pods),
                "services": str(guard.quota_services),
                "persistentvolumeclaims": str(guard.quota_pvcs),
                "requests.storage": f"{guard.quota_storage_gib}Gi",
                "services.loadbalancers": "0",
                "services.nodeports": "0",
            }
        },
    }
    limits: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(GUARDRAILS, namespace, labels),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {
                        # bursting to a few times the request is harmless for CPU (throttled, never killed);
                        # memory is not compressible, so its limit is its request
                        "cpu": f"{min(4 * guard.default_cpu_millicores, guard.max_cpu_millicores)}m",
                        "memory": f"{guard.default_memory_mib}Mi",
                    },
                    "defaultRequest": {
                        "cpu": f"{guard.default_cpu_millicores}m",
                        "memory": f"{guard.default_memory_mib}Mi",
                    },
                    "max": {
                        "cpu": f"{guard.max_cpu_millicores}m",
                        "memory": f"{guard.max_memory_mib}Mi",
                    },
                }
            ]
        },
    }
    edge_key, edge_value = guard.edge_namespace_label
    ingress: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(INGRESS_POLICY, namespace, labels),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {edge_key: edge_value}}},
                        {"podSelector": {}},
                    ]
                }
            ],
        },
    }
    ports = public_egress_ports(caps)
    rules: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"to": [{"podSelector": {}}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_IPV4)}}], "ports": ports},
    ]
    if caps.ipv6_egress:
        # Only on dual-stack clusters: kube-router 1.x (k3s ~1.20-1.23) stops syncing every policy when it
        # meets an IPv6 ipBlock on an IPv4-only node (cloudnativelabs/kube-router#1245).
        rules.append({"to": [{"ipBlock": {"cidr": "::/0", "except": list(PRIVATE_IPV6)}}], "ports": ports})
    egress: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(EGRESS_POLICY, namespace, labels),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": rules,
        },
    }
    return [ns, quota, limits, ingress, egress]


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
        "metadata": _meta(spec.env_secret, spec.namespace, labels_for(spec)),
        "type": "Opaque",
        "immutable": True,
        "data": {k: base64.b64encode(v.encode()).decode("ascii") for k, v in values.items()},
    }


def _probes(check: HealthCheck | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Readiness and liveness probes with the same handler; liveness is the more patient of the two, or a
    slow start would be killed before it is ever ready, in a loop."""
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
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
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
                # the default is 300 s; an app should leave a dead node in about 30 s
                *(
                    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
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
        "metadata": _meta(spec.release, spec.namespace, labels),
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
        "metadata": _meta(spec.release, spec.namespace, labels_for(spec)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_for(spec.app, spec.release)}},
    }


# --- The app's stable front ------------------------------------------------------------------------------------


def app_service(namespace: str, tenant: str, project: str, app: str, release: str) -> dict[str, Any]:
    """The app's Service, named after the app and pointed at one release: switching releases (deploy,
    rollback) is applying this object with another `release`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(app, namespace, {**project_labels(tenant, project), LABEL_APP: app}),
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
        "metadata": _meta(app, namespace, {**project_labels(tenant, project), LABEL_APP: app}),
        "spec": spec,
    }


# --- Volumes -------------------------------------------------------------------------------------------------

LONGHORN_NAMESPACE = "longhorn-system"
SNAPSHOT_CLASSES = {"snapshot": "longhorn-snapshot", "backup": "longhorn-backup"}
"""VolumeSnapshotClasses (driver.longhorn.io) with `type: snap` and `type: bak`, installed by manifests/storage."""


def volume_labels(spec: VolumeSpec) -> dict[str, str]:
    return project_labels(spec.tenant, spec.project) | {LABEL_VOLUME: spec.name}


def volume_pvc(spec: VolumeSpec, data_source: str | None = None) -> dict[str, Any]:
    """The volume's claim: ReadWriteOnce for single_node, ReadWriteMany (Longhorn's share manager) for shared.
    `data_source` names a VolumeSnapshot to restore from (Longhorn's documented CSI restore path)."""
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteMany" if spec.access == "shared" else "ReadWriteOnce"],
        "storageClassName": spec.storage_class,
        "resources": {"requests": {"storage": f"{spec.size_gib}Gi"}},
    }
    if data_source:
        body["dataSource"] = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": data_source}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(spec.claim, spec.namespace, volume_labels(spec)), "spec": body}


def volume_snapshot(spec: VolumeSpec, name: str, kind: str) -> dict[str, Any]:
    """A CSI VolumeSnapshot of the volume's claim; its class decides a Longhorn snapshot (in-cluster) or a
    Longhorn backup (to the backup target)."""
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": _meta(name, spec.namespace, volume_labels(spec) | {LABEL_SNAPSHOT_KIND: kind}),
        "spec": {"volumeSnapshotClassName": SNAPSHOT_CLASSES[kind],
                 "source": {"persistentVolumeClaimName": spec.claim}},
    }


def recurring_job_name(spec: VolumeSpec) -> str:
    return f"{spec.namespace}-{spec.name}"[:63].rstrip("-")


def recurring_job(spec: VolumeSpec, cron: str, retain: int, task: str = "backup") -> dict[str, Any]:
    """A Longhorn RecurringJob (longhorn.io/v1beta2) for this volume alone; the claim opts in by label
    (`recurring_job_labels`), as Longhorn documents for PVC-sourced recurring jobs."""
    return {
        "apiVersion": "longhorn.io/v1beta2", "kind": "RecurringJob",
        "metadata": _meta(recurring_job_name(spec), LONGHORN_NAMESPACE, volume_labels(spec)),
        "spec": {"name": recurring_job_name(spec), "task": task, "cron": cron, "retain": retain,
                 "concurrency": 1, "groups": [], "labels": volume_labels(spec)},
    }


def recurring_job_labels(spec: VolumeSpec) -> dict[str, str]:
    return {"recurring-job.longhorn.io/source": "enabled",
            f"recurring-job.longhorn.io/{recurring_job_name(spec)}": "enabled"}
