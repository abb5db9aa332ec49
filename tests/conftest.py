"""Shared pytest fixtures for the drift test suite."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# ==========================================================================
# Kafka: one real single-node broker per test session
# ==========================================================================
#
# Tests marked ``kafka`` talk to a real Apache Kafka broker. Set
# KAFKA_BOOTSTRAP=host:port to reuse a running one (e.g. from
# ``python deploy/kafka/broker.py run``); otherwise a fresh broker is started
# from the cached Maven jars for the session. A broker that cannot be reached
# or started fails the tests that need it: skipping would hide a broken setup.
# This section defines the ``pytest_collection_finish`` hook; a second
# definition elsewhere in this file would replace it, so extend this one.


def _load_broker_module() -> ModuleType:
    """Load deploy/kafka/broker.py by path; ``deploy`` is tooling, not a package."""
    name = "drift_deploy_kafka_broker"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO_ROOT / "deploy" / "kafka" / "broker.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the Kafka broker helper from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kafka_broker = _load_broker_module()
_KAFKA_JARS_PROBLEM = pytest.StashKey[str]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fetch the broker jars before any test runs when a selected test needs Kafka.

    A first Maven download can take minutes; done here it is not charged to
    the per-test timeout of whichever Kafka test happens to run first. A
    failure is kept and reported by ``kafka_bootstrap``, so only the tests
    that need Kafka fail.
    """
    if os.environ.get("KAFKA_BOOTSTRAP", "").strip():
        return
    if not any({"kafka_bootstrap", "kafka_small_messages"} & set(getattr(item, "fixturenames", ()))
               for item in session.items):
        return
    try:
        kafka_broker.ensure_jars()
    except kafka_broker.BrokerError as exc:
        session.config.stash[_KAFKA_JARS_PROBLEM] = str(exc)


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """``bootstrap.servers`` of a Kafka broker that answers metadata, for the whole session."""
    external = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    # pytest.fail is called outside the except blocks so the report shows the
    # reason once, not twice as a chained exception.
    problem = request.config.stash.get(_KAFKA_JARS_PROBLEM, "")
    if problem:
        pytest.fail(f"could not fetch the Kafka broker jars for the tests: {problem}", pytrace=False)
    if external:
        try:
            kafka_broker.check_bootstrap(external, timeout=15)
        except kafka_broker.BrokerError as exc:
            problem = f"KAFKA_BOOTSTRAP={external} is set but unusable: {exc}"
        if problem:
            pytest.fail(problem, pytrace=False)
        yield external
        return

    try:
        broker = kafka_broker.KafkaBroker(kafka_broker.ensure_jars()).start(timeout=120)
    except kafka_broker.BrokerError as exc:
        problem = f"could not start the Kafka broker for the tests: {exc}"
    if problem:
        pytest.fail(problem, pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka_topics(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Factory ``new_topic(prefix="test", partitions=1) -> str`` for topics owned by one test.

    Names get a random suffix so tests never see each other's messages, even
    on a long-lived broker; the topics are deleted (best effort) afterwards.
    """
    created: list[str] = []

    def new_topic(prefix: str = "test", partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        kafka_broker.create_topics(kafka_bootstrap, [name], partitions=partitions)
        created.append(name)
        return name

    yield new_topic

    if created:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.delete_topics(created, operation_timeout=10).values():
            # Cleanup must not turn a passing test into an error.
            with contextlib.suppress(Exception):
                future.result(timeout=15)


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> Callable[[str], list[dict[str, Any]]]:
    """``read_topic(name)``: every JSON message of a one-partition topic, up to its high watermark."""
    import json

    from confluent_kafka import Consumer, TopicPartition

    def read(topic: str) -> list[dict[str, Any]]:
        consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"check-{topic}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            consumer.assign([TopicPartition(topic, 0, 0)])
            out: list[dict[str, Any]] = []
            while len(out) < high:
                message = consumer.poll(10)
                assert message is not None, f"timed out reading {topic}: {len(out)} of {high}"
                assert message.error() is None, message.error()
                out.append(json.loads(message.value()))
            return out
        finally:
            consumer.close()

    return read


SMALL_MESSAGE_MAX_BYTES = 100_000
"""``message.max.bytes`` of the ``kafka_small_messages`` broker (Kafka's default is about 1 MB)."""


@pytest.fixture(scope="session")
def kafka_small_messages(request: pytest.FixtureRequest) -> Iterator[str]:
    """``bootstrap.servers`` of a second broker whose topics refuse messages above 100 kB.

    For the sinks' handling of refused messages: a topic that should take larger
    ones is created with ``max.message.bytes`` (``create_topics(..., config=...)``).
    """
    problem = request.config.stash.get(_KAFKA_JARS_PROBLEM, "")
    if problem:
        pytest.fail(f"could not fetch the Kafka broker jars for the tests: {problem}", pytrace=False)
    try:
        broker = kafka_broker.KafkaBroker(
            kafka_broker.ensure_jars(), properties={"message.max.bytes": str(SMALL_MESSAGE_MAX_BYTES)},
        ).start(timeout=120)
    except kafka_broker.BrokerError as exc:
        problem = f"could not start the small-message Kafka broker for the tests: {exc}"
    if problem:
        pytest.fail(problem, pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


# ==========================================================================
# End of Kafka section
# ==========================================================================


# ==========================================================================
# Benchmarks: the smoke tests in tests/bench run a bench/ script as by hand
# ==========================================================================


def _run_bench(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> dict[str, Any]:
    """``python bench/<script> args...`` from the repository root; its one JSON document.

    A non-zero exit fails the test with the end of the script's stderr.
    """
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / script), *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, env=env, check=False,
    )
    assert done.returncode == 0, f"bench/{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@pytest.fixture
def run_bench() -> Callable[..., dict[str, Any]]:
    return _run_bench
