"""Checks of the files a config names, made by ``drift validate``: each model's reference
Parquet (columns and types of the features, prediction fields and embedding) and the
schema files of the wire format.
"""

from __future__ import annotations

from typing import Any

from detectors.embedding import EmbeddingConfig
from detectors.score import ScoreConfig
from drift.config.root import Config


def _arrow_kind(kind: Any, feature: str) -> str | None:
    """Why an Arrow column type cannot hold a ``feature`` (numeric or categorical) feature, or None."""
    import pyarrow as pa

    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    if feature == "numeric":
        return None if numeric else "an integer, floating-point or boolean column"
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    ok = text or pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_dictionary(kind)
    return None if ok else "a string, integer, boolean or dictionary column"


def _schema_file_problems(config: Config) -> list[tuple[tuple[int | str, ...], str]]:
    """Each schema file of ``events.schemas.files`` exists and is a schema of ``events.format``."""
    from drift.wire import FileSchemas, SchemaError

    schemas = config.events.schemas
    problems: list[tuple[tuple[int | str, ...], str]] = []
    for key, file in (schemas.files if schemas is not None else {}).items():
        try:
            FileSchemas({int(key): config.resolve(file)}, "avro" if config.events.format == "avro" else "protobuf")
        except SchemaError as exc:
            problems.append((("events", "schemas", "files", key), str(exc).split(": ", 1)[1]))
    return problems


def _reference_problems(config: Config) -> list[tuple[tuple[int | str, ...], str]]:
    """What ``drift validate`` can know of each model's reference Parquet from its schema alone.

    The file exists and is Parquet; every feature (and every prediction column a
    ``score`` detector profiles, and the ``embedding`` field) is a column, top level
    or a field of a ``features`` struct as in :func:`connectors.reference.read_columns`,
    of a type that can hold it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    problems: list[tuple[tuple[int | str, ...], str]] = []
    for i, model in enumerate(config.models):
        if model.reference is None:
            continue
        file = config.resolve(model.reference.parquet)
        try:
            schema = pq.read_schema(file)
        except FileNotFoundError:
            problems.append((("models", i, "reference", "parquet"), f"reference file not found: {file}"))
            continue
        except (OSError, pa.ArrowException) as exc:
            problems.append((("models", i, "reference", "parquet"), f"cannot read reference Parquet {file}: {exc}"))
            continue
        columns = {field.name: field.type for field in schema}
        nested = columns.get("features")
        if nested is not None and pa.types.is_struct(nested):
            for j in range(nested.num_fields):
                columns.setdefault(nested.field(j).name, nested.field(j).type)

        def check(loc: tuple[int | str, ...], column: str, kind: str, what: str) -> None:
            found = columns.get(column)
            if found is None:
                problems.append((loc, f"{what} has no column {column!r} (top level or in a 'features' struct) in "
                                      f"the reference {file}; columns: {sorted(columns)}"))
                return
            needs = _arrow_kind(found, kind)
            if needs is not None:
                problems.append((loc, f"a {kind} {what} needs {needs} in the reference; column {column!r} of "
                                      f"{file.name} is {found}"))

        for name, spec in model.features.items():
            check(("models", i, "features", name), name, spec.type, "feature")
        for j, (detector, settings) in enumerate(model.detector_configs()):
            if isinstance(settings, ScoreConfig):
                for field, column in settings.reference_columns().items():
                    check(("models", i, "detectors", j, detector), column.column, column.type,
                          f"prediction field {field!r}")
            elif isinstance(settings, EmbeddingConfig):
                loc = ("models", i, "detectors", j, detector, "field")
                kind = columns.get(settings.field) if settings.field in schema.names else None
                if kind is None:
                    problems.append((loc, f"the reference {file} has no embedding column {settings.field!r}"))
                elif not ((pa.types.is_list(kind) or pa.types.is_large_list(kind)
                           or pa.types.is_fixed_size_list(kind))
                          and (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type))):
                    problems.append((loc, f"embedding column {settings.field!r} of {file.name} must be a "
                                          f"(fixed-size) list of numbers; got {kind}"))
    return problems
