"""Typed configuration: the YAML that data scientists write, validated once at load.

Every model is frozen and forbids unknown keys, so a misspelt key is an error that
names its YAML path, not a silently ignored setting. ``load_config`` reads the
file with ``yaml.SafeLoader`` only, expands ``${VAR}`` / ``${VAR:-default}``
references from the environment (the only way secrets enter) and reports every
problem at once, each with file, line, column and path::

    drift.yaml:14:9 models[0].detectors[0].psi.bins: must be >= 2; got 1

The package's modules; every public name is also importable from ``drift.config``:

- :mod:`drift.config.root`: the whole file (:class:`Config`), ``metrics:``, ``baselines:``;
- :mod:`drift.config.kafka`, :mod:`drift.config.events`: ``kafka:`` and ``events:``;
- :mod:`drift.config.models`, :mod:`drift.config.baseline`: ``models:`` and their baselines;
- :mod:`drift.config.tickets`: ``routing:``, ``tickets:``, ``review:``;
- :mod:`drift.config.base`: :class:`Strict`, the base of every model;
- :mod:`drift.config.loading`: :func:`load_config` and :func:`parse_config`, built on
  :mod:`drift.config.yaml_loader` (bounded safe YAML), :mod:`drift.config.env`
  (``${VAR}`` and secrets), :mod:`drift.config.messages` (error messages) and
  :mod:`drift.config.references` (the reference files ``drift validate`` checks).
"""

from __future__ import annotations

from drift.config.base import Strict
from drift.config.baseline import BaselineConfig, CalendarConfig, Date
from drift.config.env import MAX_SECRET_FILE_BYTES, expand_env
from drift.config.events import EventsConfig, SchemasConfig
from drift.config.kafka import KafkaConfig
from drift.config.loading import load_config, parse_config
from drift.config.messages import MAX_SHOWN
from drift.config.models import (
    COHORT_LABELS,
    DETECTOR_NAMES,
    DetectorEntry,
    EmbeddingEntry,
    FeatureSpec,
    FreshnessEntry,
    ImpactConfig,
    ModelConfig,
    PolicyConfig,
    PsiEntry,
    QualityEntry,
    ReferenceConfig,
    ScoreEntry,
    SkewEntry,
    WindowConfig,
)
from drift.config.root import BaselinesConfig, Config, EngineConfig, MetricsConfig
from drift.config.tickets import (
    ReviewConfig,
    ReviewerConfig,
    ReviewRole,
    RoutingRule,
    RoutingWhen,
    TicketsConfig,
    WebhookConfig,
)
from drift.config.yaml_loader import MAX_DEPTH, MAX_FILE_BYTES, MAX_INT_DIGITS, MAX_NODES, yaml_scalar
from drift.errors import ConfigError

__all__ = [
    "COHORT_LABELS",
    "DETECTOR_NAMES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_INT_DIGITS",
    "MAX_NODES",
    "MAX_SECRET_FILE_BYTES",
    "MAX_SHOWN",
    "BaselineConfig",
    "BaselinesConfig",
    "CalendarConfig",
    "Config",
    "ConfigError",
    "Date",
    "DetectorEntry",
    "EmbeddingEntry",
    "EventsConfig",
    "FeatureSpec",
    "FreshnessEntry",
    "ImpactConfig",
    "KafkaConfig",
    "EngineConfig",
    "MetricsConfig",
    "ModelConfig",
    "PolicyConfig",
    "PsiEntry",
    "QualityEntry",
    "ReferenceConfig",
    "ReviewConfig",
    "ReviewRole",
    "ReviewerConfig",
    "RoutingRule",
    "RoutingWhen",
    "SchemasConfig",
    "ScoreEntry",
    "SkewEntry",
    "Strict",
    "TicketsConfig",
    "WebhookConfig",
    "WindowConfig",
    "expand_env",
    "load_config",
    "parse_config",
    "yaml_scalar",
]
