"""``drift validate`` reads each model's reference Parquet schema: the file exists, and every
feature (score column, embedding field) is a column of a type that can hold it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drift.config import load_config
from drift.errors import ConfigError

CONFIG = """\
version: 1
models:
  - name: credit-risk
    reference: {{parquet: {parquet}}}
    features:
      age: {{type: numeric, range: [18, 120]}}
      country: {{type: categorical}}
{detectors}"""


def reference(path: Path, **columns: pa.Array) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def write(tmp_path: Path, parquet: str = "ref.parquet", detectors: str = "") -> Path:
    path = tmp_path / "drift.yaml"
    path.write_text(CONFIG.format(parquet=parquet, detectors=detectors), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, check_references=True)
    return [m.replace(str(path.parent) + "/", "") for m in caught.value.messages]


def test_a_matching_reference_passes(tmp_path: Path) -> None:
    reference(tmp_path / "ref.parquet", age=pa.array([30, 40], pa.int16()), country=pa.array(["DE", "FR"]))
    config = load_config(write(tmp_path), check_references=True)
    assert config.models[0].reference is not None


def test_missing_reference_file(tmp_path: Path) -> None:
    path = write(tmp_path, parquet="data/credit_train.parquet")
    assert problems(path) == [
        "drift.yaml:4:26 models[0].reference.parquet: reference file not found: data/credit_train.parquet"
    ]
    # Loading for a run does not read it (a stored baseline may stand in for it).
    assert load_config(path).models[0].name == "credit-risk"


def test_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    (tmp_path / "ref.parquet").write_text("age,country\n30,DE\n", encoding="utf-8")
    [message] = problems(write(tmp_path))
    assert message.startswith("drift.yaml:4:26 models[0].reference.parquet: cannot read reference Parquet "
                              "ref.parquet: Parquet magic bytes not found")


def test_feature_absent_from_the_reference(tmp_path: Path) -> None:
    reference(tmp_path / "ref.parquet", age=pa.array([30.0]), region=pa.array(["eu"]))
    assert problems(write(tmp_path)) == [
        "drift.yaml:7:16 models[0].features.country: feature has no column 'country' (top level or in a "
        "'features' struct) in the reference ref.parquet; columns: ['age', 'region']"
    ]


@pytest.mark.parametrize(
    ("age", "country", "expected"),
    [
        pytest.param(pa.array(["30"]), pa.array(["DE"]),
                     ["drift.yaml:6:12 models[0].features.age: a numeric feature needs an integer, floating-point or "
                      "boolean column in the reference; column 'age' of ref.parquet is string"], id="numeric-string"),
        pytest.param(pa.array([30]), pa.array([1.5]),
                     ["drift.yaml:7:16 models[0].features.country: a categorical feature needs a string, integer, "
                      "boolean or dictionary column in the reference; column 'country' of ref.parquet is double"],
                     id="categorical-float"),
        pytest.param(pa.array([[1, 2]]), pa.array([b"DE"]),
                     ["drift.yaml:6:12 models[0].features.age: a numeric feature needs an integer, floating-point or "
                      "boolean column in the reference; column 'age' of ref.parquet is list<element: int64>",
                      "drift.yaml:7:16 models[0].features.country: a categorical feature needs a string, integer, "
                      "boolean or dictionary column in the reference; column 'country' of ref.parquet is binary"],
                     id="list-and-binary"),
    ],
)
def test_incompatible_column_types(tmp_path: Path, age: pa.Array, country: pa.Array, expected: list[str]) -> None:
    reference(tmp_path / "ref.parquet", age=age, country=country)
    assert problems(write(tmp_path)) == expected


@pytest.mark.parametrize(
    "country",
    [pa.array([1, 2], pa.int8()), pa.array([True, False]), pa.array(["DE", "FR"], pa.large_string()),
     pa.array(["DE", "FR"]).dictionary_encode()],
    ids=["int8", "bool", "large-string", "dictionary"],
)
def test_categorical_columns_that_are_accepted(tmp_path: Path, country: pa.Array) -> None:
    reference(tmp_path / "ref.parquet", age=pa.array([True, False]), country=country)
    load_config(write(tmp_path), check_references=True)


def test_features_in_a_struct_column(tmp_path: Path) -> None:
    features = pa.StructArray.from_arrays([pa.array([30.0]), pa.array(["DE"])], names=["age", "country"])
    reference(tmp_path / "ref.parquet", features=features)
    load_config(write(tmp_path), check_references=True)
    wrong = pa.StructArray.from_arrays([pa.array(["x"]), pa.array(["DE"])], names=["age", "country"])
    reference(tmp_path / "ref.parquet", features=wrong)
    assert problems(write(tmp_path)) == [
        "drift.yaml:6:12 models[0].features.age: a numeric feature needs an integer, floating-point or boolean column "
        "in the reference; column 'age' of ref.parquet is string"
    ]


def test_score_and_embedding_columns(tmp_path: Path) -> None:
    reference(tmp_path / "ref.parquet", age=pa.array([30.0]), country=pa.array(["DE"]),
              score=pa.array(["high"]), embedding=pa.array([["a", "b"]]))
    detectors = ("    detectors:\n      - score: {field: prediction.score}\n"
                 "      - embedding: {field: embedding, dim: 2}\n      - embedding: {field: embedding, dim: 2}\n")
    path = write(tmp_path, detectors=detectors)
    assert problems(path) == [
        "drift.yaml:9:16 models[0].detectors[0].score: a numeric prediction field 'prediction.score' needs an "
        "integer, floating-point or boolean column in the reference; column 'score' of ref.parquet is string",
        "drift.yaml:10:28 models[0].detectors[1].embedding.field: embedding column 'embedding' of ref.parquet must "
        "be a (fixed-size) list of numbers; got list<element: string>",
        "drift.yaml:11:28 models[0].detectors[2].embedding.field: embedding column 'embedding' of ref.parquet must "
        "be a (fixed-size) list of numbers; got list<element: string>",
    ]
    reference(tmp_path / "ref.parquet", age=pa.array([30.0]), country=pa.array(["DE"]),
              score=pa.array([0.5]), embedding=pa.array([[0.1, 0.2]], pa.list_(pa.float32(), 2)))
    load_config(path, check_references=True)


def test_drift_validate_exits_2_on_reference_problems(tmp_path: Path) -> None:
    # Before: "valid" and exit 0; the run failed later.
    reference(tmp_path / "ref.parquet", age=pa.array(["thirty"]))
    write(tmp_path)
    result = subprocess.run([sys.executable, "-m", "drift.cli", "validate", "drift.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "drift.yaml:6:12 models[0].features.age: a numeric feature needs an integer, floating-point or boolean "
        "column in the reference; column 'age' of ref.parquet is string",
        "drift.yaml:7:16 models[0].features.country: feature has no column 'country' (top level or in a 'features' "
        f"struct) in the reference {tmp_path}/ref.parquet; columns: ['age']",
        "2 error(s) in drift.yaml",
    ]
