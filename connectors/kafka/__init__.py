"""Kafka: the inference source, the JSON output topics, and the job's view of the broker.

The consumer lag of every partition read is exported by Bytewax's own source
as the gauge ``bytewax_kafka_consumer_lag{step_id, topic, partition}`` in the
default Prometheus registry, so ``/metrics`` serves it with drift's metrics.

Every client the job makes logs through the Python logger ``drift.kafka``
(librdkafka's own lines included), where one line of a kind passes at most once
per :data:`LOG_REPEAT_SECONDS`; every metadata request has a timeout; and an
output message the broker refuses is retried, then spilled to a local file: a
sink never raises into the dataflow.

Modules: :mod:`connectors.kafka.clients` (logging, client settings, metadata and the broker
watch), :mod:`connectors.kafka.source` (the inference source) and
:mod:`connectors.kafka.sink` (the JSON output topics and their spill files).
"""

from __future__ import annotations

from connectors.kafka.clients import (
    KAFKA_LOGGER,
    LOG_REPEAT_SECONDS,
    KafkaUnreachable,
    KafkaWatch,
    MetadataClient,
    RateLimitFilter,
    client_config,
    kafka_logger,
)
from connectors.kafka.sink import (
    MAX_BACKOFF_SECONDS,
    PRODUCER_SETTINGS,
    STOP_FLUSH_SECONDS,
    JsonTopicSink,
    SpillFile,
    spill_undelivered,
)
from connectors.kafka.source import LAG_METRIC, InferenceSource, inference_source, to_raw

__all__ = [
    "KAFKA_LOGGER",
    "LAG_METRIC",
    "LOG_REPEAT_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "PRODUCER_SETTINGS",
    "STOP_FLUSH_SECONDS",
    "InferenceSource",
    "JsonTopicSink",
    "KafkaUnreachable",
    "KafkaWatch",
    "MetadataClient",
    "RateLimitFilter",
    "SpillFile",
    "client_config",
    "inference_source",
    "kafka_logger",
    "spill_undelivered",
    "to_raw",
]
