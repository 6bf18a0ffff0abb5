"""Benchmark measures: DeepOBS's performance, speed and tuneability (reference §7), and
AlgoPerf's time-to-target and performance profiles (reference peers.md A.4)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from deepobs.analyzer.aggregate import final_mean, final_std, is_accuracy, performance_metric
from deepobs.errors import ConfigurationError, DataError

#: AlgoPerf's cut-off: slower than 4x the fastest counts as not solved.
R_MAX = 4.0


def convergence_performance(path=None) -> dict:
    """DeepOBS's per-problem speed thresholds (``convergence_performance.json``).

    Defaults to the copy shipped with the deepobs-1.1 baselines.
    """
    if path is None:
        from deepobs.analyzer.baselines import baseline_folder

        path = baseline_folder("deepobs-1.1") / "convergence_performance.json"
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read convergence thresholds {path}: {error}") from None


def epochs_to_threshold(curve: np.ndarray, threshold: float, metric: str) -> int:
    """DeepOBS's speed of one run: the first epoch index (epoch 0 = before training) at
    which the curve reaches the threshold; ``len(curve)`` when it never does. NaN never
    satisfies the comparison."""
    with np.errstate(invalid="ignore"):
        hit = curve >= threshold if is_accuracy(metric) else curve <= threshold
    indices = np.flatnonzero(hit)
    return int(indices[0]) if indices.size else len(curve)


def setting_speeds(row, threshold: float, metric: Optional[str] = None) -> np.ndarray:
    """Epochs to the threshold for every used seed of a setting row."""
    metric = metric or performance_metric(row)
    seed_curves = row.get("seed_curves") or {}
    if metric in seed_curves:
        return np.array([epochs_to_threshold(c, threshold, metric) for c in seed_curves[metric]])
    stored = row.get("stored_speeds")
    if isinstance(stored, dict) and stored.get("threshold") == threshold and stored.get("metric") == metric:
        return np.asarray(stored["epochs"], dtype=float)
    return np.array([])


def speed(row, threshold: Optional[float], metric: Optional[str] = None) -> float:
    """DeepOBS's speed of a setting: mean over seeds of :func:`epochs_to_threshold`."""
    if threshold is None:
        return np.nan
    values = setting_speeds(row, threshold, metric)
    return float(values.mean()) if values.size else np.nan


def performance(row) -> tuple:
    """DeepOBS's performance of a setting: (metric, mean, std) of the final test accuracy
    where the problem has one, else of the final test loss."""
    metric = performance_metric(row)
    return metric, final_mean(row, metric), final_std(row, metric)


def tuneability(row) -> dict:
    """The tuned hyperparameters of a setting (the v1.1 table's Tuneability column)."""
    return dict(row["hyperparams"])


# ------------------------------------------------------------------ AlgoPerf-style
def time_to_target(row, target: float, metric: str, unit: str = "epochs") -> float:
    """Median over a setting's seeds of the time at which ``metric`` first reaches
    ``target`` (inf for a seed that never does): epochs, or seconds of training time
    (``train_times`` summed up to that epoch; needs our runner's files)."""
    if unit not in ("epochs", "seconds"):
        raise ConfigurationError(f"unknown time unit {unit!r}; allowed: epochs, seconds")
    curves = (row.get("seed_curves") or {}).get(metric)
    if curves is None or len(curves) == 0:
        stored = setting_speeds(row, target, metric) if unit == "epochs" else np.array([])
        if stored.size == 0:
            return math.inf
        return float(np.median(np.where(stored > row["num_epochs"], math.inf, stored)))
    times = []
    for index, curve in enumerate(curves):
        epoch = epochs_to_threshold(curve, target, metric)
        if epoch >= len(curve):
            times.append(math.inf)
        elif unit == "epochs":
            times.append(float(epoch))
        else:
            train_times = row["seed_train_times"][index]
            if train_times is None or len(train_times) < epoch:
                raise DataError(f"{row['setting']}: no per-epoch train_times to measure seconds")
            times.append(float(np.sum(train_times[:epoch])))
    return float(np.median(times))


def time_to_target_table(settings: pd.DataFrame, targets: dict, metric: Optional[str] = None,
                         unit: str = "epochs") -> pd.DataFrame:
    """Problems x optimizers: the fastest setting's median time to the problem's target.

    Every setting counts as a tuning trial (AlgoPerf: the fastest trial that hits the
    target). Missing targets or never reached -> inf.
    """
    cells = {}
    for (problem, optimizer), group in settings.groupby(["problem", "optimizer"], sort=True):
        target = targets.get(problem)
        best = math.inf
        if target is not None:
            for _, row in group.iterrows():
                used = metric or performance_metric(row)
                best = min(best, time_to_target(row, target, used, unit))
        cells[(problem, optimizer)] = best
    if not cells:
        return pd.DataFrame()
    series = pd.Series(cells)
    return series.unstack().astype(float)


