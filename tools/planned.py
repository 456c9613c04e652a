"""What each mutating tool would change, for `plan=true` (decision 0021, `tools.plan`): the rows it would
write and the objects its workflow would apply, rendered by the workflows' own renderers from the same specs,
so a plan and a real call cannot drift apart. Nothing here writes.
"""

from __future__ import annotations

from typing import Any

from tools.context import CallContext
from tools.plan import Plan, PlannedRow, make_plan, planned_caps
from tools.records import AppRecord, VolumeRecord
from tools.releases import ResolvedSource
from workflows.domain.database_spec import DatabaseResources, DatabaseSpec
from workflows.domain.names import app_hostname, namespace_name, release_name
from workflows.domain.scaling import Autoscale
from workflows.domain.specs import AppConfig, Guardrails, ReleaseSpec, VolumeSpec
from workflows.render.autoscaler import app_autoscaler
from workflows.render.database import database_objects
from workflows.render.domains import DEFAULT_ISSUER, domain_objects
from workflows.render.namespace import namespace_objects
from workflows.render.release import app_ingress, app_service, release_deployment, release_pdb, release_secret
from workflows.render.volume import volume_pvc

PLANNED_ID = "planned"
"""The deployment-id label of a planned release: the row that would give it an id is not written."""


PLACEHOLDER_VALUE = "planned"
"""Stands in for a secret value a plan never decrypts or generates; the plan shows Secrets redacted anyway."""


async def _next_release_seq(c: CallContext, app: AppRecord | None) -> int:
    if app is None:
        return 1
    latest = await c.store.list_deployments(app.id, limit=1)
    return latest[0].release_seq + 1 if latest else 1


def _image(resolved: ResolvedSource) -> str:
    # an image pinned by digest as the release runs it; a git source's image is built, tagged with its commit
    return (f"{resolved.repository}@{resolved.digest}" if resolved.digest
            else f"{resolved.repository}:{resolved.commit_sha or 'latest'}")


async def release_plan(c: CallContext, tool: str, *, project: str, app: str, existing: AppRecord | None,
                       config: AppConfig, resolved: ResolvedSource, secret_names: list[str],
                       secrets_changed: list[str], extra_rows: list[PlannedRow] | None = None,
                       extra_objects: list[dict[str, Any]] | None = None, rollback_seq: int | None = None) -> Plan:
    """A release of `app`: its project's namespace objects (a new app), the release's Secret (secret values
    as placeholders: a plan never decrypts), Deployment and PDB, and the app's Service and Ingress."""
    tenant = c.principal.tenant
    ns = existing.namespace if existing else namespace_name(tenant, project)
    hostname = existing.hostname if existing else app_hostname(app, project, tenant, c.config.apps_domain)
    seq = rollback_seq or await _next_release_seq(c, existing)
    caps = await planned_caps(c)
    spec = ReleaseSpec(tenant=tenant, project=project, app=app, namespace=ns, seq=seq, deployment_id=PLANNED_ID,
                       image=_image(resolved), commit_sha=resolved.commit_sha, config=config,
                       runtime_class=c.config.runtime_class, image_pull_secret=c.config.image_pull_secret,
                       node_failure_seconds=c.config.node_failure_seconds)
    values = dict(config.env) | dict.fromkeys(secret_names, PLACEHOLDER_VALUE)
    objects: list[dict[str, Any]] = []
    if existing is None:
        objects += namespace_objects(tenant, project, ns, Guardrails(), caps)
    if rollback_seq is None:  # a rollback runs its release's own (immutable) Secret again, as it was
        objects.append(release_secret(spec, values))
    objects.append(release_deployment(spec, config.replicas))
    pdb = release_pdb(spec, caps)
    if pdb:
        objects.append(pdb)
    objects += [app_service(ns, tenant, project, app, spec.release),
                app_ingress(ns, tenant, project, app, hostname, c.config.ingress_class, None)]
    objects += extra_objects or []
    key = f"{project}/{app}"
    rows = [] if existing else [PlannedRow(table="apps", action="insert", key=key,
                                           fields={"namespace": ns, "hostname": hostname})]
    rows.append(PlannedRow(table="deployments", action="insert", key=f"{key} release {seq}",
                           fields={"kind": "rollback" if rollback_seq else "deploy", "release": spec.release,
                                   "image": spec.image, "replicas": config.replicas,
                                   "env_names": sorted(config.env)}))
    if secrets_changed:
        rows.append(PlannedRow(table="secret_versions", action="insert", key=key,
                               fields={"names": secret_names, "changed": sorted(secrets_changed)}))
    return await make_plan(c, tool, rows + (extra_rows or []), objects)


