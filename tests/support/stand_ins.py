"""Stand-ins for what the deploy and volume workflows reach outside the platform (the registry, the cluster),
registered under the real activities' names, so integration tests run the real workflows, the real store
activities and a real MCP client on a real Temporal dev server and Postgres without a Kubernetes testbed."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from temporalio import activity
from temporalio.client import Client as TemporalClient
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from mcp_server.store import PgStore
from mcp_server.temporal import TemporalWorkflows
from workflows.activities.deploy import DeployActivities
from workflows.activities.domains import DomainActivities
from workflows.activities.volume import VolumeActivities
from workflows.adapters.kube import Kube
from workflows.adapters.registry import ResolvedImage
from workflows.delete import DeleteAppWorkflow
from workflows.deploy import DeployWorkflow
from workflows.domain.build_contract import BuildOutput
from workflows.domain.deploy_contract import RetiredRelease, Switched
from workflows.domain.images import ImageRef
from workflows.domain.phases import Phase
from workflows.domain.secretbox import SecretBox
from workflows.domain.volume_contract import VolumeOp, VolumeResult
from workflows.domains import DomainWorkflow
from workflows.volume import VolumeWorkflow

STEP = 0.3  # each stand-in step takes a moment, so the tool's poll (every 0.25 s) sees most phases


class StandInImages:
    """Tag -> a digest of the tag: the registry is not what these tests are about."""

    async def resolve(self, ref: ImageRef) -> ResolvedImage:
        digest = "sha256:" + hashlib.sha256((ref.tag or ref.digest or "").encode()).hexdigest()
        return ResolvedImage(repository=ref.name, digest=digest, pinned=f"{ref.name}@{digest}",
                             media_type="application/vnd.oci.image.manifest.v1+json")


@dataclass
class Cluster:
    """Stand-ins for the activities that talk to Kubernetes, under their real names. `fail` and `hold` name
    releases whose wait for Ready fails, or lasts until the workflow is cancelled."""

    fail: set[str] = field(default_factory=set)
    hold: set[str] = field(default_factory=set)
    held: asyncio.Event = field(default_factory=asyncio.Event)
    serving: str | None = None
    builds: list[dict[str, Any]] = field(default_factory=list)  # each git build asked for (`run_build`)
    deleted: list[str] = field(default_factory=list)  # the apps whose objects were deleted
    store: PgStore | None = None  # where the switch writes the `switching` phase (set by `stand_in_worker`)

    def activities(self) -> list[Any]:
        cluster = self

        @activity.defn(name="ensure_namespace")
        async def ensure_namespace(inp: Any) -> list[str]:
            await asyncio.sleep(STEP)
            return []

        @activity.defn(name="apply_release")
        async def apply_release(inp: Any) -> list[str]:
            await asyncio.sleep(STEP)
            return []

        @activity.defn(name="wait_ready")
        async def wait_ready(inp: Any) -> None:
            await asyncio.sleep(STEP)
            if inp["release"] in cluster.fail:
                raise ApplicationError("CrashLoop: exit 1", {"reason": "CrashLoop", "message": "exit 1"},
                                       type="ReleaseFailed", non_retryable=True)
            if inp["release"] in cluster.hold:
                cluster.held.set()
                while True:  # never Ready: until the cancellation arrives with a heartbeat
                    activity.heartbeat()
                    await asyncio.sleep(0.05)

        async def switch(inp: Any) -> Switched:
            await asyncio.sleep(STEP)
            if inp.get("deployment_id") and cluster.store is not None:  # the real switch writes its phase too
                await cluster.store.set_deployment_phase(uuid.UUID(inp["deployment_id"]), Phase.SWITCHING)
            previous, cluster.serving = cluster.serving, inp["release"]
            return Switched(previous_release=previous if previous != inp["release"] else None, refs=[])

        @activity.defn(name="switch_service")
        async def switch_service(inp: Any) -> Switched:
            return await switch(inp)

        @activity.defn(name="switch_if_ready")
        async def switch_if_ready(inp: Any) -> Switched | None:
            return await switch(inp["switch"])  # the rollback target is still warm: only the switch

        @activity.defn(name="release_ready")
        async def release_ready(inp: Any) -> bool:
            return True  # (histories from before the warm-switch patch)

        @activity.defn(name="retire_releases")
        async def retire_releases(inp: Any) -> list[RetiredRelease]:
            return []

        @activity.defn(name="prune_releases")
        async def prune_releases(inp: Any) -> list[str]:
            return []

        @activity.defn(name="scale_release")
        async def scale_release(inp: Any) -> bool:
            await asyncio.sleep(2 * STEP)  # a superseded release's clean-up: its successor shows `superseding`
            return True

        @activity.defn(name="run_build")
        async def run_build(inp: Any) -> BuildOutput:
            # the builder is not what these tests are about: the commit asked for becomes `<repo>:<sha>`
            await asyncio.sleep(STEP)
            cluster.builds.append(inp)
            digest = "sha256:" + hashlib.sha256(inp["commit_sha"].encode()).hexdigest()
            return BuildOutput(image=f"{inp['image_repo']}@{digest}", digest=digest)

        @activity.defn(name="delete_app_objects")
        async def delete_app_objects(inp: Any) -> list[str]:
            cluster.deleted.append(inp["app"])
            return [f"Service/{inp['namespace']}/{inp['app']}"]

        return [ensure_namespace, apply_release, wait_ready, switch_service, switch_if_ready, release_ready,
                retire_releases,
                prune_releases, scale_release, run_build, delete_app_objects]


def volume_stand_ins() -> list[Any]:
    """The volume activities that talk to the cluster: every claim binds, every snapshot is ready at once."""

    @activity.defn(name="volume_create")
    async def volume_create(op: VolumeOp) -> VolumeResult:
        return VolumeResult(status="bound", refs=[f"PersistentVolumeClaim/{op.spec.namespace}/{op.spec.claim}"])

    @activity.defn(name="volume_restore")
    async def volume_restore(op: VolumeOp) -> VolumeResult:
        return VolumeResult(status="bound", refs=[f"PersistentVolumeClaim/{op.spec.namespace}/{op.spec.claim}"])

    @activity.defn(name="volume_snapshot")
    async def volume_snapshot(op: VolumeOp) -> VolumeResult:
        return VolumeResult(status="ready")

    @activity.defn(name="volume_backup")
    async def volume_backup(op: VolumeOp) -> VolumeResult:
        return VolumeResult(status="ready")

    return [volume_create, volume_restore, volume_snapshot, volume_backup]


@asynccontextmanager
async def stand_in_worker(store: PgStore, temporal_address: str, cluster: Cluster, secretbox: SecretBox,
                          interceptors: Sequence[ClientInterceptor] = (), domains: DomainActivities | None = None,
                          ) -> AsyncIterator[TemporalWorkflows]:
    """A worker on its own task queue running the real deploy and volume workflows with the store's real
    activities and the stand-ins above (and, given `domains`, the real custom-domain workflow with those
    activities); yields the tools' `Workflows` on that queue. `interceptors` go on the client (and so on the
    worker too, for the ones that are also worker interceptors: tracing's)."""
    temporal = await TemporalClient.connect(temporal_address, data_converter=pydantic_data_converter,
                                            interceptors=interceptors)
    queue = f"stand-in-{uuid.uuid4().hex[:8]}"
    cluster.store = store
    real = DeployActivities(cast(Kube, None), store, secretbox, temporal=temporal)
    volumes = VolumeActivities(cast(Kube, None), store)
    worker = Worker(temporal, task_queue=queue,
                    workflows=[DeployWorkflow, VolumeWorkflow, DeleteAppWorkflow,
                               *([DomainWorkflow] if domains else [])],
                    activities=[real.set_phase, real.record_outcome, real.set_image, real.wait_workflows_closed,
                                real.mark_app_deleted,
                                volumes.volume_record, *cluster.activities(), *volume_stand_ins(),
                                *(domains.all() if domains else [])],
                    max_heartbeat_throttle_interval=timedelta(milliseconds=100),
                    default_heartbeat_throttle_interval=timedelta(milliseconds=100))
    async with worker:
        yield TemporalWorkflows(temporal, queue)
