"""deploy/: Kubernetes manifests, Prometheus scrape config, Grafana dashboard, Dockerfile.

The manifests are validated against the Kubernetes OpenAPI schemas shipped in
the ``kubernetes-validate`` wheel (no network: sockets are refused while it
runs). promtool comes from the Debian package ``prometheus`` (deploy/test-deps.sh).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
MANIFESTS = ["configmap.yaml", "service.yaml", "statefulset.yaml", "secret.example.yaml"]
DASHBOARD = ROOT / "deploy" / "grafana" / "drift.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
LAG_METRIC = "bytewax_kafka_consumer_lag"


def _resources(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if doc]


def _one(name: str, kind: str) -> dict[str, Any]:
    found = [r for r in _resources(name) if r["kind"] == kind]
    assert len(found) == 1, f"{name} should hold one {kind}"
    return found[0]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the manifest validator tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_matches_the_kubernetes_schema(name: str, no_network: None) -> None:
    import kubernetes_validate

    resources = _resources(name)
    assert resources
    for resource in resources:
        # strict: unknown fields (a misspelt key) are errors too.
        kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)


def test_the_validator_rejects_a_misspelt_field(no_network: None) -> None:
    import kubernetes_validate

    broken = _one("statefulset.yaml", "StatefulSet")
    broken["spec"]["replicaz"] = broken["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(m for m in MANIFESTS if not m.startswith("secret"))


def test_statefulset_service_and_config_fit_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from drift.config import load_config

    statefulset = _one("statefulset.yaml", "StatefulSet")
    service = _one("service.yaml", "Service")
    configmap = _one("configmap.yaml", "ConfigMap")
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}

    # Headless, and resolvable before ready: the processes find each other first.
    assert spec["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert spec["podManagementPolicy"] == "Parallel"
    assert env["REPLICAS"]["value"] == str(spec["replicas"])
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())

    # Secrets come from the Secret, never from the ConfigMap.
    secret = _one("secret.example.yaml", "Secret")
    for name in ("KAFKA_SASL_PASSWORD", "PGPASSWORD"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]

    # Probes on the metrics port, which the config serves on all interfaces.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert {p["name"] for p in service["spec"]["ports"]} == set(ports)
    for resource in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][resource])

    # The embedded config is a valid drift config with the paths the pod mounts.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "drift.yaml").write_text(configmap["data"]["drift.yaml"], encoding="utf-8")
    for name in ("KAFKA_BOOTSTRAP", "KAFKA_SASL_PASSWORD", "PGPASSWORD"):
        monkeypatch.setenv(name, "x")
    config = load_config(config_dir / "drift.yaml")
    assert config.metrics.port == ports["metrics"] and config.metrics.host == "0.0.0.0"
    assert config.baselines.dir == mounts["baselines"]
    assert config.tickets.store.startswith("postgresql://")
    script = container["args"][0]
    assert f"--config {mounts['config']}/drift.yaml" in script
    assert f"--recovery-dir {mounts['recovery']}/recovery" in script
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    assert "recovery" in claims


def test_statefulset_command_gives_each_pod_its_id_and_every_address(tmp_path: Path) -> None:
    container = _one("statefulset.yaml", "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    fake = tmp_path / "drift"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n', encoding="utf-8")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "HOSTNAME": "drift-2", "REPLICAS": "3",
           "WORKERS": "4", "POD_NAMESPACE": "ml", "SNAPSHOT_INTERVAL": "10s"}
    done = subprocess.run([*container["command"], container["args"][0]], env=env, capture_output=True,
                          text=True, timeout=30, check=True)
    args = done.stdout.splitlines()
    option = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert args[0] == "run"
    assert option["--process-id"] == "2" and option["--processes"] == "3" and option["--workers"] == "4"
    assert option["--addresses"] == ";".join(f"drift-{i}.drift.ml.svc.cluster.local:2101" for i in range(3))


def test_dockerfile_copies_what_exists_and_runs_drift() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which is not in the repository"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^postgres = ", pyproject, flags=re.M), "the image installs drift[postgres]"
    assert 'ENTRYPOINT ["drift"]' in text and "USER 10001" in text


def _promtool() -> str:
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed (Debian package 'prometheus', or set PROMTOOL)", pytrace=False)
    return found


def test_prometheus_scrape_config_is_valid() -> None:
    done = subprocess.run([_promtool(), "check", "config", str(PROMETHEUS)], capture_output=True, text=True,
                          timeout=120, cwd=PROMETHEUS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    # alerts.yml (DriftJobDown) selects up{job="drift"}.
    assert [job["job_name"] for job in config["scrape_configs"]] == ["drift"]


def _known_metrics() -> set[str]:
    """Names Prometheus sees for the metrics defined in drift/metrics.py, plus Bytewax's lag gauge."""
    from prometheus_client import CollectorRegistry

    import drift.metrics

    registry = CollectorRegistry()
    names = set()
    for value in vars(drift.metrics).values():
        describe = getattr(value, "describe", None)
        if describe is None or not hasattr(value, "_name"):
            continue
        registry.register(value)
    # The per-cohort gauges are created from the config (drift.metrics.configure).
    for collector in drift.metrics.cohort_metrics().collectors():
        registry.register(collector)
    # The ticket-state gauges are one collector, read from the ticket store.
    registry.register(drift.metrics.TicketState(registry=None))
    # So are the ticket timing histograms.
    registry.register(drift.metrics.TicketTimings(registry=None))
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                    "summary": ["_sum", "_count"]}.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names | {LAG_METRIC}


