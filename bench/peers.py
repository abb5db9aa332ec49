"""Drift scores per feature, side by side with the libraries users would pick instead.

    python bench/peers.py [--rows 100000] [--reference-rows 1000000] [--features 25]
                          [--wide-features 1000] [--wide-rows 100000] [--repeats 3]
                          [--wide-repeats N] [--seed 7] [--tools evidently nannyml whylogs]

Prints one JSON document. The same data goes through every tool in the same run:

``main``
    a window of ``--rows`` rows against a reference of ``--reference-rows`` rows,
    ``--features`` features of which a fifth are categorical (20 numeric + 5
    categorical by default; categoricals have 12 to 44 categories, Zipf-like). The
    numeric ones cycle through normal, log-normal, exponential, uniform and Poisson
    (integer) shapes. Drift is injected into a few features (see :data:`NUMERIC_DRIFT`,
    :data:`CATEGORICAL_DRIFT`); ``num_02`` and ``cat_02`` carry 2% nulls on both sides.
``wide``
    ``--wide-features`` normal numeric features, ``--wide-rows`` rows on both sides,
    every 50th feature shifted by 0.5 standard deviations; only ours and Evidently
    (the target there is against Evidently). ``--wide-features 0`` leaves it out.

Each tool starts from the same two pandas data frames and ends at one drift score per
feature (and whether it flags the feature):

``ours``
    :func:`drift.reference.build_reference` (10 quantile bins per numeric feature, the
    category set of a categorical one) on the reference frame, timed apart as
    ``reference_s``: a one-off per baseline. Then per window
    (``window_s``): :func:`drift.columnar.summarise_columns` on the window's columns
    (the frame's numpy arrays as they are: ``float64`` numbers, object arrays of strings
    and None, which ``summarise_columns`` reads into Arrow strings, included) and :class:`detectors.psi.PsiDetector` with
    the default config (warn 0.1, alert 0.25). Flagged: PSI >= 0.1 (warn or alert).
``evidently``
    ``Report([DataDriftPreset(method="psi")]).run(current, reference)`` on
    ``Dataset.from_pandas`` of both frames (numeric and categorical columns declared),
    scores read from the snapshot. PSI with Evidently's binning (equal-width "sturges"
    bins of reference and current together; numeric columns with at most 20 distinct
    values counted by value). Flagged: PSI >= 0.1, its default. It has no separate fit:
    every window re-reads the reference, so ``reference_s`` is null.
``nannyml``
    ``UnivariateDriftCalculator`` with its default methods (Jensen-Shannon for both
    kinds), ``chunk_size`` = the window's rows: ``fit(reference)`` is ``reference_s``
    (it scores the reference's chunks to set the thresholds), ``calculate(window)``
    plus reading the result frame is ``window_s``. Flagged: its ``alert`` column.
``whylogs``
    ``why.log(pandas=frame).view()`` profiles each frame (KLL sketches, frequent
    items); the reference profile is ``reference_s``; the window's profile plus
    ``calculate_drift_scores(..., with_thresholds=True)`` (its defaults: KS on the
    sketches for numeric columns, chi-square for categorical ones) is ``window_s``.
    The score is the p-value (small is drift). Flagged: ``drift_category == "DRIFT"``
    (p < 0.05).

Each tool first runs once untimed on 1,000 rows of a few features (imports and lazy
set-up, which a monitor pays once). Times are the minimum over ``--repeats`` runs (the
median is reported too): the machine may be shared, and the minimum is the least
disturbed run. Ratios are
tool / ours, for the whole path (``total``: reference work plus one window) and for
one window (``window``: what a monitor pays per window once its baseline exists;
Evidently's window is its whole run). ``agreement`` lists per tool which features
it flagged against the injected ones. A selected peer that is not installed is an
error (exit 2) naming the install command: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

# The peers report usage over the network unless told not to; this machine may have
# none, and a telemetry call must not be timed as drift detection.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")
os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("ITERATIVE_DO_NOT_TRACK", "1")

import numpy as np  # noqa: E402

PEERS = ("evidently", "nannyml", "whylogs")
WIDE_PEERS = ("evidently",)
INSTALL_HINT = 'pip install -e ".[bench]"'

NUMERIC_KINDS = ("normal", "lognormal", "exponential", "uniform", "poisson")
NUMERIC_DRIFT = {1: "shift", 7: "scale", 13: "contamination"}
"""Drifted numeric features by index: ``shift`` moves the mean by 0.5 standard
deviations, ``scale`` widens the spread 1.5× about the mean, ``contamination``
replaces 15% of the values with ones 3 standard deviations above the mean."""
CATEGORICAL_DRIFT = {1: "reweight", 3: "new_category"}
"""Drifted categorical features by index: ``reweight`` moves 30% of the mass from the
top categories to the bottom half, ``new_category`` sends 15% of rows to a category
the reference never had."""
NULL_FEATURES = ("num_02", "cat_02")
NULL_RATE = 0.02
WIDE_DRIFT_EVERY = 50
PSI_FLAG = 0.1
WARMUP_ROWS = 1_000


# --------------------------------------------------------------------------------------
# Data


def numeric_name(i: int) -> str:
    return f"num_{i:02d}"


def categorical_name(i: int) -> str:
    return f"cat_{i:02d}"


def split_features(n_features: int) -> tuple[int, int]:
    """(numeric, categorical): a fifth categorical, at least one of each from 2 features."""
    if n_features < 2:
        raise SystemExit(f"--features must be >= 2; got {n_features}")
    n_categorical = max(1, round(n_features / 5))
    return n_features - n_categorical, n_categorical


def _numeric_base(kind: str, i: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "normal":
        return rng.normal(10.0 * i, 1.0 + i, n)
    if kind == "lognormal":
        return rng.lognormal(3.0 + 0.1 * i, 0.6, n)
    if kind == "exponential":
        return rng.exponential(2.0 + i, n)
    if kind == "uniform":
        return rng.uniform(-i, 5.0 + i, n)
    return rng.poisson(3.0 + i % 7, n).astype(np.float64)


def _drift_numeric(values: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    mean, std = float(values.mean()), float(values.std())
    if how == "shift":
        return values + 0.5 * std
    if how == "scale":
        return mean + 1.5 * (values - mean)
    out = values.copy()
    hit = rng.random(values.size) < 0.15
    out[hit] = mean + 3.0 * std + rng.normal(0.0, 0.1 * std, int(hit.sum()))
    return out


def _categories(i: int) -> tuple[np.ndarray, np.ndarray]:
    """The category labels (object array) and Zipf-like reference shares of ``cat_i``."""
    n = 12 + 8 * (i % 5)
    labels = np.array([f"c{i}_{k:02d}" for k in range(n)], dtype=object)
    weights = 1.0 / np.arange(1, n + 1) ** 0.9
    return labels, weights / weights.sum()


def _categorical_column(i: int, n: int, drift: str | None, rng: np.random.Generator) -> np.ndarray:
    labels, shares = _categories(i)
    if drift == "reweight":
        half = len(shares) // 2
        moved = shares.copy()
        moved[:half] *= 1.0 - 0.3 / shares[:half].sum()
        moved[half:] += 0.3 * shares[half:] / shares[half:].sum()
        shares = moved / moved.sum()
    values = labels[rng.choice(len(labels), size=n, p=shares)]
    if drift == "new_category":
        values[rng.random(n) < 0.15] = f"c{i}_new"
    return values


def make_frames(n_reference: int, n_current: int, n_features: int, seed: int) -> tuple[Any, Any, dict[str, str], list[str]]:
    """(reference frame, current frame, feature types, injected drifted features)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_numeric, n_categorical = split_features(n_features)
    reference: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    types: dict[str, str] = {}
    drifted: list[str] = []
    for i in range(n_numeric):
        name, kind = numeric_name(i), NUMERIC_KINDS[i % len(NUMERIC_KINDS)]
        reference[name] = _numeric_base(kind, i, n_reference, rng)
        values = _numeric_base(kind, i, n_current, rng)
        if i in NUMERIC_DRIFT:
            values = _drift_numeric(values, NUMERIC_DRIFT[i], rng)
            drifted.append(name)
        current[name] = values
        types[name] = "numeric"
    for i in range(n_categorical):
        name = categorical_name(i)
        reference[name] = _categorical_column(i, n_reference, None, rng)
        current[name] = _categorical_column(i, n_current, CATEGORICAL_DRIFT.get(i), rng)
        if i in CATEGORICAL_DRIFT:
            drifted.append(name)
        types[name] = "categorical"
    for name in NULL_FEATURES:
        if name in types:
            for frame in (reference, current):
                column = frame[name]
                column[rng.random(column.size) < NULL_RATE] = np.nan if types[name] == "numeric" else None
    return pd.DataFrame(reference), pd.DataFrame(current), types, drifted


