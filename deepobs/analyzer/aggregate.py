"""Aggregate seeds into settings and rank settings as DeepOBS does (reference §4.1),
selecting on validation (or training) metrics, never on the test set by default."""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import pandas as pd

from deepobs.analyzer.loading import METRICS
from deepobs.analyzer.selection import hyperparameter_order, ranking, run_value, setting_value, tuning_seeds
from deepobs.errors import ConfigurationError

STATS = ("mean", "std", "median", "lower_quartile", "upper_quartile")
MODES = ("final", "best", "most")
#: Identity of one setting (a folder of seed runs).
SETTING_KEYS = ["source", "problem", "optimizer", "setting"]


def is_accuracy(metric: str) -> bool:
    """Accuracies are maximised, losses minimised."""
    return metric.endswith("accuracies")


def curve_statistics(curves: np.ndarray) -> dict:
    """Per-epoch mean, population std (ddof 0), median and quartiles of stacked curves."""
    return {
        "mean": curves.mean(axis=0),
        "std": curves.std(axis=0),
        "median": np.median(curves, axis=0),
        "lower_quartile": np.percentile(curves, 25, axis=0),
        "upper_quartile": np.percentile(curves, 75, axis=0),
    }


def aggregate_setting(runs: pd.DataFrame, include_diverged: bool = False) -> dict:
    """Aggregate the seed runs of one setting.

    Diverged runs are left out of the statistics unless ``include_diverged`` (they are
    still counted in ``n_runs``/``n_diverged``, and their seeds are kept apart).
    """
    runs = runs.sort_values("seed", kind="stable")  # finals and seed curves follow ``seeds``
    first = runs.iloc[0]
    used = runs if include_diverged else runs[~runs["diverged"]]
    row = {key: first[key] for key in SETTING_KEYS}
    row.update({
        "protocol": first["protocol"], "num_epochs": int(first["num_epochs"]),
        "batch_size": int(first["batch_size"]), "weight_decay": first["weight_decay"],
        "hyperparams": first["hyperparams"], "training_params": first["training_params"],
        "lr": first["lr"], "seeds": sorted(int(s) for s in used["seed"]),
        "diverged_seeds": sorted(int(s) for s in runs.loc[runs["diverged"], "seed"]),
        "n_runs": len(runs), "n_diverged": int(runs["diverged"].sum()), "n_used": len(used),
        "paths": list(runs["path"]),
        "folder": first["folder"] if "folder" in runs else first["setting"],
    })
    curves, finals, best, seed_curves = {}, {}, {}, {}
    for metric in METRICS:
        arrays = [c for c in used[metric] if isinstance(c, np.ndarray)]
        present = any(isinstance(c, np.ndarray) for c in runs[metric])
        if not present:
            continue
        if arrays:
            stacked = np.vstack(arrays)
            seed_curves[metric] = stacked
            curves[metric] = curve_statistics(stacked)
            finals[metric] = stacked[:, -1]
            best[metric] = best_of_curve(curves[metric]["mean"], metric)
        else:
            curves[metric] = None
            finals[metric] = np.array([])
            best[metric] = np.nan
    row["diverged_curves"] = {} if include_diverged else diverged_curves(runs[runs["diverged"]])
    row.update({"curves": curves, "finals": finals, "best": best, "seed_curves": seed_curves,
                "seed_train_times": list(used["train_times"]) if "train_times" in used else None,
                "stored_speeds": None})
    return row


def diverged_curves(runs: pd.DataFrame) -> dict:
    """Per metric, each diverged run's curve up to its divergence (padding and NaN cut),
    so that plots can show diverged runs apart from the statistics."""
    out = {}
    for _, run in runs.iterrows():
        for metric in METRICS:
            curve = run[metric]
            if not isinstance(curve, np.ndarray):
                continue
            length = run.get("diverged_epoch")
            if length is None or not np.isfinite(length):
                bad = np.flatnonzero(~np.isfinite(curve))
                length = bad[0] if bad.size else len(curve)
            out.setdefault(metric, []).append(curve[: int(length)])
    return out