async def scale_plan(c: CallContext, row: AppRecord, replicas: int | None, autoscale: Autoscale | None) -> Plan:
    """Replicas: the serving release's Deployment through its scale subresource, as the workflow scales it;
    autoscale: its HorizontalPodAutoscaler; neither: that autoscaler deleted."""
    serving = await c.store.get_deployment(c.principal.tenant, row.serving_deployment_id) \
        if row.serving_deployment_id else None
    rows = [PlannedRow(table="apps", action="update", key=f"{row.project}/{row.name}",
                       fields={"scale": {"replicas": replicas} if replicas is not None else
                               {"autoscale": autoscale.model_dump() if autoscale else None}})]
    if serving is None:  # nothing serves yet: the first release starts with the recorded scale
        return await make_plan(c, "scale", rows)
    release = release_name(row.name, serving.release_seq)
    if replicas is not None:
        return await make_plan(c, "scale", rows, scales=[(row.namespace, release, replicas)])
    caps = await planned_caps(c)
    if autoscale is not None:
        hpa = app_autoscaler(row.namespace, row.tenant, row.project, row.name, release, autoscale, caps)
        return await make_plan(c, "scale", rows, [hpa])
    return await make_plan(c, "scale", rows, deletes=[f"HorizontalPodAutoscaler/{row.namespace}/{row.name}"])


async def secrets_plan(c: CallContext, row: AppRecord, base: int, names: list[str], changed: list[str]) -> Plan:
    """A new secrets version: a row only. Its objects come with the next release (`deploy` plans them)."""
    return await make_plan(c, "set_secrets", [PlannedRow(
        table="secret_versions", action="insert", key=f"{row.project}/{row.name} v{base + 1}",
        fields={"names": names, "changed": changed})])


async def domain_add_plan(c: CallContext, row: AppRecord, hostname: str) -> Plan:
    """The claim, and the Certificate and Ingress its workflow applies once DNS verifies it."""
    objects = domain_objects(row.namespace, row.tenant, row.project, row.name, hostname, DEFAULT_ISSUER,
                             c.config.ingress_class)
    return await make_plan(c, "domain", [PlannedRow(table="domains", action="insert", key=hostname,
                                                    fields={"app": f"{row.project}/{row.name}",
                                                            "status": "verifying"})], objects)


def volume_spec_for(c: CallContext, tenant: str, project: str, name: str, size_gib: int, class_: str,
                    access: str) -> VolumeSpec:
    return VolumeSpec(tenant=tenant, project=project, namespace=namespace_name(tenant, project), name=name,
                      claim=f"vol-{name}", size_gib=size_gib, storage_class=c.config.storage_classes[class_],
                      access=access)


async def volume_plan(c: CallContext, action: str, spec: VolumeSpec, existing: VolumeRecord | None) -> Plan:
    """create or resize: the volume's row and its PersistentVolumeClaim, as the volume workflow applies it."""
    row = PlannedRow(table="volumes", action="update" if existing else "insert", key=f"{spec.project}/{spec.name}",
                     fields={"size_gib": spec.size_gib, "access": spec.access})
    return await make_plan(c, "volume", [row], [volume_pvc(spec)])


async def database_plan(c: CallContext, project: str, name: str, version: int, size_gib: int, class_: str,
                        resources: DatabaseResources, app: str | None) -> Plan:
    """The database's row and its objects (Secret with the password redacted, claim, StatefulSet, Service,
    NetworkPolicy), as the database workflow renders them."""
    tenant = c.principal.tenant
    spec = DatabaseSpec(tenant=tenant, project=project, namespace=namespace_name(tenant, project), name=name,
                        version=version, image=c.config.database_images.get(version, ""), size_gib=size_gib,
                        storage_class=c.config.storage_classes.get(class_, class_), resources=resources, app=app,
                        engine="statefulset", image_pull_secret=c.config.image_pull_secret)
    caps = await planned_caps(c)
    rows = [PlannedRow(table="databases", action="insert", key=f"{project}/{name}",
                       fields={"version": version, "size_gib": size_gib, "class": class_, "app": app})]
    return await make_plan(c, "database", rows, database_objects(spec, caps, PLACEHOLDER_VALUE))
