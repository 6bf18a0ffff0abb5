"""Baselines to compare against: the shipped compact sets (by name: DeepOBS 1.1's published
TensorFlow runs, deepobs-pytorch's own) or any results tree (by path), both as a setting
table like :func:`aggregate` returns."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from deepobs.analyzer.aggregate import STATS, aggregate, best_of_curve, performance_metric
from deepobs.analyzer.loading import METRICS, load_results
from deepobs.analyzer.measures import setting_speeds
from deepobs.errors import ConfigurationError, DataError
from deepobs.safe_names import printable

#: Names of the baseline sets that ship with deepobs.
SHIPPED = ("deepobs-1.1", "deepobs-pytorch")
#: Environment variable naming a folder that holds baseline sets (overrides the search).
BASELINES_ENV = "DEEPOBS_BASELINES_DIR"
#: Format version of the compact files.
COMPACT_FORMAT = 1
#: Digits of the per-epoch statistics, relative to each curve's largest value: a curve is
#: stored as integers ``v`` and an exponent ``e`` (value = v * 10**e). Enough for plots;
#: the tables use the final values, kept at full precision. Keeps the shipped files small.
CURVE_DIGITS = {"mean": 4, "median": 4, "std": 2, "lower_quartile": 3, "upper_quartile": 3}
#: Significant digits of the final values of the untuned grid points (sensitivity plots).
GRID_DIGITS = 6


def _search_folders() -> list:
    here = Path(__file__).resolve().parent
    folders = [Path(os.environ[BASELINES_ENV])] if os.environ.get(BASELINES_ENV) else []
    # Package data (installed wheel), then the repository's baselines/ (source checkout).
    return folders + [here / "data", here.parents[1] / "baselines"]


def baseline_folder(name: str) -> Path:
    """The folder of a shipped baseline set, e.g. ``deepobs-1.1``."""
    for folder in _search_folders():
        candidate = folder / name
        if (candidate / "convergence_performance.json").is_file():
            return candidate
    raise DataError(f"baseline set {name!r} not found in {', '.join(map(str, _search_folders()))}")


def load_baselines(name_or_path, include_diverged: bool = False) -> pd.DataFrame:
    """A setting table of baselines: a shipped set by name or any results tree by path."""
    name_or_path = str(name_or_path)
    if name_or_path in SHIPPED:
        return read_compact(baseline_folder(name_or_path), source=name_or_path)
    path = Path(name_or_path)
    if not path.exists():
        raise ConfigurationError(
            f"baselines {name_or_path!r}: not a shipped set ({', '.join(SHIPPED)}) nor an existing path")
    if (path / "convergence_performance.json").is_file() and any(path.glob("*.compact.json")):
        return read_compact(path, source=path.name)
    return aggregate(load_results(path, source=path.name), include_diverged)


# ---------------------------------------------------------------- compact form
def _round(values, digits: int) -> list:
    return [None if not math.isfinite(v) else float(f"{v:.{digits}g}") for v in np.asarray(values, float)]


def encode_curve(values, digits: int) -> dict:
    """A curve as fixed-point integers: ``{"e": exponent, "v": [ints or None]}`` with
    ``digits`` significant digits at the curve's largest magnitude."""
    values = np.asarray(values, float)
    finite = np.abs(values[np.isfinite(values)])
    peak = finite.max() if finite.size else 0.0
    exponent = int(math.floor(math.log10(peak))) - (digits - 1) if peak > 0 else 0
    scale = 10.0 ** exponent
    return {"e": exponent, "v": [int(round(v / scale)) if math.isfinite(v) else None for v in values]}


def decode_curve(encoded: dict) -> np.ndarray:
    """Inverse of :func:`encode_curve`."""
    scale = 10.0 ** encoded["e"]
    return np.array([math.nan if v is None else v * scale for v in encoded["v"]], dtype=float)


def _exact(values) -> list:
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, float)]


def _floats(values) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=float)


def compact_setting(row, threshold: Optional[float], with_curves: bool) -> dict:
    """One aggregated setting row in the compact form (curves only if asked)."""
    finals = _exact if with_curves else (lambda values: _round(values, GRID_DIGITS))
    entry = {
        "setting": row.get("folder", row["setting"]), "hyperparams": row["hyperparams"], "seeds": row["seeds"],
        "diverged_seeds": row["diverged_seeds"],
        "finals": {m: finals(v) for m, v in row["finals"].items()},
    }
    if not with_curves:
        entry["best"] = {m: _round([v], GRID_DIGITS)[0] for m, v in row["best"].items()}
    if with_curves:
        entry["curves"] = {m: {s: encode_curve(stats[s], CURVE_DIGITS[s]) for s in STATS}
                           for m, stats in row["curves"].items() if stats is not None}
        if threshold is not None:
            metric = performance_metric(row)
            entry["speed"] = {"metric": metric, "threshold": threshold,
                              "epochs": setting_speeds(row, threshold, metric).astype(int).tolist()}
    return entry


