"""Every Kubernetes API permission the worker's code uses, as data.

One list, read by two checks: the unit test `tests/unit/test_rbac_matches_code.py` holds the worker's
ClusterRole in `manifests/base/rbac.yaml` to exactly this list (nothing missing, nothing beyond), and
`deploy-mcp preflight` asks the API server about each entry (SelfSubjectAccessReview). A change to what the
code calls changes this list first; the test then names the ClusterRole rule to add or drop.

Derived from `workflows/adapters/kube.py` and its callers (`workflows/activities/{deploy,volume,harbor,
build_job}.py`, whose objects come from `workflows/render/`). The adapter's methods map to verbs so:

- `apply` is server-side apply (PATCH, `application/apply-patch+yaml`): `patch`, and `create` as well,
  because an apply that creates the object is authorized as a create too.
- `patch` and `scale` are merge patches: `patch` (on the `deployments/scale` subresource for `scale`).
- `get`, `list_objects`, `delete`, `create`: the verb of the same name; `watch`: `watch`; `pod_log` and
  `follow_pod_log`: `get` on `pods/log`; `events_for`: `list` on events.
- `caps` reads `/version`, `/apis/policy`, `/apis/autoscaling` and `/apis/metrics.k8s.io/v1beta1`
  (`metrics_api_served`), non-resource URLs every authenticated client may read
  (the `system:discovery` and `system:public-info-viewer` roles): no rule here.

The server needs none of these: it reads logs from Loki. Only without Loki configured does it read pod logs
through the cluster's API (`mcp_server/wiring.py`, `open_log_store`): `SERVER_POD_LOG_PERMISSIONS`, granted by
`manifests/components/server-pod-logs` alone (an install with Loki gives the server no token).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Permission:
    """One verb on one resource. `resource` is the RBAC spelling (`pods/log` for a subresource);
    `namespaced` says whether the resource lives in namespaces (a SelfSubjectAccessReview without a
    namespace then asks about all of them, which is what the worker's ClusterRoleBinding grants)."""

    group: str  # "" is the core API group
    resource: str
    verb: str
    namespaced: bool
    used_by: str = field(default="", compare=False)  # the code that makes the call, for messages

    @property
    def base_resource(self) -> str:
        return self.resource.split("/", 1)[0]

    @property
    def subresource(self) -> str:
        return self.resource.split("/", 1)[1] if "/" in self.resource else ""


def _grant(group: str, resource: str, verbs: str, namespaced: bool, used_by: str) -> tuple[Permission, ...]:
    return tuple(Permission(group, resource, v, namespaced, used_by) for v in verbs.split())


_APPLY = "create patch"  # server-side apply, which may create the object

WORKER_PERMISSIONS: tuple[Permission, ...] = (
    # project namespaces and their guardrails (activities/deploy.py ensure_namespace, render/namespace.py);
    # the build namespace (activities/build_job.py JobBuilder.build)
    # read back by the reconciler (activities/reconcile.py reconcile_app) to find what drifted
    *_grant("", "namespaces", "get " + _APPLY, False, "ensure_namespace, JobBuilder.build, reconcile_app"),
    *_grant("", "resourcequotas", "get " + _APPLY, True, "ensure_namespace, reconcile_app"),
    *_grant("", "limitranges", "get " + _APPLY, True, "ensure_namespace, reconcile_app"),
    *_grant("networking.k8s.io", "networkpolicies", "get delete " + _APPLY, True,
            "ensure_namespace, reconcile_app, database_apply, database_delete"),
    # release env Secrets (apply_release), pull Secrets (harbor.py ensure_pull_secret), build Secrets
    # (JobBuilder.build: delete + create, then a merge patch of ownerReferences); listed and deleted by
    # delete_app_objects and reconcile_app (which env and pull Secrets exist), deleted by prune_releases
    *_grant("", "secrets", "create patch delete list", True,
            "apply_release, ensure_pull_secret, JobBuilder.build, prune_releases, delete_app_objects, reconcile_app"),
    # release Deployments: apply_release; read by release_ready, switch_if_ready, wait_ready, scale_release,
    # diagnose_release; listed by prune_releases, retire_releases, delete_app_objects; deleted by prune and delete
    *_grant("apps", "deployments", "get list create patch delete", True,
            "apply_release, release_ready, switch_if_ready, prune_releases, retire_releases, diagnose_release, "
            "delete_app_objects, reconcile_app, "
            "ensure_reconcilers (orphans, all namespaces), reconcile orphan removal"),
    *_grant("apps", "deployments/scale", "patch", True, "scale_release, retire_releases, scale_app"),
    # the app's HorizontalPodAutoscaler (activities/scaling.py scale_app, retarget_autoscaler; read and
    # re-applied or deleted by reconcile_app; deleted by delete_app_objects)
    *_grant("autoscaling", "horizontalpodautoscalers", "get create patch delete", True,
            "scale_app, retarget_autoscaler, reconcile_app, delete_app_objects"),
    # app_metrics (activities/pod_metrics.py): PodMetrics when metrics.k8s.io is served, else each node's kubelet
    # Summary API through the API server's node proxy. nodes/proxy `get` reaches every read of the kubelet
    # API (and, through a websocket upgrade, more): an install that serves metrics.k8s.io can drop that rule
    *_grant("metrics.k8s.io", "pods", "list", True, "app_metrics"),
    *_grant("", "nodes/proxy", "get", False, "app_metrics, database_observe (kubelet /stats/summary)"),
    *_grant("policy", "poddisruptionbudgets", "get create patch list delete", True,
            "apply_release, delete_app_objects, reconcile_app"),
    # the app's stable Service and Ingress (switch_service), the Service read by scale_release; the reconciler
    # reads both, lists Services of all namespaces for orphans and (by setting) deletes those
    *_grant("", "services", "get list create patch delete", True,
            "switch_service, switch_if_ready, scale_release, delete_app_objects, reconcile_app, ensure_reconcilers"),
    *_grant("networking.k8s.io", "ingresses", "get create patch delete", True,
            "switch_service, delete_app_objects, reconcile_app"),
    *_grant("", "endpoints", "get", True, "switch_service (waits for the new release's endpoints), reconcile_app"),
    # pods: wait_ready lists then watches; retire_releases, diagnose_release, JobBuilder._follow, reconcile_app
    # list;
    # their logs: diagnose/wait_ready last lines, the build steps' streamed logs
    *_grant("", "pods", "list watch", True, "wait_ready, retire_releases, diagnose_release, JobBuilder, app_metrics, "
            "database_observe"),
    *_grant("", "pods/log", "get", True, "wait_ready, diagnose_release, JobBuilder._stream, "
            "database_observe"),
    *_grant("", "events", "list", True, "wait_ready, diagnose_release (Kube.events_for)"),
    # build Jobs (activities/build_job.py): read while followed, deleted when stuck or unschedulable
    *_grant("batch", "jobs", "get create patch delete", True, "JobBuilder.build, JobBuilder._follow"),
    # volumes (activities/volume.py)
    *_grant("", "persistentvolumeclaims", "get create patch delete", True,
            "volume_create, volume_restore, volume_resize, volume_policy, volume_delete"),
    *_grant("snapshot.storage.k8s.io", "volumesnapshots", "get create patch", True,
            "volume_snapshot, volume_backup, reconcile_app (a backup imported)"),
    # a snapshot's handle read back (volume_snapshot, volume_backup); a recorded backup imported into a cluster
    # that never saw it, as Longhorn documents a restore without a VolumeSnapshot (reconcile_app)
    *_grant("snapshot.storage.k8s.io", "volumesnapshotcontents", "get " + _APPLY, False,
            "volume_snapshot, volume_backup, reconcile_app"),
    # Longhorn's recurring snapshot/backup jobs, in longhorn-system (volume_policy, volume_delete)
    *_grant("longhorn.io", "recurringjobs", "create patch delete", True, "volume_policy, volume_delete"),
    # databases (activities/database.py): the StatefulSet applied, polled until Ready and deleted; the backup
    # CronJob in the platform namespace; a CloudNativePG Cluster where that operator is installed
    *_grant("apps", "statefulsets", "get delete " + _APPLY, True, "database_apply, database_delete"),
    *_grant("batch", "cronjobs", "delete " + _APPLY, True, "database_apply, database_delete"),
    *_grant("postgresql.cnpg.io", "clusters", "get delete " + _APPLY, True, "database_apply, database_delete"),
    # custom domains (activities/domains.py): their Certificate, read for its status, re-applied by the
    # reconciler, deleted with the domain
    *_grant("cert-manager.io", "certificates", "get create patch delete", True,
            "domain_step, domain_remove, reconcile_app"),
)

SERVER_POD_LOG_PERMISSIONS: tuple[Permission, ...] = (
    # workflows/adapters/kube_logs.py KubePodLogs: a release's pods by label, then each container's log
    *_grant("", "pods", "list", True, "KubePodLogs.pods (server log tools without Loki)"),
    *_grant("", "pods/log", "get", True, "KubePodLogs.log (server log tools without Loki)"),
)
