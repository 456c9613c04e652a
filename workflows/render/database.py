"""A platform database as Kubernetes objects: the Secret with its password, its claim (the platform's volume
primitive), a one-replica StatefulSet, an internal Service, a NetworkPolicy admitting only the attached app's
pods and the platform's database jobs, and a PodDisruptionBudget; or, where CloudNativePG serves its CRDs, a
`Cluster` in place of the StatefulSet. Also the jobs that act on a database: the scheduled backup (in the
platform namespace) and the password rotation (in the project's).

Pure, like every renderer: the database activities and the reconciler apply what these return.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from workflows.domain.database_observation import CONNECTIONS_SQL
from workflows.domain.database_spec import (
    DATA_MOUNT,
    PGDATA,
    PORT,
    PORT_NAME,
    POSTGRES_UID,
    SOCKET_DIR,
    DatabaseSpec,
)
from workflows.domain.labels import (
    LABEL_APP,
    LABEL_DATABASE,
    LABEL_DATABASE_CLIENT,
    LABEL_ROLE,
    ROLE_DATABASE_BACKUP,
)
from workflows.domain.specs import ClusterCaps, VolumeSpec
from workflows.render.namespace import project_labels
from workflows.render.objects import meta, restricted_container
from workflows.render.volume import volume_pvc

CONTAINER = "postgres"
ENTRYPOINT = "deploy-mcp-postgres"
"""image/postgres/entrypoint.sh: initialises PGDATA on first start, then runs postgres in the foreground."""
TMP_SIZE = "256Mi"
SOCKET_SIZE = "16Mi"
PLATFORM_NAMESPACE_LABEL = ("app.kubernetes.io/part-of", "deploy-mcp")
"""The label manifests/base/namespace.yaml gives the platform's namespace (names are not labels before 1.21)."""
CNPG_API = "postgresql.cnpg.io/v1"
CNPG_CLUSTER_LABEL = "cnpg.io/cluster"
CNPG_OPERATOR_LABELS = {"app.kubernetes.io/name": "cloudnative-pg"}
"""The labels of the operator's pods in CloudNativePG's release manifest and Helm chart."""
CNPG_STATUS_PORT = 8000


def database_labels(spec: DatabaseSpec) -> dict[str, str]:
    return project_labels(spec.tenant, spec.project) | {LABEL_DATABASE: spec.name}


def pod_selector(spec: DatabaseSpec) -> dict[str, str]:
    """The database's pods. CloudNativePG labels its instances with the cluster's name instead of ours."""
    if spec.engine == "cloudnative-pg":
        return {CNPG_CLUSTER_LABEL: spec.object_name}
    return {LABEL_DATABASE: spec.name}


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode("ascii")


def database_secret(spec: DatabaseSpec, password: str) -> dict[str, Any]:
    """The credentials the database initialises with: `basic-auth` typed, with the `username`/`password` keys
    CloudNativePG's `initdb.secret` requires, so both engines read the same Secret. Not immutable: rotation
    replaces the password (after ALTER ROLE succeeded)."""
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": meta(spec.secret, spec.namespace, database_labels(spec)),
        "type": "kubernetes.io/basic-auth",
        "data": {"username": _b64(spec.user), "password": _b64(password)},
    }


def database_volume(spec: DatabaseSpec) -> VolumeSpec:
    return VolumeSpec(tenant=spec.tenant, project=spec.project, namespace=spec.namespace, name=spec.object_name,
                      claim=spec.claim, size_gib=spec.size_gib, storage_class=spec.storage_class)


def database_claim(spec: DatabaseSpec) -> dict[str, Any]:
    """A platform volume claim (ReadWriteOnce, the class's Longhorn replicas) rather than a StatefulSet
    `volumeClaimTemplate`: it can be resized and snapshotted like any volume, it outlives the StatefulSet, and
    the reconciler checks it like the others. Labelled as the database's too, so deleting by label finds it."""
    claim = volume_pvc(database_volume(spec))
    claim["metadata"]["labels"][LABEL_DATABASE] = spec.name
    return claim


def _bin(spec: DatabaseSpec, program: str) -> str:
    return f"/usr/lib/postgresql/{spec.version}/bin/{program}"