def compact_problem(settings: pd.DataFrame, thresholds: dict) -> dict:
    """The compact form of one problem's setting table: per optimizer, every setting's
    final values and, for the setting with the most seeds (the tuned one), its per-epoch
    statistics and per-seed speed."""
    first = settings.iloc[0]
    out = {"format": COMPACT_FORMAT, "problem": first["problem"], "num_epochs": int(first["num_epochs"]),
           "batch_size": int(first["batch_size"]), "weight_decay": first["weight_decay"],
           "protocol": first["protocol"], "optimizers": {}}
    for optimizer, group in settings.groupby("optimizer", sort=True):
        tuned = group["n_runs"].idxmax()
        entries = [compact_setting(row, thresholds.get(first["problem"]), index == tuned)
                   for index, row in group.sort_values("lr").iterrows()]
        # Names and hyperparameters shared by all settings are stored once.
        prefix = os.path.commonprefix([e["setting"] for e in entries])
        prefix = prefix[:prefix.rfind("__") + 2] if "__" in prefix else ""
        shared = {k: v for k, v in entries[0]["hyperparams"].items()
                  if all(e["hyperparams"].get(k, v) == v and k in e["hyperparams"] for e in entries)}
        for entry in entries:
            entry["setting"] = entry["setting"][len(prefix):]
            entry["hyperparams"] = {k: v for k, v in entry["hyperparams"].items() if k not in shared}
        out["optimizers"][optimizer] = {
            "tuned_setting": group.loc[tuned].get("folder", group.loc[tuned, "setting"]), "setting_prefix": prefix,
            "hyperparams": shared, "settings": entries,
        }
        if group.loc[tuned, "training_params"]:
            out["optimizers"][optimizer]["training_params"] = group.loc[tuned, "training_params"]
    return out


def read_compact(folder, source: str) -> pd.DataFrame:
    """Read every ``<problem>.compact.json`` of a baseline folder into a setting table."""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.glob("*.compact.json")):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or data.get("format") != COMPACT_FORMAT:
                found = data.get("format") if isinstance(data, dict) else None
                raise DataError(f"{path}: compact format {found!r}, expected {COMPACT_FORMAT}")
            for optimizer, entry in data["optimizers"].items():
                for setting in entry["settings"]:
                    setting = dict(setting, setting=entry["setting_prefix"] + setting["setting"],
                                   hyperparams={**entry["hyperparams"], **setting["hyperparams"]})
                    rows.append(_setting_row(data, optimizer, setting, source, entry.get("training_params", {})))
        except DataError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as error:
            # A compact file from elsewhere that is not what build_baselines writes.
            raise DataError(f"{printable(path)}: not a compact baseline file "
                            f"({type(error).__name__}: {' '.join(printable(error).split())[:200]})") from None
    if not rows:
        raise DataError(f"no *.compact.json baseline files in {folder}")
    return pd.DataFrame(rows)


def _setting_row(problem: dict, optimizer: str, entry: dict, source: str, training_params: dict) -> dict:
    finals = {m: _floats(v) for m, v in entry["finals"].items()}
    curves = {m: None for m in finals}
    for metric, stats in entry.get("curves", {}).items():
        curves[metric] = {s: decode_curve(stats[s]) for s in STATS}
    best = {m: (np.nan if v is None else v) for m, v in entry.get("best", {}).items()}
    for metric, stats in entry.get("curves", {}).items():
        best[metric] = best_of_curve(curves[metric]["mean"], metric)
    n_used = len(entry["seeds"])
    n_diverged = len(entry["diverged_seeds"])
    return {
        "source": source, "problem": problem["problem"], "optimizer": optimizer,
        "setting": entry["setting"], "protocol": problem["protocol"],
        "num_epochs": problem["num_epochs"], "batch_size": problem["batch_size"],
        "weight_decay": problem["weight_decay"], "hyperparams": entry["hyperparams"],
        "training_params": training_params, "lr": entry["hyperparams"].get("lr"), "seeds": entry["seeds"],
        "diverged_seeds": entry["diverged_seeds"], "n_runs": n_used + n_diverged,
        "n_diverged": n_diverged, "n_used": n_used, "paths": [],
        "curves": curves, "finals": finals, "best": best, "seed_curves": {},
        "seed_train_times": None, "stored_speeds": entry.get("speed"), "diverged_curves": {},
    }


def metrics_of(settings: pd.DataFrame) -> list:
    """The metrics present in a setting table, in :data:`METRICS` order."""
    present = {m for finals in settings["finals"] for m in finals}
    return [m for m in METRICS if m in present]