def make_wide_frames(n_rows: int, n_features: int, seed: int) -> tuple[Any, Any, dict[str, str], list[str]]:
    """Normal features of varied location and scale, every 50th shifted by 0.5 sd."""
    import pandas as pd

    rng = np.random.default_rng(seed + 1)
    names = [f"w_{j:04d}" for j in range(n_features)]
    loc = rng.uniform(-100.0, 100.0, n_features)
    scale = rng.uniform(0.5, 20.0, n_features)
    # (features, rows) then transposed: each column is contiguous in the frame's block.
    reference = rng.standard_normal((n_features, n_rows)) * scale[:, None] + loc[:, None]
    current = rng.standard_normal((n_features, n_rows)) * scale[:, None] + loc[:, None]
    shifted = np.arange(0, n_features, WIDE_DRIFT_EVERY)
    current[shifted] += 0.5 * scale[shifted, None]
    types = dict.fromkeys(names, "numeric")
    return (pd.DataFrame(reference.T, columns=names, copy=False),
            pd.DataFrame(current.T, columns=names, copy=False), types, [names[j] for j in shifted])


# --------------------------------------------------------------------------------------
# Tools: each returns {"reference_s", "window_s", "scores", "flagged", ...}


def _columns(frame: Any, types: dict[str, str]) -> dict[str, Any]:
    """The frame's columns as ``summarise_columns`` takes them: numpy arrays without a copy
    (``float64`` numbers, the object arrays of strings and None that pandas holds)."""
    return {
        name: frame[name].to_numpy(dtype=np.float64 if kind == "numeric" else object, copy=False)
        for name, kind in types.items()
    }


