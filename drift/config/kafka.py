"""``kafka:``: the brokers, topics and producer settings of the stream job."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from drift.config.base import Strict
from drift.duration import Duration, format_duration


class KafkaConfig(Strict):
    """Where the stream job reads events and writes its outputs."""

    bootstrap: str = "127.0.0.1:9092"
    group_id: str = "drift"
    inference_topic: str = "inference-events"
    feature_topic: str = "feature-events"
    labels_topic: str = "labels"
    """Label events (delayed ground truth); read only when some model has ``labels:``."""
    findings_topic: str = "drift-findings"
    tickets_topic: str = "drift-tickets"
    retrain_topic: str = "drift-retrain-requests"
    dlq_topic: str = "drift-dlq"
    halt_topic: str = "drift-halts"
    """Halt signals of canary comparisons (``models[].canary``), for rollout controllers."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    batch_size: int = Field(default=1000, ge=1)
    dlq_max_value_bytes: int = Field(default=64 * 1024, ge=64, le=900_000)
    """A dead letter's value is cut to this many characters (as written in the DLQ record);
    the record keeps the original size and SHA-256. Below the broker's 1 MB default."""
    spill_dir: str = "drift-spill"
    """Output messages the broker did not take after ``produce_attempts`` go here as JSON
    lines (relative to the config file)."""
    produce_attempts: int = Field(default=3, ge=1, le=20)
    """Tries of an output message (its first send included) before it is spilled."""
    produce_backoff: Duration = timedelta(seconds=1)
    """Wait before the second try; doubled before each next one, at most 30s."""
    connect_timeout: Duration = timedelta(seconds=5)
    """Bound of every metadata request of the job (broker reachable, partitions of a topic)."""

    @field_validator("produce_backoff", "connect_timeout")
    @classmethod
    def _positive_duration(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be a positive duration; got {format_duration(value)!r}")
        return value

    def client_settings(self) -> dict[str, str]:
        """librdkafka settings shared by the consumer and producers."""
        settings: dict[str, str] = {"security.protocol": self.security_protocol}
        if self.sasl_mechanism is not None:
            settings["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            settings["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            settings["sasl.password"] = self.sasl_password.get_secret_value()
        return settings