def _referenced(expression: str) -> set[str]:
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    return set(re.findall(r"\b((?:drift|bytewax)_[a-z0-9_]+)\b", without_strings))


def test_dashboard_is_valid_json_and_uses_only_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and dashboard["uid"] and dashboard["title"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    known = _known_metrics()
    used: set[str] = set()
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            used |= _referenced(target["expr"])
    unknown = used - known
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"
    # What the runbook promises to show: drift, skew, quality, throughput, lag and tickets.
    assert {"drift_psi", "drift_findings_total", "drift_events_total", LAG_METRIC,
            "drift_tickets_total", "drift_dlq_total"} <= used
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("psi", "skew", "quality", "lag", "ticket", "events"):
        assert topic in titles


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Every panel query, with its variables filled in, passes promtool's PromQL parser."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"] for v in dashboard["templating"]["list"] if v["type"] == "query"}
    rules = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in variables:
                expr = expr.replace(f"${name}", ".*")
            assert "$" not in expr, f"panel {panel['title']!r} uses an undefined variable: {target['expr']}"
            rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    done = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_use_only_metrics_that_exist() -> None:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    used = {name for group in rules["groups"] for rule in group["rules"] for name in _referenced(rule["expr"])}
    assert used and not used - _known_metrics(), sorted(used - _known_metrics())


def _configured_cohort_labels() -> tuple[str, ...]:
    """The Prometheus cohort labels of the configs we ship: the cluster's ConfigMap and the demo."""
    from drift.metrics import cohort_label_names

    configmap = _one("configmap.yaml", "ConfigMap")
    cohorts: dict[str, list[str]] = {}
    for text in [*configmap["data"].values(), (ROOT / "drift" / "demo" / "drift.yaml").read_text(encoding="utf-8")]:
        document = yaml.safe_load(text)
        if isinstance(document, dict):
            for index, model in enumerate(document.get("models", [])):
                cohorts[f"{model['name']}#{index}#{len(cohorts)}"] = list(model.get("cohort", []))
    assert cohorts
    return cohort_label_names(cohorts)


def test_dashboard_has_a_variable_for_every_cohort_label_and_per_cohort_panels_use_them() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "query"}
    labels = _configured_cohort_labels()
    assert {"model_version", "tenant", "region"} <= set(labels)
    for label in labels:
        assert label in variables, f"the dashboard has no variable for the cohort label {label!r}"
        if label != "model":
            assert variables[label]["query"]["query"].endswith(f", {label})")
            assert variables[label]["multi"] and variables[label]["includeAll"]
    per_cohort = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])
                  if {"drift_psi", "drift_detector_value"} & _referenced(t["expr"])]
    assert per_cohort
    for title, expr in per_cohort:
        for label in labels:
            assert f'{label}=~"${label}"' in expr, f"{title!r} does not filter on ${label}: {expr}"


def _thresholds(panel: dict[str, Any]) -> list[float]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [step["value"] for step in steps if step["value"] is not None]


def test_psi_panels_show_the_warn_and_alert_thresholds() -> None:
    from detectors.psi import PsiConfig

    defaults = PsiConfig()
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    psi_panels = [p for p in dashboard["panels"]
                  if any("drift_psi" in _referenced(t["expr"]) for t in p.get("targets", []))]
    assert len(psi_panels) >= 2
    for panel in psi_panels:
        assert _thresholds(panel) == [defaults.warn, defaults.alert], panel["title"]
    line_charts = [p for p in psi_panels if p["type"] == "timeseries"]
    assert line_charts and all(p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
                               for p in line_charts)


def test_dashboard_shows_score_embedding_open_tickets_and_the_review_queue() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in dashboard["panels"]}

    def panel_with(*needles: str) -> str:
        found = [title for title, expr in exprs.items() if all(n in expr for n in needles)]
        assert found, f"no panel queries {needles}"
        return found[0]

    panel_with("drift_detector_value", 'detector=~"score\\\\..*"')
    panel_with("drift_detector_value", 'detector=~"embedding.*"')
    panel_with("drift_tickets_open")
    panel_with("drift_review_queue")
    table = panel_with("drift_ticket_info")
    assert "cohort" in exprs[table] and "feature" in exprs[table]
