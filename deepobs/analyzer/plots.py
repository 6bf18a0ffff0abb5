"""Paper figures from setting tables (reference §4.1): performance vs baselines, the
test-set grid, hyperparameter sensitivity, tuning rank, v1.1 lr sensitivity, and
performance profiles. Uses matplotlib's object API (no pyplot state, no display)."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from deepobs.analyzer.aggregate import (
    final_mean, is_accuracy, performance_metric, rank_settings, resolve_metric,
)
from deepobs.errors import ConfigurationError

#: Fixed colours of the common optimizers, so they match across every figure.
KNOWN_COLORS = {"SGD": "#1f77b4", "Momentum": "#ff7f0e", "Adam": "#2ca02c", "Nesterov": "#d62728",
                "AdamW": "#9467bd", "RMSprop": "#8c564b", "Adagrad": "#e377c2"}
OTHER_COLORS = ["#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39",
                "#7b4173", "#3182bd", "#e6550d"]
PANELS = (("test_losses", "Test Loss"), ("train_losses", "Train Loss"),
          ("test_accuracies", "Test Accuracy"), ("train_accuracies", "Train Accuracy"))
WHICH = ("mean_and_std", "median_and_quartiles")
DIVERGED_COLOR = "#b00020"


def metric_label(metric: str) -> str:
    """``test_accuracies`` -> ``test accuracy`` (axis labels)."""
    phase, kind = metric.split("_", 1)
    return f"{phase} {'accuracy' if kind == 'accuracies' else 'loss'}"


def optimizer_color(name: str) -> str:
    """The colour of an optimizer: fixed for known names, else stable per name."""
    name = name.split(" [")[0]  # "SGD [protocol 1.1]" is still SGD
    if name in KNOWN_COLORS:
        return KNOWN_COLORS[name]
    return OTHER_COLORS[zlib.crc32(name.encode()) % len(OTHER_COLORS)]


def _label(row, primary: Optional[str]) -> str:
    return row["optimizer"] if primary is None or row["source"] == primary else f"{row['optimizer']} ({row['source']})"


def _line_style(row, primary: Optional[str]) -> str:
    return "-" if primary is None or row["source"] == primary else "--"


def _primary(rows: pd.DataFrame) -> Optional[str]:
    sources = list(dict.fromkeys(rows["source"]))
    return sources[0] if len(sources) > 1 else None


def _band(stats: dict, which: str):
    if which == "mean_and_std":
        return stats["mean"], stats["mean"] - stats["std"], stats["mean"] + stats["std"]
    return stats["median"], stats["lower_quartile"], stats["upper_quartile"]


def _robust_ylim(ax, values: list, metric: str) -> None:
    """Cut the untrained epoch-0 spike (DeepOBS uses the 20th/80th percentiles)."""
    data = np.concatenate([v[np.isfinite(v)] for v in values if v is not None and len(v)] or [np.array([])])
    if data.size < 2:
        return
    if is_accuracy(metric):
        low, high = np.percentile(data, 20) * 0.9, data.max()
    else:
        low, high = data.min(), np.percentile(data, 80) * 1.1
    with np.errstate(over="ignore", invalid="ignore"):
        pad = 0.05 * (high - low)
        limits = (low - pad, high + pad)
    if high > low and np.all(np.isfinite(limits)):  # values near the float limit: autoscale
        ax.set_ylim(*limits)


def _draw_curves(ax, rows: pd.DataFrame, metric: str, which: str, primary: Optional[str]) -> list:
    """Draw each setting's curve with its band and its diverged runs; return the values."""
    drawn = []
    for _, row in rows.iterrows():
        stats = row["curves"].get(metric)
        color = optimizer_color(row["optimizer"])
        if stats is not None:
            center, low, high = _band(stats, which)
            epochs = np.arange(len(center))
            ax.plot(epochs, center, _line_style(row, primary), color=color, label=_label(row, primary), lw=1.5)
            ax.fill_between(epochs, low, high, color=color, alpha=0.3 if _line_style(row, primary) == "-" else 0.12,
                            lw=0)
            drawn += [center, low, high]
        for curve in (row.get("diverged_curves") or {}).get(metric, []):
            ax.plot(np.arange(len(curve)), curve, ":", color=color, lw=1.0)
            if len(curve):
                ax.plot(len(curve) - 1, curve[-1], "x", color=DIVERGED_COLOR, ms=7, mew=2)
            drawn.append(curve)
    return drawn