def best_of_curve(curve: np.ndarray, metric: str) -> float:
    """The best value of a curve (max for accuracies, min for losses), NaN-safe."""
    finite = curve[np.isfinite(curve)]
    if finite.size == 0:
        return np.nan
    return float(finite.max() if is_accuracy(metric) else finite.min())


def aggregate(runs: pd.DataFrame, include_diverged: bool = False) -> pd.DataFrame:
    """One row per setting (source, problem, optimizer, setting folder).

    Columns: the setting's identity and hyperparameters, ``seeds``, ``n_runs``,
    ``n_diverged``, ``n_used``, and per metric: ``curves[metric]`` (dict of per-epoch
    arrays for :data:`STATS`), ``finals[metric]`` (last-epoch value per used seed)
    and ``best[metric]`` (best value of the mean curve), ``seed_curves[metric]``
    (used seeds x epochs), ``seed_train_times`` (per used seed).
    """
    if runs.empty:
        return pd.DataFrame(columns=SETTING_KEYS)
    rows = [aggregate_setting(group, include_diverged)
            for _, group in runs.groupby(SETTING_KEYS, sort=True)]
    return pd.DataFrame(rows)


def final_mean(row, metric: str) -> float:
    """Mean over seeds of the last-epoch value (NaN when the metric or all seeds are missing)."""
    values = row["finals"].get(metric)
    if values is None or len(values) == 0:
        return np.nan
    return float(np.mean(values))


def final_std(row, metric: str) -> float:
    """Population std over seeds of the last-epoch value."""
    values = row["finals"].get(metric)
    if values is None or len(values) == 0:
        return np.nan
    return float(np.std(values))


def fallback_chain(metric: str) -> list:
    """Metrics to try, in order, when ``metric`` is absent (reference §4.1 with the test
    set replaced by the training set, so that selection never looks at the test set)."""
    if metric.startswith("test_"):
        return [metric]
    if is_accuracy(metric):
        return [metric, "valid_losses", "train_accuracies", "train_losses"] if metric == "valid_accuracies" \
            else [metric, "train_losses"]
    return [metric, "train_losses"] if metric == "valid_losses" else [metric]


def resolve_metric(settings: pd.DataFrame, metric: str, allow_test: bool = False) -> tuple:
    """The metric actually used for ranking these settings, and a note when it fell back.

    Raises ConfigurationError for a test metric unless ``allow_test`` (the v1.1 rule,
    kept only to reproduce the published baselines' selection).
    """
    if metric not in METRICS:
        raise ConfigurationError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    if metric.startswith("test_") and not allow_test:
        raise ConfigurationError(
            f"refusing to select settings on the test set ({metric}); use a valid_* or train_* "
            "metric, or allow_test=True to reproduce the v1.1 rule")
    for candidate in fallback_chain(metric):
        if any(candidate in finals for finals in settings["finals"]):
            note = "" if candidate == metric else f"{metric} not available, ranked on {candidate}"
            return candidate, note
    raise ConfigurationError(f"none of {', '.join(fallback_chain(metric))} is in these results")


def seed_values(row, metric: str, mode: str = "final") -> dict:
    """Seed -> the run's value under the selection rule (:mod:`deepobs.analyzer.selection`):
    its final value, or the best value of its curve (the best of the setting's mean curve
    where per-seed curves are not stored, as in the compact baselines); NaN for a
    diverged seed."""
    values = {}
    finals = row["finals"].get(metric)
    finals = [] if finals is None else finals
    curves = (row.get("seed_curves") or {}).get(metric)
    for index, seed in enumerate(row["seeds"]):
        if index >= len(finals):
            values[int(seed)] = np.nan
        elif mode != "best":
            values[int(seed)] = float(finals[index])
        elif curves is not None and index < len(curves):
            values[int(seed)] = run_value(curves[index], metric, "best")
        else:
            values[int(seed)] = float(row["best"].get(metric, np.nan))
    values.update({int(seed): np.nan for seed in row["diverged_seeds"]})
    return values