def run_ours(reference: Any, current: Any, types: dict[str, str]) -> dict[str, Any]:
    from detectors.psi import PsiConfig, PsiDetector
    from drift.columnar import summarise_columns
    from drift.findings import Cohort, Severity, Window
    from drift.reference import build_reference

    start = time.perf_counter()
    columns = {name: reference[name].to_numpy(copy=False) for name in types}
    profile = build_reference("bench", columns, types, {}, "bench reference frame", len(reference))
    reference_s = time.perf_counter() - start

    detector = PsiDetector(PsiConfig())
    cohort = Cohort("bench")
    window = Window(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc))
    start = time.perf_counter()
    summary = summarise_columns(profile, _columns(current, types))
    findings = detector.score(summary, profile, cohort, window)
    window_s = time.perf_counter() - start

    scores = {f.feature: f.value for f in findings if f.feature is not None}
    return {
        "reference_s": reference_s, "window_s": window_s, "scores": scores,
        "flagged": sorted(name for name, value in scores.items() if value >= PSI_FLAG),
        "alerted": sorted(f.feature for f in findings if f.feature is not None and f.severity is Severity.ALERT),
    }


def run_evidently(reference: Any, current: Any, types: dict[str, str]) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[n for n, k in types.items() if k == "numeric"],
        categorical_columns=[n for n, k in types.items() if k == "categorical"],
    )
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset(method="psi")]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    scores: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
            thresholds[config["column"]] = float(config["threshold"])
    window_s = time.perf_counter() - start
    return {
        "reference_s": None, "window_s": window_s, "scores": scores,
        "flagged": sorted(name for name, value in scores.items() if value >= thresholds[name]),
    }


def run_nannyml(reference: Any, current: Any, types: dict[str, str]) -> dict[str, Any]:
    import nannyml

    calculator = nannyml.UnivariateDriftCalculator(
        column_names=list(types),
        treat_as_categorical=[n for n, k in types.items() if k == "categorical"],
        chunk_size=len(current),
    )
    with warnings.catch_warnings():
        # "The resulting number of chunks is too low": one window is one chunk here.
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        calculator.fit(reference)
        reference_s = time.perf_counter() - start
        start = time.perf_counter()
        result = calculator.calculate(current).filter(period="analysis").to_df()
        row = result.iloc[-1]
        scores: dict[str, float] = {}
        flagged: list[str] = []
        for name in types:
            method = next(m for (column, m, _) in result.columns if column == name)
            scores[name] = float(row[(name, method, "value")])
            if bool(row[(name, method, "alert")]):
                flagged.append(name)
        window_s = time.perf_counter() - start
    return {"reference_s": reference_s, "window_s": window_s, "scores": scores, "flagged": sorted(flagged)}


