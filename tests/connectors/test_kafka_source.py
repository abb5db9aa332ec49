"""The inference source on the real broker: a poll becomes RawMessages, offsets resume, EOF ends."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from connectors.kafka import inference_source, to_raw
from drift.events import RawMessage, raw_messages

pytestmark = pytest.mark.kafka


def _read_all(bootstrap: str, topic: str, part: str, resume: int | None, batch_size: int) -> tuple[list[RawMessage], int | None]:
    source = inference_source(bootstrap, topic, {}, tail=False, batch_size=batch_size)
    partition = source.build_part("read_inference", part, resume)
    out: list[RawMessage] = []
    try:
        for _ in range(100_000):
            for batch in partition.next_batch():
                assert isinstance(batch, list)
                out.extend(batch)
    except StopIteration:
        pass
    finally:
        snapshot = partition.snapshot()
        partition.close()
    return out, snapshot


def test_every_message_arrives_as_a_raw_message_with_its_position(
    kafka_bootstrap: str, kafka_topics: Callable[..., str],
) -> None:
    topic = kafka_topics("source", partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    sent: dict[int, list[tuple[bytes | None, bytes | None]]] = {0: [], 1: []}
    for i in range(300):
        value = None if i == 17 else f'{{"i": {i}}}'.encode()  # a tombstone too
        key = None if i % 5 == 0 else f"k{i}".encode()
        producer.produce(topic, value=value, key=key, partition=i % 2)
        sent[i % 2].append((value, key))
    assert producer.flush(30) == 0
    source = inference_source(kafka_bootstrap, topic, {}, tail=False)
    parts = sorted(source.list_parts())
    assert len(parts) == 2
    for part in parts:
        index = int(part.split("-", 1)[0])
        raws, snapshot = _read_all(kafka_bootstrap, topic, part, None, batch_size=64)
        assert raws == [RawMessage(value, topic, index, offset, key) for offset, (value, key) in enumerate(sent[index])]
        assert all(type(raw) is RawMessage and to_raw(raw) is raw for raw in raws)
        assert snapshot == len(sent[index])
        # Resumed from a snapshot in the middle: the rest, once.
        rest, end = _read_all(kafka_bootstrap, topic, part, 100, batch_size=1000)
        assert [raw.offset for raw in rest] == list(range(100, len(sent[index]))) and end == snapshot


def test_raw_messages_equal_the_dataclass() -> None:
    made = raw_messages([b"a", None, b"c"], "t", 2, [5, 6, 7], [None, b"k", b"k2"])
    assert made == [RawMessage(b"a", "t", 2, 5), RawMessage(None, "t", 2, 6, b"k"), RawMessage(b"c", "t", 2, 7, b"k2")]
    assert [hash(m) for m in made] == [hash(RawMessage(m.value, "t", 2, m.offset, m.key)) for m in made]
    with pytest.raises(ValueError, match="3 values, 2 offsets and 3 keys"):
        raw_messages([b"a", b"b", b"c"], "t", 0, [1, 2], [None, None, None])
