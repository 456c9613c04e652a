"""The server's side of a plan (`plan=true`, decision 0021): the live objects and the API server's own
server-side dry run (`dryRun=All`: validation, defaulting and admission, nothing persisted).

The client is the server's one `Kube` of the cluster it reconciles (the pod-log reader's, `mcp_server.wiring`),
connected on the first plan: kubernetes_asyncio costs ~38 MB of resident memory, which a server that never
plans (or reads its logs from Loki) does not pay. Tools never talk to the cluster to change it; a dry run
changes nothing, so it runs here, in the call the agent waits on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tools.ports import DryRunRefused, DryRunUnavailable
from workflows.domain.specs import ClusterCaps

if TYPE_CHECKING:
    from workflows.adapters.kube import Kube, KubeError

# What the API server answers when it refuses the object itself (the real call would be refused the same way):
# 400 bad request, 403 forbidden by admission (PodSecurity, a webhook), 409 conflict, 422 invalid.
_REFUSED = {400, 403, 409, 422}
_RBAC_DENIAL = "cannot "  # `... is forbidden: User "system:serviceaccount:..." cannot patch resource ...`


class KubePlanner:
    def __init__(self, connect: Callable[[], Awaitable[Kube]]) -> None:
        self._connect = connect
        self._client: Kube | None = None
        self._lock = asyncio.Lock()

    async def _kube(self) -> Kube:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await self._connect()
                except Exception as e:  # a kubeconfig that cannot be loaded costs plans their validation only
                    raise DryRunUnavailable(f"the cluster config cannot be loaded ({type(e).__name__})") from e
            return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    @staticmethod
    def _fail(what: str, e: KubeError) -> Exception:
        message = e.failure.message or str(e)
        if e.failure.status == 403 and _RBAC_DENIAL in message:
            # RBAC: this server may not make that request (dry runs are authorized as real ones), which says
            # nothing about the object itself
            return DryRunUnavailable(f"this server is not allowed to dry-run {what} ({message})")
        if e.failure.status in _REFUSED and not e.retryable:
            return DryRunRefused(what, message)
        return DryRunUnavailable(f"the cluster's API server could not be asked ({e})")

    async def caps(self) -> ClusterCaps:
        from workflows.adapters.kube import KubeError

        kube = await self._kube()
        try:
            return await kube.caps()
        except KubeError as e:
            raise DryRunUnavailable(f"the cluster's API server could not be asked ({e})") from e

    async def live(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        from workflows.adapters.kube import KubeError, ref

        kube = await self._kube()
        md = obj["metadata"]
        try:
            return await kube.get(obj["apiVersion"], obj["kind"], md.get("namespace"), md["name"])
        except KubeError as e:
            raise DryRunUnavailable(f"could not read {ref(obj)} ({e})") from e

    async def dry_run_apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        from workflows.adapters.kube import KubeError, ref

        kube = await self._kube()
        try:
            return await kube.apply(obj, dry_run=True)
        except KubeError as e:
            raise self._fail(ref(obj), e) from e

    async def dry_run_scale(self, namespace: str, deployment: str, replicas: int) -> dict[str, Any]:
        from workflows.adapters.kube import KubeError

        kube = await self._kube()
        try:
            return await kube.scale(namespace, deployment, replicas, dry_run=True)
        except KubeError as e:
            raise self._fail(f"Deployment/{namespace}/{deployment}", e) from e