def run_whylogs(reference: Any, current: Any, types: dict[str, str]) -> dict[str, Any]:
    import whylogs
    from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores

    start = time.perf_counter()
    reference_view = whylogs.log(pandas=reference).view()
    reference_s = time.perf_counter() - start
    start = time.perf_counter()
    current_view = whylogs.log(pandas=current).view()
    result = calculate_drift_scores(target_view=current_view, reference_view=reference_view, with_thresholds=True)
    window_s = time.perf_counter() - start
    scores: dict[str, float] = {}
    algorithms: dict[str, str] = {}
    flagged: list[str] = []
    for name in types:
        item = result.get(name)
        if item is None:
            continue
        scores[name] = float(item["pvalue"])
        algorithms[name] = str(item["algorithm"])
        if item["drift_category"] == "DRIFT":
            flagged.append(name)
    return {
        "reference_s": reference_s, "window_s": window_s, "scores": scores, "flagged": sorted(flagged),
        "algorithms": sorted(set(algorithms.values())),
    }


RUNNERS: dict[str, Callable[[Any, Any, dict[str, str]], dict[str, Any]]] = {
    "ours": run_ours, "evidently": run_evidently, "nannyml": run_nannyml, "whylogs": run_whylogs,
}

COMPUTES = {
    "ours": "PSI, 10 reference-quantile bins (categorical: reference categories + unseen), epsilon 1e-4",
    "evidently": "PSI, equal-width sturges bins of reference+current (categorical: values), DataDriftPreset",
    "nannyml": "Jensen-Shannon distance, thresholds from the reference's chunks (UnivariateDriftCalculator defaults)",
    "whylogs": "p-value: KS on KLL sketches (numeric), chi-square on frequent items (categorical)",
}


# --------------------------------------------------------------------------------------
# Timing and report


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the peers' progress output and warnings off stdout, which carries the JSON."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def measure(tool: str, reference: Any, current: Any, types: dict[str, str], repeats: int) -> dict[str, Any]:
    """The tool's last result with min/median times over ``repeats`` runs."""
    # One untimed run on a slice first (a few rows of a few features of each kind): the
    # libraries import and set up lazily, and a monitor that scores window after window
    # pays that once.
    warm = {n: k for n, k in types.items() if k == "numeric"}
    warm = dict(list(warm.items())[:3]) | dict([(n, k) for n, k in types.items() if k != "numeric"][:2])
    with quiet():
        RUNNERS[tool](reference.iloc[:WARMUP_ROWS][list(warm)], current.iloc[:WARMUP_ROWS][list(warm)], warm)
    runs = []
    for _ in range(repeats):
        with quiet():
            runs.append(RUNNERS[tool](reference, current, types))
    last = runs[-1]
    out: dict[str, Any] = {"computes": COMPUTES[tool]}
    for key in ("reference_s", "window_s"):
        values = [r[key] for r in runs]
        out[key] = None if values[0] is None else round(min(values), 4)
        out[key.replace("_s", "_median_s")] = None if values[0] is None else round(statistics.median(values), 4)
    totals = [(r["reference_s"] or 0.0) + r["window_s"] for r in runs]
    out["total_s"] = round(min(totals), 4)
    out["total_median_s"] = round(statistics.median(totals), 4)
    out["n_scored"] = len(last["scores"])
    out["flagged"] = last["flagged"]
    for key in ("alerted", "algorithms"):
        if key in last:
            out[key] = last[key]
    out["scores"] = {name: round(value, 6) for name, value in last["scores"].items()}
    return out