def _diverged_handle() -> Line2D:
    return Line2D([], [], ls=":", color="grey", marker="x", mec=DIVERGED_COLOR, label="diverged run")


def plot_optimizer_performance(selected: pd.DataFrame, problem: str, which: str = "mean_and_std",
                               thresholds: Optional[dict] = None) -> Figure:
    """DeepOBS's 4-panel plot (test/train loss, test/train accuracy vs epochs) of the
    selected setting of every optimizer on one problem, baselines dashed. Problems
    without an accuracy (quadratic, VAEs) get the two loss panels only."""
    if which not in WHICH:
        raise ConfigurationError(f"unknown which {which!r}; allowed: {', '.join(WHICH)}")
    rows = selected[selected["problem"] == problem]
    if rows.empty:
        raise ConfigurationError(f"no selected settings for problem {problem!r}")
    primary = _primary(rows)
    panels = PANELS if any("test_accuracies" in r["curves"] for _, r in rows.iterrows()) else PANELS[:2]
    fig = Figure(figsize=(7, 2.5 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True)
    any_diverged = any((r.get("diverged_curves") or {}) for _, r in rows.iterrows())
    for ax, (metric, title) in zip(axes, panels):
        _performance_panel(ax, rows, metric, title, which, primary, thresholds, problem)
    axes[-1].set_xlabel("epoch")
    handles, labels = axes[0].get_legend_handles_labels()
    if any_diverged:
        handles.append(_diverged_handle())
    axes[0].legend(handles=handles, fontsize=8, loc="upper right")
    fig.suptitle(f"{problem}: selected settings ({'mean ± std' if which == 'mean_and_std' else 'median, quartiles'})")
    return fig


def _performance_panel(ax, rows, metric, title, which, primary, thresholds, problem) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(title)
    ax.grid(alpha=0.3)
    if not any(metric in r["curves"] for _, r in rows.iterrows()):
        ax.text(0.5, 0.5, f"{problem} has no accuracy", ha="center", va="center",
                transform=ax.transAxes, color="grey")
        ax.set_yticks([])
        return
    drawn = _draw_curves(ax, rows, metric, which, primary)
    if thresholds and metric == performance_metric(rows.iloc[0]) and problem in thresholds:
        ax.axhline(thresholds[problem], color="grey", lw=1, ls="-.", label="convergence threshold")
    _robust_ylim(ax, drawn, metric)


def plot_testset_performances(selected: pd.DataFrame, problems: Optional[Sequence[str]] = None,
                              which: str = "mean_and_std") -> Figure:
    """The 4 x n_problems grid of :func:`plot_optimizer_performance` panels."""
    problems = list(problems or sorted(selected["problem"].unique()))
    if not problems:
        raise ConfigurationError("no problems to plot")
    fig = Figure(figsize=(3.2 * len(problems) + 1, 9), layout="constrained")
    axes = np.asarray(fig.subplots(4, len(problems), squeeze=False))
    primary = _primary(selected)
    for column, problem in enumerate(problems):
        rows = selected[selected["problem"] == problem]
        for row_index, (metric, title) in enumerate(PANELS):
            ax = axes[row_index, column]
            _performance_panel(ax, rows, metric, title, which, primary, None, problem)
            if row_index == 0:
                ax.set_title(f"{problem}\n{title}", fontsize=10)
            if column:
                ax.set_ylabel("")
        axes[-1, column].set_xlabel("epoch")
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
               ncol=min(6, max(1, len(handles))), fontsize=9)
    return fig


def _setting_values(settings: pd.DataFrame, hyperparam: str) -> np.ndarray:
    values = [row["hyperparams"].get(hyperparam) for _, row in settings.iterrows()]
    if any(v is None for v in values):
        raise ConfigurationError(f"hyperparameter {hyperparam!r} missing in some settings; "
                                 f"present: {', '.join(sorted(settings.iloc[0]['hyperparams']))}")
    return np.asarray(values, dtype=float)


def _score(row, metric: str, mode: str) -> float:
    return row["best"].get(metric, np.nan) if mode == "best" else final_mean(row, metric)


