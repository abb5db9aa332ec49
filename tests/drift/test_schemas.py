"""The JSON Schemas shipped in drift/schemas against the decoders and docs/events.md."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema  # the dev extra installs it: missing, the suite fails rather than skips
import orjson
import pytest

from drift import demo
from drift.events import Decoder, DeadLetter, InferenceEvent, RawMessage
from drift.feature_events import FeatureDecoder, FeatureEvent, is_feature_message
from drift.labels.events import LabelDecoder, LabelEvent, LabelSpec
from drift.schemas import FILES, schema, schema_text


DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
LATER = datetime(2030, 1, 1, tzinfo=timezone.utc)  # the demo's events are not in the future


def validator(kind: str) -> Any:
    document = schema(kind)
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


def _doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_schemas_are_valid_json_schema_and_shipped_as_package_data() -> None:
    for kind, name in FILES.items():
        validator(kind)
        assert (Path(__file__).resolve().parents[2] / "drift" / "schemas" / name).read_text() == schema_text(kind)
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"schemas/*.json"' in pyproject


def test_every_demo_event_the_decoders_accept_validates() -> None:
    config = demo.config_text()
    models = frozenset(re.findall(r"^  - name: (\S+)$", config, flags=re.M))
    decode = Decoder(models, now=lambda: LATER, embeddings={demo.DOC_MODEL: ("embedding", demo.DOC_DIM)})
    decode_feature = FeatureDecoder(now=lambda: LATER)
    inference, feature = validator("inference"), validator("feature")
    n_inference = n_feature = 0
    for offset, line in enumerate(demo.events().lines):
        raw = RawMessage(line, "file:events.jsonl", 0, offset)
        if is_feature_message(raw, None):
            if isinstance(decode_feature(raw), FeatureEvent):
                feature.validate(orjson.loads(line))
                n_feature += 1
        elif isinstance(decode(raw), InferenceEvent):
            inference.validate(orjson.loads(line))
            n_inference += 1
    assert n_inference > 5000 and n_feature > 100


def test_the_documented_examples_validate() -> None:
    blocks = [orjson.loads(block) for block in _doc_blocks("json")]
    inference = [b for b in blocks if "model" in b and "label" not in b]
    feature = [b for b in blocks if "feature_set" in b]
    label = [b for b in blocks if "label" in b]
    assert len(inference) == 1 and len(feature) == 1 and len(label) == 1
    validator("inference").validate(inference[0])
    validator("feature").validate(feature[0])
    validator("label").validate(label[0])
    decode_label = LabelDecoder({"credit-risk": LabelSpec("binary")}, frozenset({"credit-risk"}), now=lambda: LATER)
    assert isinstance(decode_label(RawMessage(orjson.dumps(label[0]), "t", 0, 0)), LabelEvent)
    decode = Decoder(frozenset({"credit-risk"}), now=lambda: LATER)
    assert isinstance(decode(RawMessage(orjson.dumps(inference[0]), "t", 0, 0)), InferenceEvent)
    assert isinstance(FeatureDecoder(now=lambda: LATER)(RawMessage(orjson.dumps(feature[0]), "t", 0, 0)), FeatureEvent)


def test_the_documented_refused_examples_are_refused_by_schema_and_decoder() -> None:
    [block] = _doc_blocks("jsonl")
    lines = [line.encode() for line in block.splitlines() if line.strip()]
    assert len(lines) >= 10
    inference = validator("inference")
    decode = Decoder(frozenset({"credit-risk"}), now=lambda: LATER, embeddings={"credit-risk": ("embedding", 1)})
    for line in lines:
        assert not inference.is_valid(orjson.loads(line)), line
        assert isinstance(decode(RawMessage(line, "t", 0, 0)), DeadLetter), line


@pytest.mark.parametrize(
    ("kind", "event"),
    [
        ("inference", {"ts": 1764237600000, "model": "m", "features": {}, "event_id": 7, "segment": None}),
        ("inference", {"ts": "2026-11-27T10:00:00+01:00", "model": "m", "features": {"a": None, "b": True},
                       "embedding": {"dtype": "float32", "b64": "AACAPw=="}, "extra": [1]}),
        ("feature", {"ts": 1764237600000, "feature_set": 3, "entity_id": "c", "values": {}, "source": "online"}),
    ],
)
def test_accepted_forms_validate(kind: str, event: dict[str, Any]) -> None:
    validator(kind).validate(event)


@pytest.mark.parametrize(
    "event",
    [
        {"ts": "2026-11-02T07:00:00Z", "feature_set": "", "entity_id": "c", "values": {}},
        {"ts": "2026-11-02T07:00:00Z", "feature_set": "p", "entity_id": "c", "values": {}, "source": "cache"},
        {"ts": "2026-11-02T07:00:00Z", "feature_set": "p", "entity_id": "c", "values": {"a": [1]}},
        {"ts": "2026-11-02T07:00:00Z", "feature_set": "p", "entity_id": "c"},
    ],
)
def test_refused_feature_events_are_refused_by_schema_and_decoder(event: dict[str, Any]) -> None:
    assert not validator("feature").is_valid(event)
    decoded = FeatureDecoder(now=lambda: LATER)(RawMessage(orjson.dumps(event), "t", 0, 0))
    assert isinstance(decoded, DeadLetter)
