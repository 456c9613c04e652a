"""The one place this project talks to the Kubernetes API: server-side apply under one field manager, reads,
deletes, scaling, pod watches and logs, and discovery of what the cluster serves.

Objects are plain dicts (the JSON the API speaks), rendered by the modules of `workflows.render`. Kinds are
addressed through a small table of REST paths; CRD kinds (Longhorn, cert-manager) are added with `register_kind`.
Every API failure surfaces as `KubeError`, classified by `workflows.domain.k8s_errors`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from workflows.adapters.errors import AdapterError
from workflows.domain.k8s_errors import K8sFailure, classify_status, status_message, warming_up
from workflows.domain.specs import ClusterCaps

_tracer = trace.get_tracer("deploy_mcp.kube")  # a no-op until the process installs a tracer provider

FIELD_MANAGER = "deploy-mcp"

# (apiVersion, kind) -> (plural, namespaced)
KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Node"): ("nodes", False),
    ("v1", "PersistentVolume"): ("persistentvolumes", False),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Service"): ("services", True),
    ("v1", "Endpoints"): ("endpoints", True),
    ("v1", "Pod"): ("pods", True),
    ("v1", "Event"): ("events", True),
    ("v1", "ResourceQuota"): ("resourcequotas", True),
    ("v1", "LimitRange"): ("limitranges", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "ReplicaSet"): ("replicasets", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("batch/v1", "CronJob"): ("cronjobs", True),
    ("batch/v1beta1", "CronJob"): ("cronjobs", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("policy/v1beta1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("metrics.k8s.io/v1beta1", "PodMetrics"): ("pods", True),
    ("node.k8s.io/v1", "RuntimeClass"): ("runtimeclasses", False),
    ("storage.k8s.io/v1", "StorageClass"): ("storageclasses", False),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("networking.k8s.io/v1", "IngressClass"): ("ingressclasses", False),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): ("selfsubjectaccessreviews", False),
    # CRD kinds the platform writes (manifests/storage/crds)
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshot"): ("volumesnapshots", True),
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent"): ("volumesnapshotcontents", False),
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"): ("volumesnapshotclasses", False),
    ("longhorn.io/v1beta2", "RecurringJob"): ("recurringjobs", True),
    # CloudNativePG's Cluster, used only where its operator serves the CRD (workflows/activities/database.py)
    ("postgresql.cnpg.io/v1", "Cluster"): ("clusters", True),
    ("cert-manager.io/v1", "Certificate"): ("certificates", True),
}


def register_kind(api_version: str, kind: str, plural: str, namespaced: bool) -> None:
    KINDS[(api_version, kind)] = (plural, namespaced)


class KubeError(AdapterError):
    """A Kubernetes API call failed; `failure` classifies it by HTTP status (workflows.domain.k8s_errors), and
    `retryable` is the classification's."""

    def __init__(self, failure: K8sFailure, what: str) -> None:
        self.failure = failure
        self.retryable = failure.retryable
        super().__init__(f"{what}: {failure.message}" if failure.message else what)