def plot_hyperparameter_sensitivity(settings: pd.DataFrame, problem: str, hyperparam: str = "lr",
                                    mode: str = "final", metric: str = "valid_accuracies",
                                    xscale: str = "log", plot_std: bool = True) -> Figure:
    """The metric (final or best mean) vs one hyperparameter, per optimizer; every seed's
    final value as a marker with a min-max line; settings whose runs all diverged as red
    triangles on the lower edge."""
    rows = settings[settings["problem"] == problem]
    if rows.empty:
        raise ConfigurationError(f"no settings for problem {problem!r}")
    metric, note = resolve_metric(rows, metric, allow_test=True)
    primary = _primary(rows)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    diverged_x = []
    for (source, optimizer), group in rows.groupby(["source", "optimizer"], sort=True):
        group = group.assign(_x=_setting_values(group, hyperparam)).sort_values("_x")
        scores = np.array([_score(r, metric, mode) for _, r in group.iterrows()])
        color = optimizer_color(optimizer)
        first = group.iloc[0]
        ax.plot(group["_x"], scores, _line_style(first, primary), marker="o", ms=4, color=color,
                label=_label(first, primary))
        if plot_std:
            for x, (_, row) in zip(group["_x"], group.iterrows()):
                finals = row["finals"].get(metric, np.array([]))
                if len(finals) > 1:
                    ax.plot([x, x], [np.min(finals), np.max(finals)], color="grey", lw=1, alpha=0.7)
                    ax.plot(np.full(len(finals), x), finals, "x", color=color, ms=4, alpha=0.7)
        diverged_x += [x for x, (_, r) in zip(group["_x"], group.iterrows()) if r["n_used"] == 0]
    if diverged_x:
        ax.plot(diverged_x, np.zeros(len(diverged_x)), "v", color=DIVERGED_COLOR, ms=7,
                transform=ax.get_xaxis_transform(), clip_on=False, label="all runs diverged")
    ax.set_xscale(xscale)
    ax.set_xlabel(hyperparam)
    ax.set_ylabel(f"{mode} {metric_label(metric)}")
    ax.set_title(f"{problem}: sensitivity to {hyperparam}" + (f"\n({note})" if note else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_hyperparameter_sensitivity_2d(settings: pd.DataFrame, problem: str, optimizer: str,
                                       hyperparams: Sequence[str], mode: str = "final",
                                       metric: str = "valid_accuracies", xscale: str = "log",
                                       yscale: str = "linear") -> Figure:
    """The metric over two hyperparameters of one optimizer: a filled tricontour where
    the points allow one, with every setting as a coloured marker."""
    if len(hyperparams) != 2:
        raise ConfigurationError(f"give exactly two hyperparameters, got {list(hyperparams)}")
    rows = settings[(settings["problem"] == problem) & (settings["optimizer"] == optimizer)]
    if rows.empty:
        raise ConfigurationError(f"no settings for {optimizer} on {problem}")
    metric, note = resolve_metric(rows, metric, allow_test=True)
    x, y = (_setting_values(rows, name) for name in hyperparams)
    z = np.array([_score(r, metric, mode) for _, r in rows.iterrows()])
    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    ok = np.isfinite(z)
    tx = np.log10(x) if xscale == "log" else x
    ty = np.log10(y) if yscale == "log" else y
    spread = ok.sum() >= 3 and np.linalg.matrix_rank(np.c_[tx[ok] - tx[ok].mean(), ty[ok] - ty[ok].mean()]) == 2
    if spread:
        contour = ax.tricontourf(x[ok], y[ok], z[ok], levels=12, cmap="viridis", alpha=0.8)
        fig.colorbar(contour, ax=ax, label=f"{mode} {metric_label(metric)}")
    points = ax.scatter(x[ok], y[ok], c=z[ok], cmap="viridis", edgecolors="black", s=30, zorder=3)
    if not spread:
        fig.colorbar(points, ax=ax, label=f"{mode} {metric_label(metric)}")
    if (~ok).any():
        ax.scatter(x[~ok], y[~ok], marker="x", color=DIVERGED_COLOR, s=40, label="diverged", zorder=3)
        ax.legend(fontsize=8)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    ax.set_xlabel(hyperparams[0])
    ax.set_ylabel(hyperparams[1])
    ax.set_title(f"{problem}, {optimizer}" + (f" ({note})" if note else ""), fontsize=10)
    return fig


def plot_final_metric_vs_tuning_rank(settings: pd.DataFrame, problem: str, optimizer: str,
                                     metric: str = "valid_accuracies", mode: str = "final") -> Figure:
    """Every seed's final value and the mean vs the setting's tuning rank."""
    rows = settings[(settings["problem"] == problem) & (settings["optimizer"] == optimizer)]
    if rows.empty:
        raise ConfigurationError(f"no settings for {optimizer} on {problem}")
    first_source = rows["source"].iloc[0]
    ranked = rank_settings(rows[rows["source"] == first_source], mode, metric, allow_test=True)
    used = ranked.attrs["metric"]
    color = optimizer_color(optimizer)
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.subplots()
    for _, row in ranked.iterrows():
        finals = row["finals"].get(used, np.array([]))
        ax.plot(np.full(len(finals), row["rank"]), finals, "x", color=color, alpha=0.6)
    ax.plot(ranked["rank"], [final_mean(r, used) for _, r in ranked.iterrows()], "o-", color=color,
            label=f"{optimizer}: mean over seeds")
    ax.set_xlabel(f"tuning rank ({mode} {metric_label(used)})")
    ax.set_ylabel(f"final {metric_label(used)}")
    ax.set_title(f"{problem}, {optimizer}" + (f" ({ranked.attrs['note']})" if ranked.attrs["note"] else ""),
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(handles=ax.get_legend_handles_labels()[0] + [
        Line2D([], [], ls="", marker="x", color=color, label="one seed")], fontsize=8)
    return fig


def relative_performance(values: np.ndarray, metric: str) -> np.ndarray:
    """v1.1's relative performance: best/value for losses, value/best for accuracies."""
    values = np.asarray(values, float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full_like(values, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return values / finite.max() if is_accuracy(metric) else finite.min() / values


def plot_lr_sensitivity(settings: pd.DataFrame, problems: Optional[Sequence[str]] = None,
                        columns: int = 4) -> Figure:
    """v1.1's learning-rate sensitivity grid: relative final test performance vs lr per
    problem (test accuracy, or test loss for problems without one), log lr axis."""
    problems = list(problems or sorted(settings["problem"].unique()))
    rows_n = int(np.ceil(len(problems) / columns))
    fig = Figure(figsize=(3.3 * min(columns, len(problems)), 2.9 * rows_n + 0.6), layout="constrained")
    axes = np.asarray(fig.subplots(rows_n, min(columns, len(problems)), squeeze=False)).ravel()
    labels = {}
    for ax, problem in zip(axes, problems):
        rows = settings[settings["problem"] == problem]
        metric = performance_metric(rows.iloc[0])
        primary = _primary(rows)
        for (source, optimizer), group in rows.groupby(["source", "optimizer"], sort=True):
            group = group[group["lr"].notna()].sort_values("lr")
            relative = relative_performance([final_mean(r, metric) for _, r in group.iterrows()], metric)
            line, = ax.plot(group["lr"].astype(float), relative, _line_style(group.iloc[0], primary),
                            marker=".", color=optimizer_color(optimizer))
            labels.setdefault(_label(group.iloc[0], primary), line)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_title(problem, fontsize=10)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"relative {metric_label(metric)}")
        ax.grid(alpha=0.3)
    for ax in axes[len(problems):]:
        ax.set_visible(False)
    fig.legend(list(labels.values()), list(labels.keys()), loc="outside lower center",
               ncol=min(6, len(labels)), fontsize=9)
    return fig


def plot_performance_profiles(profile: pd.DataFrame, scores: Optional[pd.Series] = None,
                              title: str = "Performance profiles") -> Figure:
    """rho(tau) per optimizer (AlgoPerf): the fraction of problems solved within tau times
    the fastest; the legend gives the integrated score."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for optimizer in profile.columns:
        label = optimizer if scores is None else f"{optimizer} (score {scores[optimizer]:.3f})"
        # "Adam (deepobs-1.1)": Adam's colour, dashed like every baseline.
        base, _, source = str(optimizer).partition(" (")
        ax.step(profile.index, profile[optimizer], "--" if source else "-", where="post",
                color=optimizer_color(base), label=label, lw=1.8)
    ax.set_xlabel("τ (time / fastest time)")
    ax.set_ylabel("ρ(τ) (fraction of problems)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def save_figure(fig: Figure, stem, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> list:
    """Write ``stem.png`` / ``stem.pdf`` (and any other format) and return the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