def performance_ratios(times: pd.DataFrame, r_max: float = R_MAX) -> pd.DataFrame:
    """r = t / (fastest t on the problem); inf where not solved or slower than r_max x."""
    fastest = times.min(axis=1)
    ratios = times.div(fastest.where(np.isfinite(fastest) & (fastest > 0)), axis=0)
    # A problem solved at time 0 by someone: that solver gets 1, every other one inf unless also 0.
    zero = fastest == 0
    if zero.any():
        ratios.loc[zero] = np.where(times.loc[zero] == 0, 1.0, np.inf)
    ratios = ratios.fillna(np.inf)
    return ratios.where(ratios <= r_max, np.inf)


def performance_profile(ratios: pd.DataFrame, taus: Optional[Sequence[float]] = None,
                        r_max: float = R_MAX) -> pd.DataFrame:
    """rho(tau) per optimizer: the fraction of problems with ratio <= tau."""
    taus = np.linspace(1.0, r_max, 301) if taus is None else np.asarray(taus, dtype=float)
    solved = ratios.to_numpy(dtype=float)[None, :, :] <= taus[:, None, None]
    return pd.DataFrame(solved.mean(axis=1), index=pd.Index(taus, name="tau"), columns=ratios.columns)


def profile_score(ratios: pd.DataFrame, r_max: float = R_MAX) -> pd.Series:
    """AlgoPerf's benchmark score (1/(r_max-1)) * integral_1^r_max rho(tau) dtau, per
    optimizer, integrated exactly (rho is a step function): a problem solved at ratio r
    contributes (r_max - r) / (r_max - 1) / n_problems."""
    clipped = ratios.clip(lower=1.0)
    contribution = ((r_max - clipped) / (r_max - 1.0)).where(np.isfinite(clipped), 0.0)
    return contribution.clip(lower=0.0).mean(axis=0).rename("score")


# --------------------------------------------------------------------- runtime
def _timed_run(problem: str, optimizer: str, hyperparams: dict, num_epochs: int,
               batch_size: Optional[int], seed: int, extra_args: Sequence[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="deepobs-runtime-") as output_dir:
        command = [sys.executable, "-m", "deepobs.run", problem, "--optimizer", optimizer,
                   "-N", str(num_epochs), "-r", str(seed), "--output_dir", output_dir, "--quiet"]
        if batch_size is not None:
            command += ["--bs", str(batch_size)]
        for name, value in hyperparams.items():
            command += [f"--{name}", str(value)]
        command += list(extra_args)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise ConfigurationError(f"deepobs-run failed: {done.stderr.strip().splitlines()[-1:]}")
        files = list(Path(output_dir).rglob("*.json"))
        return float(json.loads(files[0].read_text())["wall_time"])


def estimate_runtime(optimizer: str, hyperparams: dict, testproblem: str = "quadratic_deep",
                     n_runs: int = 5, sgd_lr: float = 0.01, num_epochs: int = 3,
                     batch_size: Optional[int] = None, extra_args: Sequence[str] = ()) -> dict:
    """Wall-clock ratio of an optimizer to SGD on one problem (reference §7).

    Alternates SGD and the optimizer ``n_runs`` times, each a separate ``deepobs-run``
    process (so this package never imports torch), and compares the runs' own
    ``wall_time`` (training and per-epoch evaluation, without process start-up).

    Returns a dict with the per-run times, the ratios and a one-line ``summary``.
    """
    if n_runs < 1:
        raise ConfigurationError(f"n_runs must be >= 1, got {n_runs}")
    sgd_times, new_times = [], []
    for run in range(n_runs):
        sgd_times.append(_timed_run(testproblem, "sgd", {"lr": sgd_lr}, num_epochs, batch_size, 42, extra_args))
        new_times.append(_timed_run(testproblem, optimizer, hyperparams, num_epochs, batch_size, 42, extra_args))
    ratios = np.array(new_times) / np.array(sgd_times)
    summary = (f"{testproblem}, {num_epochs} epochs, {n_runs} runs: SGD {np.mean(sgd_times):.3f} s, "
               f"{optimizer} {np.mean(new_times):.3f} s, ratio {ratios.mean():.2f} ± {ratios.std():.2f}")
    return {"sgd_times": sgd_times, "optimizer_times": new_times, "ratios": ratios.tolist(),
            "ratio_mean": float(ratios.mean()), "ratio_std": float(ratios.std()), "summary": summary}