def _probe(spec: DatabaseSpec, **timing: int) -> dict[str, Any]:
    """pg_isready over TCP on the pod's loopback: ready only once postgres listens on the network, which the
    entrypoint lets it do only after initialisation."""
    command = [_bin(spec, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(PORT), "-U", spec.user,
               "-d", spec.database]
    return {"exec": {"command": command}, "timeoutSeconds": 5, **timing}


def database_statefulset(spec: DatabaseSpec) -> dict[str, Any]:
    """One Postgres pod on the platform's claim.

    Pod Security `restricted` holds in full: non-root as the image's postgres uid, no privilege escalation, no
    capabilities, RuntimeDefault seccomp, and a read-only root with emptyDirs for the socket directory and
    /tmp. No service-account token, no service links. A startup probe gives crash recovery after an unclean
    stop minutes before liveness counts; preStop asks for a fast shutdown, because SIGTERM is Postgres's
    "smart" mode, which waits for every client to disconnect and would end in SIGKILL.
    `shared_buffers` is a quarter of the memory limit (Postgres's default 128 MB would not fit a small one).
    """
    res = spec.resources
    labels = database_labels(spec)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "command": [ENTRYPOINT],
        "args": ["-c", f"shared_buffers={max(16, res.memory_mib // 4)}MB",
                 "-c", f"max_connections={min(200, max(20, res.memory_mib // 8))}"],
        "env": [
            {"name": "PGDATA", "value": PGDATA},
            {"name": "POSTGRES_DB", "value": spec.database},
            {"name": "POSTGRES_USER", "valueFrom": {"secretKeyRef": {"name": spec.secret, "key": "username"}}},
            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": spec.secret, "key": "password"}}},
        ],
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": f"{res.cpu_millicores}m", "memory": f"{res.memory_mib}Mi"},
            "limits": {"cpu": f"{res.cpu_limit_millicores}m", "memory": f"{res.memory_mib}Mi"},
        },
        "securityContext": restricted_container(),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_MOUNT},
            {"name": "run", "mountPath": SOCKET_DIR},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a private emptyDir
        ],
        "startupProbe": _probe(spec, periodSeconds=5, failureThreshold=120),
        "readinessProbe": _probe(spec, periodSeconds=5, failureThreshold=3),
        "livenessProbe": _probe(spec, periodSeconds=10, failureThreshold=6),
        "lifecycle": {"preStop": {"exec": {"command": [
            _bin(spec, "pg_ctl"), "stop", "-D", PGDATA, "-m", "fast", "-w", "-t", "50"]}}},
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": POSTGRES_UID,
            "runAsGroup": POSTGRES_UID,
            "fsGroup": POSTGRES_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # next to the apps, on the nodes set aside for them
        "nodeSelector": {"pool": "run"},
        "tolerations": [
            {"key": "pool", "operator": "Equal", "value": "run", "effect": "NoSchedule"},
            *({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
              for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")),
        ],
        "containers": [container],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": spec.claim}},
            {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": SOCKET_SIZE}},
            {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
        ],
    }
    if spec.image_pull_secret:
        pod["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": meta(spec.object_name, spec.namespace, labels),
        "spec": {
            "replicas": 1,
            "serviceName": spec.object_name,
            "selector": {"matchLabels": pod_selector(spec)},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "revisionHistoryLimit": 2,
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def database_service(spec: DatabaseSpec) -> dict[str, Any]:
    """The database's stable address inside the cluster (ClusterIP only: the quota forbids anything else)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(spec.object_name, spec.namespace, database_labels(spec)),
        "spec": {"type": "ClusterIP", "selector": pod_selector(spec),
                 "ports": [{"name": PORT_NAME, "port": PORT, "targetPort": PORT, "protocol": "TCP"}]},
    }


def database_network_policy(spec: DatabaseSpec) -> dict[str, Any]:
    """Who may connect, on the Postgres port only: the attached app's pods (every release: they all carry the
    app label, which tenants never set), the platform's jobs for this database in its namespace, and the
    platform namespace's database backup jobs. The project's catch-all ingress policy excludes database pods
    (workflows/render/namespace.py), so this policy is the whole of what reaches them. Detached: jobs only."""
    peers: list[dict[str, Any]] = []
    if spec.app:
        peers.append({"podSelector": {"matchLabels": {LABEL_APP: spec.app}}})
    key, value = PLATFORM_NAMESPACE_LABEL
    peers += [
        {"podSelector": {"matchLabels": {LABEL_DATABASE_CLIENT: spec.name}}},
        {"namespaceSelector": {"matchLabels": {key: value}},
         "podSelector": {"matchLabels": {LABEL_ROLE: ROLE_DATABASE_BACKUP}}},
    ]
    rules: list[dict[str, Any]] = [{"from": peers, "ports": [{"protocol": "TCP", "port": PORT}]}]
    if spec.engine == "cloudnative-pg":
        # the CloudNativePG operator reads each instance's status endpoint and connects to Postgres itself
        rules.append({"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": CNPG_OPERATOR_LABELS}}],
                      "ports": [{"protocol": "TCP", "port": CNPG_STATUS_PORT}, {"protocol": "TCP", "port": PORT}]})
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta(spec.object_name, spec.namespace, database_labels(spec)),
        "spec": {"podSelector": {"matchLabels": pod_selector(spec)}, "policyTypes": ["Ingress"], "ingress": rules},
    }


def database_pdb(spec: DatabaseSpec, caps: ClusterCaps) -> dict[str, Any]:
    """`minAvailable: 1` on the one replica: a node drain stops at the database instead of taking it down
    unannounced; the operator moves it deliberately (docs/operations.md, "Databases")."""
    return {
        "apiVersion": caps.pdb_api, "kind": "PodDisruptionBudget",
        "metadata": meta(spec.object_name, spec.namespace, database_labels(spec)),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": pod_selector(spec)}},
    }


def cnpg_cluster(spec: DatabaseSpec) -> dict[str, Any]:
    """A CloudNativePG `Cluster` (postgresql.cnpg.io/v1) of one instance, bootstrapped by initdb with our
    database, owner and Secret; the operator makes its own claim, Services (`-rw`, `-ro`, `-r`), PDB and pods.
    Superuser access stays off (the default). More instances and WAL archiving are the operator's to add."""
    res = spec.resources
    body: dict[str, Any] = {
        "instances": 1,
        # our labels on its pods: the project's catch-all ingress policy then leaves them to ours
        "inheritedMetadata": {"labels": database_labels(spec)},
        "enableSuperuserAccess": False,
        "bootstrap": {"initdb": {"database": spec.database, "owner": spec.user, "secret": {"name": spec.secret}}},
        "storage": {"size": f"{spec.size_gib}Gi", "storageClass": spec.storage_class},
        "resources": {
            "requests": {"cpu": f"{res.cpu_millicores}m", "memory": f"{res.memory_mib}Mi"},
            "limits": {"cpu": f"{res.cpu_limit_millicores}m", "memory": f"{res.memory_mib}Mi"},
        },
        "postgresql": {"parameters": {"shared_buffers": f"{max(16, res.memory_mib // 4)}MB"}},
        "affinity": {"nodeSelector": {"pool": "run"},
                     "tolerations": [{"key": "pool", "operator": "Equal", "value": "run", "effect": "NoSchedule"}]},
    }
    if spec.image:  # else the operator's default image for its version
        body["imageName"] = spec.image
    if spec.image_pull_secret:
        body["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    return {"apiVersion": CNPG_API, "kind": "Cluster",
            "metadata": meta(spec.object_name, spec.namespace, database_labels(spec)), "spec": body}


def database_objects(spec: DatabaseSpec, caps: ClusterCaps, password: str) -> list[dict[str, Any]]:
    """Every object of the database, in apply order (the Secret and the claim before the pod that uses them).
    The password appears only in the Secret; callers never log these objects."""
    policy = database_network_policy(spec)
    if spec.engine == "cloudnative-pg":
        return [database_secret(spec, password), policy, cnpg_cluster(spec)]
    return [database_secret(spec, password), database_claim(spec), policy, database_service(spec),
            database_pdb(spec, caps), database_statefulset(spec)]


# --- Jobs that act on a database ----------------------------------------------------------------------------

ROTATE_SQL = "\\getenv new_password NEW_PASSWORD\nALTER ROLE CURRENT_USER PASSWORD :'new_password';\n"
"""The role changes its own password (a login role may, without any superuser). The new password comes from the
environment through psql's \\getenv (Postgres 15+), so it is never on a command line."""
ROTATE_SCRIPT = (
    "psql -X -q -v ON_ERROR_STOP=1 -f /rotate/rotate.sql"
    # a retry after the ALTER took but before the Secret followed: the new password already works
    ' || PGPASSWORD="$NEW_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -c "SELECT 1" >/dev/null'
)
BACKUP_SECRET_KEYS = ("deploy-mcp-secrets", "deploy-mcp-backup")
"""The Secrets a dump or restore job takes its settings from, by these fixed names: the store's URL
(`deploy-mcp-secrets`) and every `backup.*` setting, target and key included (`deploy-mcp-backup`), as the
operator creates them. Not the ConfigMap `deploy-mcp-config`: manifests/base generates it under a hashed name
(`deploy-mcp-config-<hash>`, so a change of settings rolls the pods), which only kustomize rewrites in the
manifests it renders; a job the worker renders naming `deploy-mcp-config` would never start. A database dump is
sealed and kept exactly like a Plane A archive."""


def _restricted(uid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}
    return pod, restricted_container()


def rotate_secret_name(spec: DatabaseSpec) -> str:
    return f"{spec.object_name}-rotate"


def rotate_secret(spec: DatabaseSpec, new_password: str) -> dict[str, Any]:
    """The new password and the SQL that sets it, for the rotation Job only (deleted after it)."""
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": meta(rotate_secret_name(spec), spec.namespace, database_labels(spec)),
        "type": "Opaque",
        "data": {"new_password": _b64(new_password), "rotate.sql": _b64(ROTATE_SQL)},
    }


def rotate_job(spec: DatabaseSpec, job_name: str) -> dict[str, Any]:
    """A Job that connects as the database's role with the current password and sets the new one.

    A Job rather than an exec into the database pod: the worker needs no `pods/exec` (which would let it run
    anything in any app's pod), the SQL goes over the same authenticated TCP path an app uses, and the Job is
    admitted by the database's NetworkPolicy through its client label like any other platform job."""
    pod_sc, container_sc = _restricted(POSTGRES_UID)
    labels = project_labels(spec.tenant, spec.project) | {LABEL_DATABASE_CLIENT: spec.name}
    secret = {"name": spec.secret, "key": "password"}
    container = {
        "name": "rotate", "image": spec.image, "command": ["/bin/sh", "-c", ROTATE_SCRIPT],
        "env": [
            {"name": "PGHOST", "value": spec.host}, {"name": "PGPORT", "value": str(PORT)},
            {"name": "PGUSER", "value": spec.user}, {"name": "PGDATABASE", "value": spec.database},
            {"name": "PGCONNECT_TIMEOUT", "value": "10"},
            {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": secret}},
            {"name": "NEW_PASSWORD", "valueFrom": {"secretKeyRef": {"name": rotate_secret_name(spec),
                                                                    "key": "new_password"}}},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}},
        "securityContext": container_sc,
        "volumeMounts": [{"name": "rotate", "mountPath": "/rotate", "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - a private emptyDir
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
        "securityContext": pod_sc, "containers": [container],
        "nodeSelector": {"pool": "run"},
        "tolerations": [{"key": "pool", "operator": "Equal", "value": "run", "effect": "NoSchedule"}],
        "volumes": [{"name": "rotate", "secret": {"secretName": rotate_secret_name(spec),
                                                  "items": [{"key": "rotate.sql", "path": "rotate.sql"}]}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
    }
    if spec.image_pull_secret:
        pod["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(job_name, spec.namespace, labels),
        "spec": {"backoffLimit": 3, "activeDeadlineSeconds": 180,
                 "template": {"metadata": {"labels": dict(labels)}, "spec": pod}},
    }


def backup_name(spec: DatabaseSpec) -> str:
    """The backup CronJob's and its credentials Secret's name in the platform namespace: unique per database
    across every project (CronJob names are at most 52 characters)."""
    digest = hashlib.sha256(f"{spec.namespace}/{spec.name}".encode()).hexdigest()[:10]
    return f"dbbackup-{spec.name[:20]}-{digest}"


def backup_labels(spec: DatabaseSpec) -> dict[str, str]:
    return database_labels(spec) | {LABEL_ROLE: ROLE_DATABASE_BACKUP}


def backup_credentials(spec: DatabaseSpec, platform_namespace: str, password: str) -> dict[str, Any]:
    """The database's password beside the backup job in the platform namespace (a pod reads Secrets of its own
    namespace only). Rotation re-applies it."""
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": meta(backup_name(spec), platform_namespace, backup_labels(spec)),
        "type": "kubernetes.io/basic-auth",
        "data": {"username": _b64(spec.user), "password": _b64(password)},
    }


def backup_pod(spec: DatabaseSpec, database_id: str, platform_image: str, kind: str, keep: int,
               max_age_days: int, dump_name: str | None = None) -> dict[str, Any]:
    """The pod template of a dump: `deploy-mcp db-dump` of the platform image, with pg_dump (custom format),
    the backup target and key of Plane A backups, and the store to record the run in (decision 0014)."""
    args = ["db-dump", "--database-id", database_id, "--host", spec.host, "--dbname", spec.database,
            "--kind", kind, "--keep", str(keep), "--max-age-days", str(max_age_days)]
    if dump_name:
        args += ["--name", dump_name]
    return _platform_job_pod(spec, platform_image, "dump", args)


def _platform_job_pod(spec: DatabaseSpec, platform_image: str, container_name: str, args: list[str]
                      ) -> dict[str, Any]:
    pod_sc, container_sc = _restricted(10001)
    container = {
        "name": container_name, "image": platform_image, "args": args,
        "envFrom": [{"secretRef": {"name": n}} for n in BACKUP_SECRET_KEYS],
        "env": [{"name": "PGUSER", "valueFrom": {"secretKeyRef": {"name": backup_name(spec), "key": "username"}}},
                {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": backup_name(spec),
                                                                      "key": "password"}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
        "securityContext": container_sc,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - a private emptyDir
    }
    return {
        "metadata": {"labels": backup_labels(spec)},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
                 "securityContext": pod_sc, "containers": [container],
                 "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}]},
    }


def backup_cronjob(spec: DatabaseSpec, database_id: str, platform_namespace: str, platform_image: str,
                   schedule: str, keep: int, max_age_days: int, caps: ClusterCaps) -> dict[str, Any]:
    """The scheduled dump, one run at a time, cut at 2 h. batch/v1 CronJob from 1.21; v1beta1 before."""
    return {
        "apiVersion": caps.cronjob_api, "kind": "CronJob",
        "metadata": meta(backup_name(spec), platform_namespace, backup_labels(spec)),
        "spec": {"schedule": schedule, "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 3600,
                 "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 3,
                 "jobTemplate": {"metadata": {"labels": backup_labels(spec)},
                                 "spec": {"backoffLimit": 1, "activeDeadlineSeconds": 7200,
                                          "template": backup_pod(spec, database_id, platform_image, "scheduled",
                                                                 keep, max_age_days)}}},
    }


def backup_job(spec: DatabaseSpec, database_id: str, platform_namespace: str, platform_image: str, job_name: str,
               kind: str, dump_name: str, keep: int, max_age_days: int) -> dict[str, Any]:
    """An on-demand dump (manual, or the safety/final one before a restore or a delete) under a fixed name."""
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(job_name, platform_namespace, backup_labels(spec)),
        "spec": {"backoffLimit": 1, "activeDeadlineSeconds": 7200,
                 "template": backup_pod(spec, database_id, platform_image, kind, keep, max_age_days, dump_name)},
    }


def restore_job(spec: DatabaseSpec, database_id: str, platform_namespace: str, platform_image: str, job_name: str,
                dump_name: str, source_database_id: str | None = None) -> dict[str, Any]:
    """`deploy-mcp db-restore` of one dump into the database (of another database's dump: `source_database_id`),
    by the same kind of job as a dump, admitted by the same policy rule."""
    args = ["db-restore", "--database-id", database_id, "--host", spec.host, "--dbname", spec.database,
            "--name", dump_name]
    if source_database_id:
        args += ["--from-database-id", source_database_id]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(job_name, platform_namespace, backup_labels(spec)),
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 7200,
                 "template": _platform_job_pod(spec, platform_image, "restore", args)},
    }


def observe_job(spec: DatabaseSpec, job_name: str) -> dict[str, Any]:
    """One query of the database's connections (`CONNECTIONS_SQL`), its answer in the pod's log. Like the
    rotation: a Job rather than an exec, connecting as the database's role over the path its app uses, admitted
    by the policy through its client label; no retries (a failed answer is `unknown`, not retried into a
    stale one) and gone a minute after it ends even if the worker did not delete it."""
    pod_sc, container_sc = _restricted(POSTGRES_UID)
    labels = project_labels(spec.tenant, spec.project) | {LABEL_DATABASE_CLIENT: spec.name}
    container = {
        "name": "observe", "image": spec.image,
        "command": ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", CONNECTIONS_SQL],
        "env": [
            {"name": "PGHOST", "value": spec.host}, {"name": "PGPORT", "value": str(PORT)},
            {"name": "PGUSER", "value": spec.user}, {"name": "PGDATABASE", "value": spec.database},
            {"name": "PGCONNECT_TIMEOUT", "value": "10"},
            {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": spec.secret, "key": "password"}}},
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}},
        "securityContext": container_sc,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - a private emptyDir
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
        "securityContext": pod_sc, "containers": [container],
        "nodeSelector": {"pool": "run"},
        "tolerations": [{"key": "pool", "operator": "Equal", "value": "run", "effect": "NoSchedule"}],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
    }
    if spec.image_pull_secret:
        pod["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(job_name, spec.namespace, labels),
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 60, "ttlSecondsAfterFinished": 60,
                 "template": {"metadata": {"labels": dict(labels)}, "spec": pod}},
    }
