"""The production build Job (BuildKit + Railpack on `pool=build` nodes) rendered by `workflows.render.build_job`
is accepted by the testbed's real API server as rendered, and reads back with the pool, limits, deadline and
no credential in its spec. (No BuildKit runs here, so the Job is not run: its node pool does not exist.)"""

from __future__ import annotations

import json
import uuid

import pytest

from workflows.adapters.kube import Kube
from workflows.domain.build_spec import BuildImages, BuildSpec
from workflows.domain.credentials import GitCredentials
from workflows.render.build_job import build_job, git_secret_body

pytestmark = pytest.mark.cluster
TOKEN = "ghs_0nly0in0the0secret0never0in0the0job"


@pytest.mark.parametrize("builder", ["railpack", "dockerfile"])
async def test_build_job_is_accepted_by_the_api_server(kube: Kube, builder: str) -> None:
    ns = f"builds-{uuid.uuid4().hex[:6]}"
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    spec = BuildSpec(
        tenant="acme", project="shop", app="web", build_id=uuid.uuid4().hex[:12], namespace=ns,
        git_url="https://git.example.com/acme/web.git", commit_sha="a" * 40, builder=builder,
        image="registry.example.com/acme/web:" + "a" * 40, buildkit_addr="tcp://buildkitd.deploy-mcp-builds:1234",
        cache_ref="registry.example.com/acme/cache:buildcache", git_secret="git-cred", cpu_millicores=2000,
        memory_mib=4096, deadline_seconds=900,
        images=BuildImages(clone="alpine/git:2.45.2", railpack="ghcr.io/railwayapp/railpack:0.2.2",
                           buildctl="moby/buildkit:v0.16.0-rootless"),
    )
    try:
        await kube.apply(git_secret_body(spec, GitCredentials(token=TOKEN)))
        job = build_job(spec)
        await kube.apply(job)
        back = await kube.get("batch/v1", "Job", ns, job["metadata"]["name"])
        assert back is not None
        pod = back["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"pool": "build"}
        assert {"key": "pool", "operator": "Equal", "value": "build", "effect": "NoSchedule"} in pod["tolerations"]
        assert back["spec"]["activeDeadlineSeconds"] == 900 and back["spec"]["backoffLimit"] == 0
        build = next(c for c in pod["containers"] if c["name"] == "build")
        assert build["resources"]["limits"]["memory"] == "4Gi"  # the API server normalises 4096Mi
        assert TOKEN not in json.dumps(back)  # the token stays in the Secret, referenced by name only
    finally:
        await kube.delete("v1", "Namespace", None, ns)
