"""A psql client as one of an app's pods on the testbed: a Pod in the project's namespace, labelled as the app's
pods are, whose environment is an app release's Secret (envFrom, as the app's pods get DATABASE_URL), running
one SQL string through `psql "$DATABASE_URL"`. And the platform's own Postgres image in the testbed registry,
which both the database and the client run (built from Debian's postgresql package on the cached base when the
registry lacks it, as `make image-postgres-push PG_IMAGE=...` does)."""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx

from mcp_server.devenv.platform_image import push_image
from mcp_server.devenv.postgres_image import build_postgres_image
from workflows.adapters.kube import Kube
from workflows.domain.labels import LABEL_APP
from workflows.render.namespace import project_labels

REGISTRY = "127.0.0.1:5000"
POSTGRES_IMAGE = os.environ.get("DEPLOY_MCP_TEST_POSTGRES_IMAGE", f"{REGISTRY}/deploy-mcp-postgres:15")


async def image_pushed(ref: str) -> bool:
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    async with httpx.AsyncClient(timeout=5) as h:
        r = await h.head(f"http://{host}/v2/{repo}/manifests/{tag}", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
                      "application/vnd.docker.distribution.manifest.v2+json"})
    return r.status_code == 200


async def postgres_image_pushed(ref: str = POSTGRES_IMAGE) -> str:
    """`ref` in the registry: pushed already, or built (a few minutes once, then cached by its inputs) and
    pushed now. Root and buildah, like every image build here."""
    if not await image_pushed(ref):
        built = await asyncio.to_thread(build_postgres_image)
        await asyncio.to_thread(push_image, None, built, ref)
    return ref


async def psql(kube: Kube, ns: str, env_secret: str, sql: str, *, tenant: str, project: str, app: str,
               image: str = POSTGRES_IMAGE) -> tuple[str, str]:
    """Run `sql` with psql in a pod of namespace `ns` labelled as a pod of `app` (what the database's policy
    admits), whose environment is `env_secret` (the app release's Secret); (phase, log). The pod is deleted
    after."""
    name = f"client-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {**project_labels(tenant, project), LABEL_APP: app}},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "psql", "image": image, "command": ["/bin/sh", "-c"],
                # kube-proxy may route the Service a moment after its Endpoints name a new pod: the client waits
                # (up to 30 s) for the server to accept connections, as an app's connection pool would
                "args": ['for i in $(seq 30); do pg_isready -q -d "$DATABASE_URL" && break; sleep 1; done; '
                         f'psql "$DATABASE_URL" -X -q -At -v ON_ERROR_STOP=1 -c "{sql}"'],
                "envFrom": [{"secretRef": {"name": env_secret}}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            "tolerations": [{"key": "pool", "operator": "Exists"}],
        },
    }
    await kube.apply(pod)
    phase = ""
    for _ in range(600):
        got = await kube.get("v1", "Pod", ns, name)
        phase = str(((got or {}).get("status") or {}).get("phase", ""))
        if phase in ("Succeeded", "Failed"):
            break
        await asyncio.sleep(0.2)
    log = await kube.pod_log(ns, name)
    await kube.delete("v1", "Pod", ns, name, grace_seconds=0)
    return phase, log.strip()
