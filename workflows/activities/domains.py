"""The custom-domain activities: one check of a domain (its DNS through the configured resolvers, then, once
verified, its Certificate and Ingress applied and the Certificate's status read), recorded in the store; and its
removal (Ingress, Certificate, TLS Secret, row).

The cluster side is a port, `DomainCluster`: `KubeDomainCluster` in the worker (server-side apply through
`workflows.adapters.kube`); the tests hand in the fake cert-manager (tests/fakes/fake_cert_manager.py), which
issues from a real ACME server. Without a cluster a verified domain stays `issuing` and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from temporalio import activity

from workflows.activities.stores import DomainStore
from workflows.adapters.dns_resolver import observe
from workflows.adapters.kube import Kube, KubeError
from workflows.domain.domain_contract import DomainInput, DomainStep
from workflows.domain.domains import check_dns, decide
from workflows.render.domains import (
    DEFAULT_ISSUER,
    certificate_state,
    domain_object_name,
    domain_objects,
    tls_secret_name,
)


class DomainCluster(Protocol):
    """Where a verified domain's objects live and its certificate is issued."""

    async def apply(self, obj: dict[str, Any]) -> None: ...

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...


@dataclass
class KubeDomainCluster:
    kube: Kube

    async def apply(self, obj: dict[str, Any]) -> None:
        await self.kube.apply(obj)

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.kube.get(api_version, kind, namespace, name)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        await self.kube.delete(api_version, kind, namespace, name)


@dataclass(frozen=True)
class DomainConfig:
    """The settings a check needs (mcp_server.settings DnsSettings, ClusterSettings)."""

    edge_name: str
    edge_addresses: tuple[str, ...] = ()
    resolvers: tuple[str, ...] = ()
    issuer: str = DEFAULT_ISSUER
    ingress_class: str | None = None
    external_dns: bool = False
    lookup_timeout: float = 5.0


@dataclass
class DomainActivities:
    store: DomainStore
    config: DomainConfig
    cluster: DomainCluster | None = None
    now: Any = field(default=lambda: datetime.now(UTC))

    def all(self) -> list[Any]:
        return [self.domain_step, self.domain_remove]

    @activity.defn
    async def domain_step(self, inp: DomainInput) -> DomainStep:
        """One check: DNS, then (verified) the certificate; the status it leads to is recorded and returned."""
        claim = await self.store.domain_claim_state(inp.domain_id, inp.token)
        if not claim.exists:
            return DomainStep(status=None, gone=True)
        seen = await observe(inp.hostname, self.config.resolvers, self.config.lookup_timeout)
        check = None if seen.error else check_dns(inp.hostname, inp.token, self.config.edge_name,
                                                  self.config.edge_addresses, seen)
        now = self.now()
        cert = None
        cluster_problem = None
        if check is not None and check.ok and self.cluster is not None:
            try:
                cert = await self._certificate(inp)
            except KubeError as e:
                if e.failure.retryable:
                    raise
                cluster_problem = str(e)[:300]
        d = decide(check, seen.error, claim.verified_at is not None, now, inp.deadline, cert)
        fields: dict[str, Any] = {"status": d.status, "detail": d.detail, "fix": d.fix, "checked_at": now}
        if cluster_problem is not None:
            fields |= {"status": "issuing", "detail": f"verified; the cluster refused its Certificate: "
                       f"{cluster_problem}", "fix": "tell the operator (cert-manager installed? RBAC?)"}
        if d.verified and claim.verified_at is None:
            fields["verified_at"] = now
        if cert is not None and cert[2] is not None:
            fields["cert_not_after"] = cert[2]
        if not await self.store.set_domain_status(inp.domain_id, inp.token, **fields):
            return DomainStep(status=None, gone=True)
        return DomainStep(status=fields["status"], done=d.done, detail=fields["detail"])

    async def _certificate(self, inp: DomainInput) -> tuple[str, str | None, datetime | None]:
        assert self.cluster is not None
        for obj in domain_objects(inp.namespace, inp.tenant, inp.project, inp.app, inp.hostname,
                                  self.config.issuer, self.config.ingress_class, self.config.external_dns):
            await self.cluster.apply(obj)
        live = await self.cluster.get("cert-manager.io/v1", "Certificate", inp.namespace,
                                      domain_object_name(inp.app, inp.hostname))
        state, reason, not_after = certificate_state(live)
        return state, reason, datetime.fromisoformat(not_after) if not_after else None

    @activity.defn
    async def domain_remove(self, inp: DomainInput) -> DomainStep:
        """The domain's Ingress, Certificate and TLS Secret deleted (those of this hostname only), then its row."""
        if self.cluster is not None:
            name = domain_object_name(inp.app, inp.hostname)
            owned = (("networking.k8s.io/v1", "Ingress", name), ("cert-manager.io/v1", "Certificate", name),
                     ("v1", "Secret", tls_secret_name(inp.app, inp.hostname)))
            for api, kind, obj in owned:
                await self.cluster.delete(api, kind, inp.namespace, obj)
        await self.store.remove_domain(inp.domain_id, inp.token)
        return DomainStep(status=None, gone=True, detail="removed")