def rank_settings(settings: pd.DataFrame, mode: str = "final", metric: str = "valid_accuracies",
                  allow_test: bool = False) -> pd.DataFrame:
    """Rank the settings of one (source, problem, optimizer), best first.

    Modes ``final`` and ``best`` apply the rule ``deepobs-tune`` applies
    (:mod:`deepobs.analyzer.selection`): each setting's mean over the *tuning seeds* (the
    seeds every setting was run with) of its runs' final value, or of their best epoch;
    a diverged tuning run ranks the setting last. ``most`` (how the published baselines
    mark their tuned setting) ranks by the number of seed runs, ties broken by ``final``.
    Adds ``score`` and ``rank`` columns; ``attrs`` holds ``metric``, ``note`` (the
    fallback that was taken, if any), ``mode`` and ``tuning_seeds``.
    """
    if mode not in MODES:
        raise ConfigurationError(f"unknown mode {mode!r}; allowed: {', '.join(MODES)}")
    used, note = resolve_metric(settings, metric, allow_test)
    if note:
        warnings.warn(note, stacklevel=2)
    ranked = settings.copy()
    values = [seed_values(row, used, "best" if mode == "best" else "final") for _, row in ranked.iterrows()]
    seeds = tuning_seeds(values)
    if not seeds and len(values) > 1:
        note = (note + "; " if note else "") + ("the settings share no seed: ranked on each setting's mean "
                                                "over its own seeds")
    ranked["score"] = [setting_value(v, seeds) for v in values]
    ties = [hyperparameter_order(hp if isinstance(hp, dict) else {}) for hp in ranked["hyperparams"]]
    order = ranking(list(ranked["score"]), used, ties)
    if mode == "most":
        top = (ranked["n_runs"] == ranked["n_runs"].max()).sum()
        if top == 1:
            note = ""  # the run count alone decided; the metric was not needed
        elif top == len(ranked) and len(ranked) > 1:
            note = (note + "; " if note else "") + "all settings have the same number of runs, ranked by final"
        position = {index: place for place, index in enumerate(order)}
        order = sorted(order, key=lambda index: (-ranked["n_runs"].iloc[index], position[index]))
    ranked = ranked.iloc[order].reset_index(drop=True)
    ranked["rank"] = np.arange(1, len(ranked) + 1)
    ranked.attrs.update(metric=used, note=note, mode=mode, tuning_seeds=seeds)
    return ranked


def select_best(settings: pd.DataFrame, mode: str = "final", metric: str = "valid_accuracies",
                allow_test: bool = False) -> pd.DataFrame:
    """The rank-1 setting of every (source, problem, optimizer), with ``metric_used`` and
    ``selection_note`` columns saying how it was chosen."""
    chosen = []
    # Protocols are never mixed: 1.1 (no validation split) and 1.2 settings are ranked
    # apart, and where both exist the optimizer is shown as e.g. "SGD [protocol 1.1]".
    for _, group in settings.groupby(["source", "problem", "optimizer", "protocol"], sort=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranked = rank_settings(group, mode, metric, allow_test)
        best = ranked.iloc[0].copy()
        best["metric_used"] = ranked.attrs["metric"]
        best["tuning_seeds"] = tuple(ranked.attrs["tuning_seeds"])
        best["n_candidates"] = len(ranked)
        best["selection_note"] = ranked.attrs["note"] if len(ranked) > 1 else ""  # nothing to rank
        chosen.append(best)
    if not chosen:
        return settings.iloc[0:0]
    chosen = pd.DataFrame(chosen).reset_index(drop=True)
    both = chosen.duplicated(["source", "problem", "optimizer"], keep=False)
    chosen.loc[both, "optimizer"] = [f"{o} [protocol {p}]" for o, p in
                                     zip(chosen.loc[both, "optimizer"], chosen.loc[both, "protocol"])]
    return chosen


def performance_metric(row) -> str:
    """DeepOBS's headline metric: test accuracy where the problem has one, else test loss."""
    return "test_accuracies" if "test_accuracies" in row["finals"] else "test_losses"


def optional_note(notes) -> Optional[str]:
    """Join the non-empty notes, or None."""
    notes = sorted({n for n in notes if n})
    return "; ".join(notes) or None
