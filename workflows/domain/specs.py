"""The data types of the deploy workflow: what an app asks for, what a release pins, what the cluster
can do. Pydantic models, so they cross Temporal (pydantic data converter) and MCP unchanged; no I/O here.

Fields are only ever added with defaults, so running workflows keep decoding their history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthCheck(Spec):
    """How the platform knows a replica is ready and alive."""

    type: Literal["http", "tcp"] = Field("http", description="http: GET `path` must answer 2xx/3xx; tcp: port opens.")
    path: str = Field("/", description="HTTP path probed (type http).", max_length=1024, pattern=r"^/[^\s]*$")
    initial_delay_seconds: int = Field(0, ge=0, le=600)
    period_seconds: int = Field(1, ge=1, le=300)  # readiness; liveness probes at least every 5 s (decision 0024)
    timeout_seconds: int = Field(2, ge=1, le=60)
    failure_threshold: int = Field(3, ge=1, le=30)


class Resources(Spec):
    """Per replica. Memory request = limit, so a replica is never OOM-killed for a neighbour's burst."""

    cpu_millicores: int = Field(250, ge=10, le=16000, description="CPU request, in thousandths of a core.")
    cpu_limit_millicores: int = Field(1000, ge=10, le=32000, description="CPU ceiling (throttled above it).")
    memory_mib: int = Field(256, ge=16, le=65536, description="Memory request and limit, MiB.")


class Mount(Spec):
    """A platform volume mounted into every replica of a release."""

    volume: str = Field(description="Platform volume name.")
    claim: str = Field(description="Its PersistentVolumeClaim.")
    mount_path: str
    read_only: bool = False
    access: Literal["single_node", "shared"] = "single_node"


class AppConfig(Spec):
    """The configuration a release runs with; each release keeps its own snapshot (rollback restores it)."""

    port: int = Field(ge=1, le=65535, description="Port the app listens on inside its container.")
    env: dict[str, str] = Field(default_factory=dict)
    replicas: int = Field(1, ge=1, le=20)
    resources: Resources = Field(default_factory=Resources)
    health_check: HealthCheck | None = None
    strategy: Literal["blue-green", "recreate"] = "blue-green"
    mounts: list[Mount] = Field(default_factory=list, description="Volumes mounted in the app's containers.")
    command: list[str] | None = Field(None, description="Override the image's entrypoint.")
    args: list[str] | None = Field(None, description="Override the image's arguments.")
    shutdown_grace_seconds: int = Field(
        30, ge=1, le=600, description="Seconds a replica has to finish after SIGTERM before it is killed."
    )


NODE_FAILURE_SECONDS = 15
"""Default seconds an app's pod stays on a NotReady/unreachable node (docs/decisions/0019-node-failure.md)."""


class ReleaseSpec(Spec):
    """Everything needed to render one release's objects."""

    tenant: str
    project: str
    app: str
    namespace: str
    seq: int = Field(ge=1)
    deployment_id: str
    image: str = Field(description="Reference pinned by digest: <repository>@sha256:<hex>.")
    commit_sha: str | None = None
    config: AppConfig
    runtime_class: str | None = Field(None, description="RuntimeClass name; None leaves the node's default.")
    image_pull_secret: str | None = None
    node_failure_seconds: int = Field(NODE_FAILURE_SECONDS, ge=1,
                                      description="Seconds a pod stays on a NotReady/unreachable node.")

    @property
    def release(self) -> str:
        return f"{self.app}-r{self.seq}"

    @property
    def env_secret(self) -> str:
        return f"{self.app}-r{self.seq}-env"


class VolumeSpec(Spec):
    """A platform-owned PersistentVolumeClaim."""

    tenant: str
    project: str
    namespace: str
    name: str
    claim: str
    size_gib: int = Field(ge=1, le=16384)
    storage_class: str
    access: Literal["single_node", "shared"] = "single_node"


class Guardrails(Spec):
    """Per-project namespace limits (ResourceQuota, LimitRange). Defaults fit a small team's project."""

    quota_cpu_millicores: int = 8000
    quota_memory_mib: int = 16384
    quota_pods: int = 50
    quota_services: int = 20
    quota_pvcs: int = 10
    quota_storage_gib: int = 200
    default_cpu_millicores: int = 100
    default_memory_mib: int = 128
    max_cpu_millicores: int = 16000
    max_memory_mib: int = 65536
    edge_namespace_label: tuple[str, str] = ("deploy-mcp/role", "edge")
    dns_namespace: str = "kube-system"
    dns_pod_label: tuple[str, str] = ("k8s-app", "kube-dns")  # CoreDNS on k3s and kubeadm keeps this label


class ClusterCaps(Spec):
    """What the cluster serves, read once per worker from discovery; renderers choose versions from it."""

    minor: int = Field(description="Kubernetes minor version, e.g. 20 for v1.20.")
    pdb_api: Literal["policy/v1", "policy/v1beta1"] = "policy/v1"
    network_policy_end_port: bool = Field(True, description="NetworkPolicy `endPort` (beta 1.22, GA 1.25).")
    ipv6_egress: bool = Field(False, description="Render the public IPv6 egress rule (dual-stack clusters only).")
    hpa_api: Literal["autoscaling/v2", "autoscaling/v2beta2"] = Field(
        "autoscaling/v2", description="HorizontalPodAutoscaler version: v2 from 1.23, v2beta2 before (1.20).")
    metrics_api: bool = Field(False, description="metrics.k8s.io is served (metrics-server or an adapter runs).")

    @property
    def namespace_name_label(self) -> bool:
        """The API server labels namespaces `kubernetes.io/metadata.name` (beta, on by default, in 1.21)."""
        return self.minor >= 21

    @property
    def cronjob_api(self) -> str:
        """CronJob's version: batch/v1 from 1.21, batch/v1beta1 before (a 1.20 API server serves no batch/v1
        CronJob: applied, read or deleted there, it is not found)."""
        return "batch/v1" if self.minor >= 21 else "batch/v1beta1"


class Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")