def ref(obj: Mapping[str, Any]) -> str:
    """`kind/namespace/name`, the form audit rows and logs use."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{obj.get('kind')}/{ns}/{md.get('name')}" if ns else f"{obj.get('kind')}/{md.get('name')}"


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    try:
        plural, namespaced = KINDS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"unknown kind {api_version} {kind}; register_kind() it first") from None
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced and namespace:
        return f"{base}/namespaces/{namespace}/{plural}"
    return f"{base}/{plural}"  # cluster-scoped kinds, or a namespaced kind across all namespaces (list/watch)


UNREACHABLE_WINDOW = 60.0
"""Seconds after a failed connection during which a 403 counts as the API server warming up (retryable)."""


class Kube:
    """An async Kubernetes client for the platform's needs. One per process; `close()` when done."""

    def __init__(self, api: client.ApiClient, request_timeout: float = 30.0) -> None:
        self.api = api
        self.timeout = request_timeout
        self._caps: ClusterCaps | None = None
        self._unreachable_at = -UNREACHABLE_WINDOW

    @classmethod
    async def connect(cls, kubeconfig: Path | None = None) -> Kube:
        if kubeconfig is not None:
            api = await config.new_client_from_config(config_file=str(kubeconfig))
        else:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
                api = client.ApiClient()
            except config.ConfigException:
                api = await config.new_client_from_config()
        return cls(api)

    async def close(self) -> None:
        await self.api.close()

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        # one span per API request, under the activity's; names carry no object name (bounded), attributes do
        with _tracer.start_as_current_span(f"k8s {method}", kind=SpanKind.CLIENT, record_exception=False,
                                           attributes={"http.request.method": method, "url.path": path,
                                                       "deploy_mcp.k8s.what": what}) as span:
            try:
                return await self._request(method, path, what, headers, query, body, timeout)
            except KubeError as e:
                if e.failure.status is not None:
                    span.set_attribute("http.response.status_code", e.failure.status)
                span.set_attribute("error.type", e.failure.type)
                if e.failure.status != 404:  # an absent object is an answer the callers ask for (get -> None)
                    span.set_status(StatusCode.ERROR)
                raise

    async def _request(self, method: str, path: str, what: str, headers: dict[str, str],
                       query: list[tuple[str, Any]] | None, body: Any, timeout: float | None) -> Any:
        try:
            return await self.api.call_api(
                path, method, query_params=query or [], header_params=headers, body=body,
                response_types_map={200: "object", 201: "object", 202: "object"}, auth_settings=["BearerToken"],
                _return_http_data_only=True, _request_timeout=timeout or self.timeout,
            )
        except ApiException as e:
            retry_after = None
            if e.headers and e.headers.get("Retry-After", "").isdigit():
                retry_after = float(e.headers["Retry-After"])
            raise KubeError(self._classify(e.status, status_message(e.body), retry_after), what) from e
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise KubeError(self._classify(None, f"{type(e).__name__}: {e}"), what) from e

    def _classify(self, status: int | None, message: str, retry_after: float | None = None) -> K8sFailure:
        failure = classify_status(status, message, retry_after)
        now = time.monotonic()
        if status is None:
            self._unreachable_at = now
        elif status == 403 and now - self._unreachable_at < UNREACHABLE_WINDOW:
            return warming_up(failure)
        return failure

    # discovery

    async def caps(self) -> ClusterCaps:
        if self._caps is None:
            version = await self._call("GET", "/version", "read the server version")
            minor = int("".join(ch for ch in str(version.get("minor", "0")) if ch.isdigit()) or 0)
            groups = await self._call("GET", "/apis/policy", "discover policy/*")
            served = {v["version"] for v in groups.get("versions", [])}
            autoscaling = await self._call("GET", "/apis/autoscaling", "discover autoscaling/*")
            hpa = {v["version"] for v in autoscaling.get("versions", [])}
            self._caps = ClusterCaps(
                minor=minor,
                pdb_api="policy/v1" if "v1" in served else "policy/v1beta1",
                network_policy_end_port=minor >= 22,
                hpa_api="autoscaling/v2" if "v2" in hpa else "autoscaling/v2beta2",
                metrics_api=await self.metrics_api_served(),
            )
        return self._caps

    async def metrics_api_served(self) -> bool:
        """metrics.k8s.io/v1beta1 is served now (asked each time: a metrics-server may come or go while the
        worker runs). An aggregated API whose backend is down answers 503: not served either."""
        try:
            await self._call("GET", "/apis/metrics.k8s.io/v1beta1", "discover metrics.k8s.io/v1beta1")
        except KubeError as e:
            if e.failure.status in (404, 503):
                return False
            raise
        return True

    async def node_stats_summary(self, node: str) -> dict[str, Any]:
        """The kubelet's Summary API of `node` (`/stats/summary`) through the API server's node proxy."""
        result: dict[str, Any] = await self._call(
            "GET", f"/api/v1/nodes/{node}/proxy/stats/summary", f"read the kubelet stats of node {node}",
            query=[("only_cpu_and_memory", "true")])  # what metrics-server asks for: no volume/network stats
        return result

    async def served_api_versions(self) -> set[str]:
        """Every group/version the API server serves (`v1`, `apps/v1`, ...), as `kubectl api-versions`."""
        core = await self._call("GET", "/api", "discover the core API")
        groups = await self._call("GET", "/apis", "discover the API groups")
        return {*core.get("versions", []),
                *(v["groupVersion"] for g in groups.get("groups", []) for v in g.get("versions", []))}

    # objects

    async def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply under the platform's field manager; `force` takes fields over from kubectl edits.
        `dry_run`: the API server validates, defaults and admits it (`dryRun=All`) and persists nothing; the
        answer is the object as it would be stored."""
        md = obj["metadata"]
        path = f"{collection_path(obj['apiVersion'], obj['kind'], md.get('namespace'))}/{md['name']}"
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")] + ([("dryRun", "All")] if dry_run else [])
        result: dict[str, Any] = await self._call(
            "PATCH", path, f"{'dry-run ' if dry_run else ''}apply {ref(obj)}", query=query,
            body=dict(obj), content_type="application/apply-patch+yaml",
        )
        return result

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self._call(
                "GET", f"{collection_path(api_version, kind, namespace)}/{name}", f"read {kind}/{name}")
            return result
        except KubeError as e:
            if e.failure.status == 404:
                return None
            raise

    async def list_objects(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        query: list[tuple[str, Any]] = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        result = await self._call("GET", collection_path(api_version, kind, namespace), f"list {kind}", query=query)
        items: list[dict[str, Any]] = result.get("items", [])
        for item in items:  # list items come without them; callers pass items back to apply/patch
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str,
                     propagation: str = "Background", grace_seconds: int | None = None) -> bool:
        """Delete; True if it existed. Background propagation: owned objects (ReplicaSets, pods) go after."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            await self._call(
                "DELETE", f"{collection_path(api_version, kind, namespace)}/{name}", f"delete {kind}/{name}",
                body=body,
            )
            return True
        except KubeError as e:
            if e.failure.status == 404:
                return False
            raise

    async def patch(self, obj: Mapping[str, Any], patch: Mapping[str, Any], subresource: str | None = None
                    ) -> dict[str, Any]:
        """JSON merge patch of `obj` (or of its `status` subresource): for fields another actor owns."""
        md = obj["metadata"]
        path = f"{collection_path(obj['apiVersion'], obj['kind'], md.get('namespace'))}/{md['name']}"
        if subresource:
            path += f"/{subresource}"
        result: dict[str, Any] = await self._call(
            "PATCH", path, f"patch {ref(obj)}", query=[("fieldManager", FIELD_MANAGER)], body=dict(patch),
            content_type="application/merge-patch+json",
        )
        return result

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        md = obj["metadata"]
        result: dict[str, Any] = await self._call(
            "POST", collection_path(obj["apiVersion"], obj["kind"], md.get("namespace")), f"create {ref(obj)}",
            query=[("fieldManager", FIELD_MANAGER)], body=dict(obj))
        return result

    async def scale(self, namespace: str, deployment: str, replicas: int, *, dry_run: bool = False
                    ) -> dict[str, Any]:
        """Scale through the `scale` subresource. Not by server-side apply: an apply that names only
        `spec.replicas` would remove every other field this field manager applied before. `dry_run`: validated
        and admitted (`dryRun=All`), not persisted."""
        path = f"{collection_path('apps/v1', 'Deployment', namespace)}/{deployment}/scale"
        query = [("fieldManager", FIELD_MANAGER)] + ([("dryRun", "All")] if dry_run else [])
        result: dict[str, Any] = await self._call(
            "PATCH", path, f"scale Deployment/{namespace}/{deployment}", query=query,
            body={"spec": {"replicas": replicas}}, content_type="application/merge-patch+json",
        )
        return result

    async def watch(
        self, api_version: str, kind: str, namespace: str | None, *, label_selector: str | None = None,
        field_selector: str | None = None, timeout_seconds: int = 30, resource_version: str | None = None,
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """(type, object) events of one watch request, ending when the server closes it after
        `timeout_seconds`. Callers loop, passing the last resourceVersion, to watch longer."""
        query: list[tuple[str, Any]] = [("watch", "true"), ("timeoutSeconds", timeout_seconds),
                                        ("allowWatchBookmarks", "true")]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        if resource_version:
            query.append(("resourceVersion", resource_version))
        path = collection_path(api_version, kind, namespace)
        try:
            resp = await self.api.call_api(
                path, "GET", query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(sock_read=timeout_seconds + 15, connect=10),
            )
        except ApiException as e:
            raise KubeError(self._classify(e.status, status_message(e.body)), f"watch {kind}") from e
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise KubeError(self._classify(None, f"{type(e).__name__}: {e}"), f"watch {kind}") from e
        try:
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise KubeError(classify_status(status.get("code"), str(status.get("message"))), f"watch {kind}")
                yield str(event.get("type")), event.get("object") or {}
        except (TimeoutError, aiohttp.ClientError) as e:
            raise KubeError(self._classify(None, f"{type(e).__name__}: {e}"), f"watch {kind}") from e
        finally:
            resp.release()

    async def pod_log(self, namespace: str, pod: str, *, container: str | None = None, timestamps: bool = False,
                      since_seconds: int | None = None, limit_bytes: int | None = None, tail_lines: int | None = None,
                      previous: bool = False) -> str:
        """`GET .../pods/<pod>/log`: the text of one container's log (of its previous instance with
        `previous`), as much of it as the parameters ask; KubeError on any failure, reaching the API included."""
        query: list[tuple[str, Any]] = []
        if container:
            query.append(("container", container))
        if timestamps:
            query.append(("timestamps", "true"))
        if since_seconds is not None:
            query.append(("sinceSeconds", since_seconds))
        if limit_bytes is not None:
            query.append(("limitBytes", limit_bytes))
        if tail_lines is not None:
            query.append(("tailLines", tail_lines))
        if previous:
            query.append(("previous", "true"))
        what = f"logs of pod {pod}" + (f" container {container}" if container else "")
        try:
            resp = await self.api.call_api(
                f"/api/v1/namespaces/{namespace}/pods/{pod}/log", "GET", query_params=query,
                header_params={"Accept": "*/*"}, auth_settings=["BearerToken"], _preload_content=False,
                _request_timeout=self.timeout,
            )
        except ApiException as e:
            raise KubeError(self._classify(e.status, status_message(e.body)), what) from e
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise KubeError(self._classify(None, f"{type(e).__name__}: {e}"), what) from e
        try:
            raw: bytes = await resp.read()
            status = int(resp.status)
        finally:
            resp.release()
        if status >= 400:
            raise KubeError(classify_status(status, status_message(raw)), what)
        return raw.decode(errors="replace")

    async def pod_logs(self, namespace: str, pod: str, *, container: str | None = None, tail_lines: int = 20,
                       previous: bool = False) -> list[str]:
        """The last `tail_lines` lines of a container's log."""
        text = await self.pod_log(namespace, pod, container=container, tail_lines=tail_lines, previous=previous)
        return text.splitlines()

    async def follow_pod_log(self, namespace: str, pod: str, container: str, *,
                             max_seconds: float = 3600) -> AsyncGenerator[str, None]:
        """The lines of one container's log from its start, following it until the container exits (the
        server then ends the response) or `max_seconds` pass."""
        query: list[tuple[str, Any]] = [("container", container), ("follow", "true")]
        what = f"logs of container {container} of pod {pod}"
        try:
            resp = await self.api.call_api(
                f"/api/v1/namespaces/{namespace}/pods/{pod}/log", "GET", query_params=query,
                header_params={"Accept": "*/*"}, auth_settings=["BearerToken"], _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(total=max_seconds, connect=10),
            )
        except ApiException as e:
            raise KubeError(self._classify(e.status, status_message(e.body)), what) from e
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise KubeError(self._classify(None, f"{type(e).__name__}: {e}"), what) from e
        try:
            if int(resp.status) >= 400:
                raw = await resp.read()
                raise KubeError(classify_status(int(resp.status), status_message(raw)), what)
            pending = b""
            async for chunk in resp.content.iter_any():  # not line iteration: a build may print very long lines
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        except (TimeoutError, aiohttp.ClientError) as e:
            raise KubeError(self._classify(None, f"{type(e).__name__}: {e}"), what) from e
        finally:
            resp.release()

    async def events_for(self, namespace: str, names: set[str], prefix: str | None = None) -> list[dict[str, Any]]:
        """Events about the named objects (or objects whose name starts with `prefix-`, e.g. a release's
        ReplicaSets), oldest first."""
        events = await self.list_objects("v1", "Event", namespace)

        def about(e: dict[str, Any]) -> bool:
            name = str((e.get("involvedObject") or {}).get("name"))
            return name in names or (prefix is not None and name.startswith(f"{prefix}-"))

        chosen = [e for e in events if about(e)]
        chosen.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return chosen
