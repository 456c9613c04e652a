"""manifests/components/monitoring: what an operator's Prometheus and Grafana load.

- The component renders onto the base; its core objects validate against Kubernetes' schemas; the worker gets
  the Temporal SDK metrics port and the setting that opens it (a real setting), and the NetworkPolicy admits
  Prometheus' namespace to every port the PodMonitor scrapes.
- The PrometheusRule's groups pass `promtool check rules`, and `promtool test rules` shows the backup alert
  quiet while the last backup is younger than 26 h and firing ten minutes after (and the worker alert firing
  when no worker is up).
- Every metric the rules and the Grafana dashboard query is one the code exports (or Prometheus' own `up`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

# the modules that define the metrics register them on import
import mcp_server.telemetry.metrics
import mcp_server.telemetry.workflow_metrics  # noqa: F401
import workflows.activities.metrics  # noqa: F401
from mcp_server.settings import Settings
from tests.support.kustomize import MANIFESTS, render

COMPONENT = MANIFESTS / "components" / "monitoring"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}  # the Prometheus Operator's CRDs: not in this repository


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("monitoring-overlay")
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(MANIFESTS / "base", tmp)],
        "components": [os.path.relpath(COMPONENT, tmp)]}))
    return render(tmp)


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not Path(PROMTOOL).exists():
        pytest.fail("no promtool: `apt-get install prometheus` (Debian's package ships it)")
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_the_component_renders_validates_and_opens_the_ports_it_scrapes(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    worker = _one(objects, "Deployment", "deploy-mcp-worker")["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert ports["temporal-metrics"] == int(env["DEPLOY_MCP_TELEMETRY__TEMPORAL_METRICS_PORT"])
    assert Settings(telemetry={"temporal_metrics_port": env["DEPLOY_MCP_TELEMETRY__TEMPORAL_METRICS_PORT"]}
                    ).telemetry.temporal_metrics_port == 9464
    server = _one(objects, "Deployment", "deploy-mcp-server")["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"]: p["containerPort"] for p in worker["ports"] + server["ports"]}
    scraped = {named[e["port"]] for e in _one(objects, "PodMonitor", "deploy-mcp")["spec"]["podMetricsEndpoints"]}
    policy = _one(objects, "NetworkPolicy", "deploy-mcp-metrics")["spec"]["ingress"][0]
    assert scraped == {p["port"] for p in policy["ports"]}
    dashboard = _one(objects, "ConfigMap", "deploy-mcp-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["deploy-mcp.json"])["uid"] == "deploy-mcp"


def _rule_file(objects: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump(_one(objects, "PrometheusRule", "deploy-mcp")["spec"]))
    return path


def test_promtool_checks_the_rules(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    proc = _promtool("check", "rules", str(_rule_file(objects, tmp_path)), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 rules found" in proc.stdout, proc.stdout


BACKUP_AND_WORKER_TESTS = {
    "rule_files": ["rules.yml"],
    "evaluation_interval": "1m",
    "tests": [
        {
            # 25 h old at the start, one minute older each minute: 26 h after 60 minutes, firing 10 minutes later
            "interval": "1m",
            "input_series": [
                {"series": 'deploy_mcp_backup_age_seconds{pod="deploy-mcp-server-a"}', "values": "90000+60x120"},
                {"series": 'up{container="worker", endpoint="health", pod="deploy-mcp-worker-a"}',
                 "values": "1x30 0x60"},
            ],
            "alert_rule_test": [
                {"eval_time": "50m", "alertname": "DeployMcpBackupTooOld", "exp_alerts": []},
                {"eval_time": "65m", "alertname": "DeployMcpBackupTooOld", "exp_alerts": []},
                {"eval_time": "75m", "alertname": "DeployMcpBackupTooOld", "exp_alerts": [
                    {"exp_labels": {"severity": "critical"},
                     "exp_annotations": {
                         "summary": "The last Plane A backup is 1d 2h 15m 0s old",
                         "description": "No successful `deploy-mcp backup create` for more than 26 hours (or none "
                                        "ever). Check the CronJob deploy-mcp-backup and `deploy-mcp backup list`."}}]},
                {"eval_time": "20m", "alertname": "DeployMcpWorkerDown", "exp_alerts": []},
                {"eval_time": "40m", "alertname": "DeployMcpWorkerDown", "exp_alerts": [
                    {"exp_labels": {"severity": "critical"}, "exp_annotations": {
                        "summary": "No deploy-mcp worker is up",
                        "description": "No worker pod answered /metrics on its health port for 5 minutes. "
                                       "Workflows queue up in Temporal and run once a worker polls again. Check "
                                       "`kubectl -n deploy-mcp-system get pods` and the worker logs."}}]},
            ],
        },
    ],
}


def test_promtool_unit_tests_the_backup_and_worker_alerts(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    _rule_file(objects, tmp_path)
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(BACKUP_AND_WORKER_TESTS))
    proc = _promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
                "bool", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: its identifiers once strings, label matchers, ranges and
    grouping clauses are gone, less functions (an identifier before `(`) and keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", expr):
        if m.group(2) is None and m.group(1).lower() not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def test_metric_names_reads_selectors_only() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (tool, le) (rate(x_bucket{a="b(c)"}[5m])))') == {"x_bucket"}
    assert metric_names("max(a) > 26 * 3600 and on(pod) b_total") == {"a", "b_total"}


def exported() -> set[str]:
    """The sample names this code's metrics have once observed (a labelled metric shows none before its first
    use, so the names come from each family's type), the process collector's, and Prometheus' own `up`."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    names = {"up"}
    family: Metric
    for family in REGISTRY.collect():
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
        names |= {s.name for s in family.samples}
    return names


def test_rules_and_dashboard_query_only_exported_metrics(objects: list[dict[str, Any]]) -> None:
    groups = _one(objects, "PrometheusRule", "deploy-mcp")["spec"]["groups"]
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    dashboard = json.loads((COMPONENT / "dashboard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    have = exported()
    assert {"deploy_mcp_tool_calls_total", "deploy_mcp_workflow_runs_total", "deploy_mcp_backup_age_seconds",
            "deploy_mcp_reconcile_repairs_total", "deploy_mcp_build_duration_seconds_bucket"} <= have
    for expr in exprs:
        unknown = metric_names(expr) - have
        assert not unknown, f"{expr!r} queries {sorted(unknown)}, which nothing exports"
