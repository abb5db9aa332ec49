"""Per-cohort Prometheus metrics: label names from the config, the cohort cap, the overflow count.

Values are read back from prometheus_client's text exposition of a registry, the
format Prometheus scrapes.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from drift import metrics
from drift.config import Config
from drift.errors import ConfigError
from drift.findings import Cohort, Finding, Severity, Window
from drift.metrics import OTHER, CohortMetrics, cohort_label_names

START = datetime(2026, 11, 2, 10, tzinfo=UTC)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (metric, labels), value in samples.items() if metric == name}


def finding(cohort: Cohort, value: float, detector: str = "psi", feature: str | None = "income", *,
            window: int = 0, skipped: str | None = None) -> Finding:
    start = START + timedelta(minutes=5 * window)
    return Finding(
        detector=detector, cohort=cohort, window=Window(start, start + timedelta(minutes=5)), feature=feature,
        value=value, severity=Severity.OK, warn=0.1, alert=0.25, n_current=100, n_reference=1000,
        baseline="reference", skipped=skipped,
    )


def credit(tenant: str, version: str = "v1", channel: str = "web") -> Cohort:
    return Cohort("credit-risk", (("model_version", version), ("tenant", tenant), ("segment.channel", channel)))


MODELS = {"credit-risk": ["model_version", "tenant", "segment.channel"], "fraud": ["region"]}


@pytest.mark.parametrize(("cohorts", "expected"), [
    pytest.param({}, ("model", "model_version"), id="no-models"),
    pytest.param({"m": []}, ("model", "model_version"), id="no-cohort-labels"),
    pytest.param({"m": ["tenant", "model_version"]}, ("model", "model_version", "tenant"), id="version-first"),
    pytest.param(MODELS, ("model", "model_version", "region", "segment_channel", "tenant"), id="union-sorted"),
    pytest.param({"b": ["route"], "a": ["tenant"]}, ("model", "model_version", "route", "tenant"),
                 id="model-order-irrelevant"),
    pytest.param({"m": ["segment.sales-channel", "segment.größe"]},
                 ("model", "model_version", "segment_gr__e", "segment_sales_channel"), id="sanitised"),
    pytest.param({"a": ["segment.a-b"], "b": ["segment.a_b"]}, ("model", "model_version", "segment_a_b"),
                 id="one-name-from-two-models"),
])
def test_label_names_come_from_the_config(cohorts: dict[str, list[str]], expected: tuple[str, ...]) -> None:
    assert cohort_label_names(cohorts) == expected
    # prometheus_client accepts them (it rejects invalid names at creation).
    CohortMetrics(cohorts, registry=CollectorRegistry())


def test_two_labels_of_one_model_with_one_prometheus_name_are_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        cohort_label_names({"a": ["tenant"], "b": ["segment.a-b", "segment.a_b"]})
    assert raised.value.messages == [
        "models[1].cohort: 'segment.a-b' and 'segment.a_b' both become the Prometheus label "
        "'segment_a_b'; rename one of the segments"
    ]


def test_gauges_carry_one_label_per_cohort_label_and_dash_where_a_model_lacks_it() -> None:
    registry = CollectorRegistry()
    cohort_metrics = CohortMetrics(MODELS, max_cohorts=10, registry=registry)
    acme = credit("acme", channel="mobile")
    fraud_eu = Cohort("fraud", (("region", "eu-west-1"),))
    cohort_metrics.record(acme, finding(acme, 0.31))
    cohort_metrics.record(acme, finding(acme, 0.02, "quality.null_rate"))
    cohort_metrics.record(fraud_eu, finding(fraud_eu, 0.4, "embedding", feature=None))
    samples = scrape(registry)
    assert series(samples, "drift_psi") == {
        (("feature", "income"), ("model", "credit-risk"), ("model_version", "v1"), ("region", "-"),
         ("segment_channel", "mobile"), ("tenant", "acme")): 0.31,
    }
    assert series(samples, "drift_detector_value") == {
        (("detector", "quality.null_rate"), ("feature", "income"), ("model", "credit-risk"),
         ("model_version", "v1"), ("region", "-"), ("segment_channel", "mobile"), ("tenant", "acme")): 0.02,
        (("detector", "embedding"), ("feature", "-"), ("model", "fraud"), ("model_version", "-"),
         ("region", "eu-west-1"), ("segment_channel", "-"), ("tenant", "-")): 0.4,
    }


def test_the_last_measured_value_stays_when_a_later_finding_is_skipped() -> None:
    registry = CollectorRegistry()
    cohort_metrics = CohortMetrics(MODELS, registry=registry)
    acme = credit("acme")
    cohort_metrics.record(acme, finding(acme, 0.2, window=0))
    cohort_metrics.record(acme, finding(acme, 0.3, window=1))
    cohort_metrics.record(acme, finding(acme, 0.0, window=2, skipped="too few samples"))
    assert list(series(scrape(registry), "drift_psi").values()) == [0.3]


def test_cohorts_past_max_cohorts_collapse_to_other_and_are_counted() -> None:
    registry = CollectorRegistry()
    cohort_metrics = CohortMetrics(MODELS, max_cohorts=2, registry=registry)
    tenants = ["acme", "globex", "initech", "umbrella"]
    for window in range(3):
        for i, tenant in enumerate(tenants):
            cohort = credit(tenant)
            cohort_metrics.record(cohort, finding(cohort, i + window / 10, window=window))
            cohort_metrics.record(cohort, finding(cohort, i, "quality.null_rate", window=window))
    # Another model has a cap of its own.
    fraud_eu = Cohort("fraud", (("region", "eu-west-1"),))
    cohort_metrics.record(fraud_eu, finding(fraud_eu, 0.5))
    samples = scrape(registry)

    psi = {dict(labels)["tenant"]: (dict(labels), value) for labels, value in series(samples, "drift_psi").items()
           if dict(labels)["model"] == "credit-risk"}
    assert sorted(psi) == sorted(["acme", "globex", OTHER])
    assert psi["acme"][1] == 0.2 and psi["globex"][1] == 1.2
    # Every label the model splits by reads _other; the others stay '-'.
    other_labels, other_value = psi[OTHER]
    assert {k: other_labels[k] for k in ("model_version", "segment_channel", "tenant", "region")} == {
        "model_version": OTHER, "segment_channel": OTHER, "tenant": OTHER, "region": "-"}
    assert other_value == 3.2  # the last value recorded past the cap (umbrella, window 2)
    # Two collapsed cohorts x three windows x (psi + quality): each value counted.
    assert samples[("drift_cohort_overflow_total", (("model", "credit-risk"),))] == 2 * 3 * 2
    assert samples[("drift_cohort_overflow_total", (("model", "fraud"),))] == 0
    assert samples[("drift_cohorts_labelled", (("model", "credit-risk"),))] == 2
    assert samples[("drift_cohorts_labelled", (("model", "fraud"),))] == 1
    assert any(dict(labels)["region"] == "eu-west-1" for labels in series(samples, "drift_psi"))


def test_the_cap_holds_under_concurrent_workers() -> None:
    registry = CollectorRegistry()
    cohort_metrics = CohortMetrics(MODELS, max_cohorts=50, registry=registry)

    def work(offset: int) -> None:
        for i in range(100):
            cohort = credit(f"t{(offset * 37 + i) % 200}")
            cohort_metrics.record(cohort, finding(cohort, 0.1))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples = scrape(registry)
    tenants = {dict(labels)["tenant"] for labels in series(samples, "drift_psi")}
    assert len(tenants - {OTHER}) == 50 and OTHER in tenants
    assert samples[("drift_cohort_overflow_total", (("model", "credit-risk"),))] == 8 * 100 - sum(
        1 for n in range(8) for i in range(100) if f"t{(n * 37 + i) % 200}" in tenants)


def _config(cohort: list[str], max_cohorts: int = 1000) -> Config:
    return Config.model_validate({
        "version": 1,
        "models": [{"name": "credit-risk", "cohort": cohort, "features": {"income": {"type": "numeric"}}}],
        "metrics": {"max_cohorts": max_cohorts},
    })


def test_configure_is_idempotent_and_replaces_gauges_for_other_labels() -> None:
    first = metrics.configure(_config(["tenant", "segment.test_configure"]))
    assert metrics.configure(_config(["tenant", "segment.test_configure"], max_cohorts=1)) is first
    assert first.max_cohorts == 1
    acme, globex = (Cohort("credit-risk", (("tenant", t), ("segment.test_configure", "x"))) for t in ("acme", "globex"))
    metrics.record_finding(acme, finding(acme, 0.3))
    metrics.record_finding(globex, finding(globex, 0.4))
    samples = scrape(REGISTRY)
    assert samples[("drift_psi", (("feature", "income"), ("model", "credit-risk"), ("model_version", "-"),
                                  ("segment_test_configure", "x"), ("tenant", "acme")))] == 0.3
    assert samples[("drift_psi", (("feature", "income"), ("model", "credit-risk"), ("model_version", "-"),
                                  ("segment_test_configure", OTHER), ("tenant", OTHER)))] == 0.4

    second = metrics.configure(_config(["region"]))
    assert second is not first and metrics.cohort_metrics() is second
    assert second.names == ("model", "model_version", "region")
    eu = Cohort("credit-risk", (("region", "eu-west-1"),))
    metrics.record_finding(eu, finding(eu, 0.5))
    psi = series(scrape(REGISTRY), "drift_psi")
    # One drift_psi in the default registry, with the new label names only.
    assert psi == {(("feature", "income"), ("model", "credit-risk"), ("model_version", "-"),
                    ("region", "eu-west-1")): 0.5}