def agreement(results: dict[str, dict[str, Any]], injected: list[str]) -> dict[str, Any]:
    """Per tool: the injected features it missed and the others it flagged."""
    out: dict[str, Any] = {"injected": injected}
    for tool, result in results.items():
        flagged = set(result["flagged"])
        out[tool] = {"missed": sorted(set(injected) - flagged), "extra": sorted(flagged - set(injected))}
    return out


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    ours = results["ours"]
    out: dict[str, dict[str, float | None]] = {}
    for tool, result in results.items():
        if tool == "ours":
            continue
        out[tool] = {
            "total": round(result["total_s"] / ours["total_s"], 1),
            "window": round(result["window_s"] / ours["window_s"], 1),
        }
    return out


def run_case(name: str, frames: tuple[Any, Any, dict[str, str], list[str]], tools: list[str],
             repeats: int, keep_scores: bool) -> dict[str, Any]:
    reference, current, types, injected = frames
    print(f"[{name}] {len(reference):,} reference rows, {len(current):,} window rows, "
          f"{len(types)} features: {', '.join(['ours', *tools])}", file=sys.stderr)
    results: dict[str, dict[str, Any]] = {}
    for tool in ["ours", *tools]:
        start = time.perf_counter()
        results[tool] = measure(tool, reference, current, types, repeats)
        print(f"[{name}] {tool}: total {results[tool]['total_s']} s (window {results[tool]['window_s']} s), "
              f"{time.perf_counter() - start:.1f} s with repeats", file=sys.stderr)
        if not keep_scores:
            del results[tool]["scores"]
    return {
        "reference_rows": len(reference), "rows": len(current),
        "numeric_features": sum(k == "numeric" for k in types.values()),
        "categorical_features": sum(k == "categorical" for k in types.values()),
        "tools": results, "ratios": ratios(results), "agreement": agreement(results, injected),
    }


def machine(tools: list[str]) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("drift", "numpy", "pandas", "pyarrow", "scipy", *tools):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions,
    }


def check_installed(tools: list[str]) -> None:
    missing = []
    for tool in tools:
        try:
            importlib.metadata.version(tool)
        except importlib.metadata.PackageNotFoundError:
            missing.append(tool)
    if missing:
        print(f"peers.py: not installed: {', '.join(missing)}; install the bench extra: {INSTALL_HINT}",
              file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="window rows (main case)")
    parser.add_argument("--reference-rows", type=int, default=1_000_000, help="reference rows (main case)")
    parser.add_argument("--features", type=int, default=25, help="features in the main case, a fifth categorical")
    parser.add_argument("--wide-features", type=int, default=1_000, help="numeric features of the wide case; 0: none")
    parser.add_argument("--wide-rows", type=int, default=100_000, help="rows of the wide case, reference and window each")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tool; the minimum is reported")
    parser.add_argument("--wide-repeats", type=int, default=None, help="timed runs in the wide case (default: --repeats)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tools", nargs="*", choices=PEERS, default=list(PEERS),
                        help="peers to run besides ours (default: all)")
    args = parser.parse_args(argv)
    if args.wide_repeats is None:
        args.wide_repeats = args.repeats
    for option, value in (("--repeats", args.repeats), ("--wide-repeats", args.wide_repeats)):
        if value < 1:
            parser.error(f"{option} must be >= 1; got {value}")
    tools = list(dict.fromkeys(args.tools))
    check_installed(tools)
    started = time.perf_counter()
    load_start = os.getloadavg()

    document: dict[str, Any] = {
        "benchmark": "peers",
        "date": datetime.now(timezone.utc).date().isoformat(),
        "command": " ".join(["python", "bench/peers.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(tools),
        "parameters": {
            "rows": args.rows, "reference_rows": args.reference_rows, "features": args.features,
            "wide_features": args.wide_features, "wide_rows": args.wide_rows, "repeats": args.repeats,
            "wide_repeats": args.wide_repeats,
            "seed": args.seed, "tools": tools,
        },
    }
    frames = make_frames(args.reference_rows, args.rows, args.features, args.seed)
    document["main"] = run_case("main", frames, tools, args.repeats, keep_scores=True)
    del frames
    wide_tools = [t for t in tools if t in WIDE_PEERS]
    if args.wide_features > 0:
        wide = make_wide_frames(args.wide_rows, args.wide_features, args.seed)
        document["wide"] = run_case("wide", wide, wide_tools, args.wide_repeats, keep_scores=False)
        del wide
    document["machine"]["load_average"] = {"start": [round(x, 2) for x in load_start],
                                           "end": [round(x, 2) for x in os.getloadavg()]}
    document["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
