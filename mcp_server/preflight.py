"""`deploy-mcp preflight` and the worker's check at start: the settings become the preflight's expectations,
the cluster's answers its facts (`workflows.adapters.cluster_facts`), `workflows.domain.preflight` the verdict.

Kept apart from the worker's assembly so the CLI command loads only the Kubernetes client and the check logic.
"""

from __future__ import annotations

import logging
import socket
from typing import Protocol

from mcp_server.settings import Settings
from workflows.adapters.cluster_facts import gather_facts
from workflows.adapters.kube import Kube, KubeError
from workflows.domain.preflight import CheckResult, Expectations, PreflightReport, run_checks

log = logging.getLogger(__name__)


class PreflightRecorder(Protocol):
    """Where the worker stores its result (`mcp_server.store.PgStore`)."""

    async def record_preflight(self, host: str, report: PreflightReport) -> None: ...


def expectations(settings: Settings) -> Expectations:
    return Expectations(
        runtime_class=settings.cluster.runtime_class or None,
        storage_classes=tuple(dict.fromkeys(settings.cluster.storage_classes.values())),
        ingress_class=settings.cluster.ingress_class,
        builder=settings.build.builder,
        buildkit_addr=settings.build.buildkit_addr,
        volumes=settings.preflight.volumes,
        edge_pool=settings.preflight.edge_pool,
        build_pool=settings.build.pool,
    )


async def preflight(kube: Kube, settings: Settings) -> PreflightReport:
    """Every check against the cluster `kube` talks to. An API server that cannot be reached at all is one
    missing check (nothing else can be asked)."""
    expect = expectations(settings)
    try:
        facts = await gather_facts(kube, expect, timeout=settings.preflight.timeout_seconds)
    except KubeError as e:
        return PreflightReport(results=[CheckResult(
            check="api server", status="missing", detail=f"cannot be reached: {e}",
            fix="set KUBECONFIG (or DEPLOY_MCP_CLUSTER__KUBECONFIG), or run in the cluster with a ServiceAccount")])
    return run_checks(facts, expect)


async def preflight_at_start(kube: Kube, settings: Settings, record: PreflightRecorder) -> PreflightReport | None:
    """The worker's preflight: each missing piece logged (the worker starts anyway: a missing CRD costs only
    the tools that need it), the result stored for `whoami` under this host's name. Never raises."""
    try:
        report = await preflight(kube, settings)
        for r in report.missing:
            log.warning("preflight: missing %s: %s; fix: %s", r.check, r.detail, r.fix)
        for r in report.warnings:
            log.info("preflight: warning %s: %s", r.check, r.detail)
        log.info("preflight: %s (%d missing, %d warnings)", "ok" if report.ok else "NOT READY",
                 len(report.missing), len(report.warnings))
        await record.record_preflight(socket.gethostname(), report)
        return report
    except Exception:
        log.exception("preflight at start failed; the worker runs on")
        return None
