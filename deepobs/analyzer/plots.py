"""Paper figures from setting tables (reference §4.1): performance vs baselines, the
test-set grid, hyperparameter sensitivity, tuning rank, v1.1 lr sensitivity, and
performance profiles. Uses matplotlib's object API (no pyplot state, no display).

Conventions of every figure: the user's runs are solid, thick and marked, each with its
own colour shade and marker; baselines are dashed and lighter. Legends sit below the
axes and are checked to fit inside the figure. A diverged run (the rule of
:mod:`deepobs.analyzer.divergence`) is never scaled into an axis: it is a marker on the
axis edge (top for losses, bottom for accuracies) whose legend entry says whose it is.
Bands are clipped where the metric cannot go (losses >= 0, accuracies in [0, 1]).
"""

from __future__ import annotations

import textwrap
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from deepobs.analyzer.aggregate import (
    final_mean, is_accuracy, performance_metric, rank_settings, resolve_metric,
)
from deepobs.analyzer.divergence import LOSS_BOUND
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
WARNING_COLOR = "#b00020"
#: Line styles: the user's runs in front, solid and marked; baselines dashed and lighter.
OURS_STYLE = {"ls": "-", "lw": 2.0, "alpha": 1.0, "zorder": 4}
BASELINE_STYLE = {"ls": "--", "lw": 1.3, "alpha": 0.6, "zorder": 2}
OURS_MARKERS = ("o", "s", "D", "P", "X", "*")
#: The x axis of a performance plot is cut to the user's epochs when baselines run
#: more than this many times longer (else the user's curves are a sliver).
EPOCH_RATIO_CUT = 2.0


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


def new_figure(**kwargs) -> Figure:
    """A constrained-layout figure with an Agg canvas (so legends can be measured)."""
    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _is_ours(row, primary: Optional[str]) -> bool:
    return primary is None or row["source"] == primary


def _label(row, primary: Optional[str]) -> str:
    return row["optimizer"] if _is_ours(row, primary) else f"{row['optimizer']} ({row['source']})"


def _line_style(row, primary: Optional[str]) -> str:
    return "-" if _is_ours(row, primary) else "--"


def _primary(rows: pd.DataFrame) -> Optional[str]:
    sources = list(dict.fromkeys(rows["source"]))
    return sources[0] if len(sources) > 1 else None


def _shade(color: str, index: int) -> str:
    """The ``index``-th shade of a colour (0: itself; then darker), for the user's curves
    that share an optimizer's colour (e.g. one optimizer under two protocols)."""
    if index == 0:
        return color
    factor = 0.6 ** index
    return to_hex(tuple(c * factor for c in to_rgb(color)))


class _Look:
    """Colour, style and marker of every curve of one figure, by legend label."""

    def __init__(self):
        self.colors, self.markers, self._shades, self._shade_of = {}, {}, {}, {}

    def new_panel(self) -> None:
        """Start a new panel: shades count again from the optimizer's own colour (a label
        already seen keeps its look, so one legend serves every panel)."""
        self._shades = {}

    def style(self, label: str, optimizer: str, ours: bool) -> dict:
        """Keyword arguments for ``ax.plot`` of the curve called ``label``."""
        if label not in self.colors:
            base = optimizer_color(optimizer)
            if ours:
                shade = self._shades.get(base, 0)
                self._shades[base] = shade + 1
                self._shade_of[label] = shade
                self.colors[label] = _shade(base, shade)
                self.markers[label] = OURS_MARKERS[len(self.markers) % len(OURS_MARKERS)]
            else:
                self.colors[label] = base
        style = dict(OURS_STYLE if ours else BASELINE_STYLE, color=self.colors[label], label=label)
        if ours:
            # Later curves thinner, with smaller markers, drawn on top: where two of the
            # user's curves coincide, both stay visible (a ring inside a ring).
            index = self._shade_of[label]
            style.update(marker=self.markers[label], ms=max(3.5, 7.5 - 1.3 * index),
                         lw=max(1.0, 2.6 - 0.5 * index), zorder=4 + index)
        return style


def _clip_to_domain(values: np.ndarray, metric: str) -> np.ndarray:
    """Losses cannot go below 0, accuracies not outside [0, 1] (std bands can)."""
    return np.clip(values, 0.0, 1.0) if is_accuracy(metric) else np.clip(values, 0.0, None)


def _band(stats: dict, which: str, metric: str = "train_losses"):
    if which == "mean_and_std":
        center, low, high = stats["mean"], stats["mean"] - stats["std"], stats["mean"] + stats["std"]
    else:
        center, low, high = stats["median"], stats["lower_quartile"], stats["upper_quartile"]
    if not is_accuracy(metric) and np.nanmin(center, initial=0.0) < 0:
        return center, low, high  # a loss that goes below 0 (the 2-D problems' noise term)
    return center, _clip_to_domain(low, metric), _clip_to_domain(high, metric)


def _finite(arrays) -> np.ndarray:
    arrays = [np.asarray(a, float) for a in arrays if a is not None and len(a)]
    data = np.concatenate(arrays) if arrays else np.array([])
    return data[np.isfinite(data)]


#: A loss axis turns logarithmic when the user's curves reach this many times its smallest
#: value (symmetric-logarithmic when losses also go below 0).
LOG_SPAN = 100


def _set_ylim(ax, ours: list, baselines: list, metric: str) -> None:
    """Fit the user's values entirely and the baselines' bulk (cut at their 80th/20th
    percentile, as DeepOBS cuts the untrained spike), with a margin, inside the metric's
    domain; a positive loss spanning more than :data:`LOG_SPAN` gets a log axis."""
    mine, theirs = _finite(ours), _finite(baselines)
    if mine.size + theirs.size == 0:
        return
    every = np.concatenate([mine, theirs])
    if not is_accuracy(metric) and mine.size:
        # A loss spanning more than two decades (a spike of a selected setting): on a linear
        # axis every other curve would lie flat on its floor; a log axis shows them all.
        high = max([mine.max()] + ([np.percentile(theirs, 80)] if theirs.size else []))
        if every.min() > 0 and mine.max() > LOG_SPAN * every.min():
            ax.set_yscale("log")
            ax.set_ylim(every.min() / 1.2, high * 1.2)
            return
        # The same for a loss that also goes below 0 (the 2-D problems' noise term): linear
        # from the lowest value up to the next power of ten above its size, logarithmic beyond.
        near_zero = 10.0 ** np.ceil(np.log10(-every.min())) if every.min() < 0 else 0.0
        if near_zero > 0 and mine.max() > LOG_SPAN * near_zero:
            ax.set_yscale("symlog", linthresh=near_zero)
            ax.set_ylim(every.min() - 0.2 * near_zero, high * 1.2)
            return
    if is_accuracy(metric):
        high = every.max()
        low = min(([mine.min()] if mine.size else []) + ([np.percentile(theirs, 20)] if theirs.size else []))
    else:
        low = every.min()
        high = max(([mine.max()] if mine.size else []) + ([np.percentile(theirs, 80)] if theirs.size else []))
    with np.errstate(over="ignore", invalid="ignore"):
        pad = 0.06 * (high - low) if high > low else 0.05 * max(abs(high), 1e-3)
        low, high = low - pad, high + pad
    if not (np.isfinite(low) and np.isfinite(high)):  # values near the float limit: autoscale
        return
    if is_accuracy(metric):
        low, high = max(low, -0.02), min(high, 1.02)
    elif every.min() >= 0:
        low = max(low, 0.0)
    ax.set_ylim(low, high)


def edge_markers(ax, xs, metric: str, color: str, label: str, ours: bool = True) -> None:
    """Diverged settings or runs at ``xs``: triangles on the axis edge a value beyond the
    scale would be at (top for losses, bottom for accuracies), filled for the user's runs,
    hollow for baselines; ``label`` says whose they are."""
    if not len(xs):
        return
    top = not is_accuracy(metric)
    # Each further set of markers on this axes edge sits a step further in, so that
    # several optimizers diverging at the same learning rates stay visible.
    row = getattr(ax, "_deepobs_edge_rows", 0)
    ax._deepobs_edge_rows = row + 1
    step = 0.045 * row
    ax.plot(list(xs), [1.0 - step if top else step] * len(xs), "^" if top else "v", ls="",
            transform=ax.get_xaxis_transform(), clip_on=False, ms=8, mew=1.5, mec=color,
            mfc=color if ours else "white", label=label, zorder=7 if ours else 6)


def fit_legend(fig: Figure, handles: list, labels: list, max_columns: int = 4, fontsize: float = 8,
               warning: str = ""):
    """A figure legend below the axes with as many columns (at most ``max_columns``) as
    fit inside the figure's width; a ``warning`` is its title, in red. Returns it."""
    legend = None
    title = None
    if warning:
        title = "\n".join(textwrap.wrap("⚠ " + warning, _characters(fig, fontsize + 1)))
    # Start from the columns the text's width allows (each measure is a layout pass).
    longest = max((len(label) for label in labels), default=1) + 6
    start = max(1, min(max_columns, len(labels), _characters(fig, fontsize) // longest))
    def place(columns):
        nonlocal legend
        if legend is not None:
            legend.remove()
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=columns, fontsize=fontsize,
                            title=title, title_fontsize=fontsize + 1)
        if title:
            legend.get_title().set_color(WARNING_COLOR)
        return legends_fit(fig)

    if any(place(columns) for columns in range(start, 0, -1)):
        return legend
    # Too many entries for the figure (several baseline sets): make the figure taller by
    # the legend's height, so that the legend sits below the axes, not over them.
    for _ in range(3):
        renderer = fig.canvas.get_renderer()
        grow = legend.get_window_extent(renderer).height / fig.dpi + 0.3
        fig.set_figheight(fig.get_figheight() + grow)
        if place(start):
            break
    return legend


def _characters(fig: Figure, fontsize: float) -> int:
    """About how many characters of text at ``fontsize`` fit in the figure's width."""
    return max(30, int(0.9 * fig.get_figwidth() * 72 / (0.6 * fontsize)))


def legends_fit(fig: Figure, redraw: bool = True) -> bool:
    """Whether every legend of ``fig`` (figure and axes legends) lies inside the figure, and
    no figure legend reaches into the axes.
    ``redraw=False`` measures the last drawn layout (e.g. right after ``savefig``)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
        redraw = True
    if redraw:
        fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.get_axes() if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1 or box.y0 < frame.y0 - 1 or box.y1 > frame.y1 + 1:
            return False
    # A legend below the axes must not reach into them (it would hide curves).
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    for legend in fig.legends:
        if axes and legend.get_window_extent(renderer).y1 > min(ax.get_window_extent(renderer).y0 for ax in axes) + 1:
            return False
    return True


def _unique_handles(axes) -> tuple:
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return list(handles.values()), list(handles.keys())


def protocol_mismatch(rows: pd.DataFrame, primary: Optional[str] = None) -> str:
    """A one-line warning when the user's runs and the baselines among ``rows`` differ in
    protocol, number of epochs or batch size; '' when they do not (or there are no
    baselines). ``primary`` is the user's source (default: the first one)."""
    primary = primary or _primary(rows)
    if primary is None:
        return ""
    ours, theirs = rows[rows["source"] == primary], rows[rows["source"] != primary]
    if ours.empty or theirs.empty:
        return ""
    parts = []
    for column, name in (("protocol", "protocol"), ("num_epochs", "epochs"), ("batch_size", "batch size")):
        mine = sorted({str(v) for v in ours[column]}, key=_natural)
        other = sorted({str(v) for v in theirs[column]}, key=_natural)
        if mine != other:
            parts.append(f"{name} {'/'.join(mine)} vs {'/'.join(other)}")
    return ("your runs and the baselines differ: " + "; ".join(parts)) if parts else ""


def _natural(text: str):
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _epoch_limit(rows: pd.DataFrame, primary: Optional[str]) -> Optional[int]:
    """The user's longest run in epochs, when the baselines run much longer (the x axis
    is then cut there, and the figure says so); else None."""
    if primary is None:
        return None
    ours = rows[rows["source"] == primary]["num_epochs"]
    theirs = rows[rows["source"] != primary]["num_epochs"]
    if ours.empty or theirs.empty or theirs.max() <= EPOCH_RATIO_CUT * ours.max():
        return None
    return int(ours.max())


def _fill_bands(ax, bands: list) -> None:
    """Shade each curve's band once the y scale is known. On a log axis a band whose lower
    edge is at or below 0 (std above the mean) cannot be drawn down to its edge: only its
    upper half (curve to upper edge) is shaded there, instead of a block to the axis floor
    (on a symlog axis likewise where the curve itself is above 0)."""
    logarithmic = ax.get_yscale() in ("log", "symlog")
    for epochs, center, low, high, style in bands:
        if logarithmic:  # a curve below 0 (symlog only) keeps its band
            low = np.where((low > 0) | (center <= 0), low, center)
        ax.fill_between(epochs, low, high, lw=0, **style)


def _draw_curves(ax, rows: pd.DataFrame, metric: str, which: str, primary: Optional[str],
                 look: _Look, last_epoch: Optional[int] = None) -> tuple:
    """Draw each setting's curve and its diverged runs; return the visible curve values of
    the user's runs and of the baselines (for the y range) and the bands to shade
    (:func:`_fill_bands`, after the y scale is set)."""
    ours, theirs, bands = [], [], []
    for _, row in rows.iterrows():
        stats = row["curves"].get(metric)
        mine = _is_ours(row, primary)
        style = look.style(_label(row, primary), row["optimizer"], mine)
        color = style["color"]
        if stats is not None:
            center, low, high = _band(stats, which, metric)
            epochs = np.arange(len(center))
            if mine:
                # Markers of curves that lie on top of each other (equal losses) at
                # different epochs, so that each curve stays visible.
                every = max(1, len(center) // 12)
                style["markevery"] = ((3 * len(bands)) % every, every)
            ax.plot(epochs, center, **style)
            bands.append((epochs, center, low, high,
                          dict(color=color, alpha=0.25 if mine else 0.1, zorder=style["zorder"] - 1)))
            # The y range ignores the untrained epoch 0, what lies beyond the x axis and
            # (with --include-diverged) a mean blown up past the divergence bound.
            stop = None if last_epoch is None else last_epoch + 1
            visible = center[1:stop] if len(center) > 1 else center
            if not is_accuracy(metric) and np.isfinite(center[0]) and center[0] > 0:
                visible = visible[visible <= LOSS_BOUND * center[0]]
            (ours if mine else theirs).append(visible)
        diverged = (row.get("diverged_curves") or {}).get(metric, [])
        for curve in diverged:
            ax.plot(np.arange(len(curve)), curve, ":", color=color, lw=1.0)
        edge_markers(ax, [len(curve) for curve in diverged], metric, color,
                     f"{style['label']}: diverged run", mine)
    return ours, theirs, bands


def _diverged_handle() -> Line2D:
    return Line2D([], [], ls=":", color="grey", marker="^", mec=DIVERGED_COLOR, label="diverged run")


def plot_optimizer_performance(selected: pd.DataFrame, problem: str, which: str = "mean_and_std",
                               thresholds: Optional[dict] = None) -> Figure:
    """DeepOBS's 4-panel plot (test/train loss, test/train accuracy vs epochs) of the
    selected setting of every optimizer on one problem, baselines dashed. Problems
    without an accuracy (quadratic, VAEs) get the two loss panels only. When the user's
    runs and the baselines differ in protocol, epochs or batch size the figure says so,
    and when the baselines run much longer the x axis stops at the user's last epoch."""
    if which not in WHICH:
        raise ConfigurationError(f"unknown which {which!r}; allowed: {', '.join(WHICH)}")
    rows = selected[selected["problem"] == problem]
    if rows.empty:
        raise ConfigurationError(f"no selected settings for problem {problem!r}")
    primary = _primary(rows)
    panels = PANELS if any("test_accuracies" in r["curves"] for _, r in rows.iterrows()) else PANELS[:2]
    fig = new_figure(figsize=(7, 2.4 * len(panels) + 1.0))
    axes = fig.subplots(len(panels), 1, sharex=True)
    look, last_epoch = _Look(), _epoch_limit(rows, primary)
    for ax, (metric, title) in zip(axes, panels):
        _performance_panel(ax, rows, metric, title, which, primary, thresholds, problem, look, last_epoch)
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if last_epoch is not None:
        axes[-1].set_xlim(-0.02 * last_epoch, last_epoch * 1.02)
    warning = protocol_mismatch(rows, primary)
    if warning and last_epoch is not None:
        warning += f" (x axis cut at your {last_epoch} epochs)"
    fit_legend(fig, *_unique_handles(axes), max_columns=3, warning=warning)
    fig.suptitle(f"{problem}: selected settings ({'mean ± std' if which == 'mean_and_std' else 'median, quartiles'})")
    return fig


def _performance_panel(ax, rows, metric, title, which, primary, thresholds, problem,
                       look: Optional[_Look] = None, last_epoch: Optional[int] = None) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(title)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not any(metric in r["curves"] for _, r in rows.iterrows()):
        ax.text(0.5, 0.5, f"{problem} has no accuracy", ha="center", va="center",
                transform=ax.transAxes, color="grey")
        ax.set_yticks([])
        return
    ours, theirs, bands = _draw_curves(ax, rows, metric, which, primary, look or _Look(), last_epoch)
    if thresholds and metric == performance_metric(rows.iloc[0]) and problem in thresholds:
        ax.axhline(thresholds[problem], color="grey", lw=1, ls="-.", label="convergence threshold")
        ours.append(np.array([thresholds[problem]]))  # keep the threshold in view
    _set_ylim(ax, ours, theirs, metric)
    _fill_bands(ax, bands)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_testset_performances(selected: pd.DataFrame, problems: Optional[Sequence[str]] = None,
                              which: str = "mean_and_std") -> Figure:
    """The 4 x n_problems grid of :func:`plot_optimizer_performance` panels."""
    problems = list(problems or sorted(selected["problem"].unique()))
    if not problems:
        raise ConfigurationError("no problems to plot")
    fig = new_figure(figsize=(3.2 * len(problems) + 1, 10))
    axes = np.asarray(fig.subplots(4, len(problems), squeeze=False))
    primary = _primary(selected)
    look = _Look()
    warnings = []
    for column, problem in enumerate(problems):
        rows = selected[selected["problem"] == problem]
        last_epoch = _epoch_limit(rows, primary)
        look.new_panel()
        for row_index, (metric, title) in enumerate(PANELS):
            ax = axes[row_index, column]
            _performance_panel(ax, rows, metric, title, which, primary, None, problem, look, last_epoch)
            if last_epoch is not None:
                ax.set_xlim(-0.02 * last_epoch, last_epoch * 1.02)
            if row_index == 0:
                ax.set_title(f"{problem}\n{title}", fontsize=10)
            if column:
                ax.set_ylabel("")
        axes[-1, column].set_xlabel("epoch")
        axes[-1, column].xaxis.set_major_locator(MaxNLocator(integer=True))
        mismatch = protocol_mismatch(rows, primary)
        if mismatch:
            warnings.append(f"{problem}: {mismatch.split(': ', 1)[1]}")
    fit_legend(fig, *_unique_handles(axes.flat), max_columns=6, fontsize=9,
               warning=("your runs and the baselines differ: " + " | ".join(warnings)) if warnings else "")
    return fig


def _setting_values(settings: pd.DataFrame, hyperparam: str) -> np.ndarray:
    values = [row["hyperparams"].get(hyperparam) for _, row in settings.iterrows()]
    if any(v is None for v in values):
        raise ConfigurationError(f"hyperparameter {hyperparam!r} missing in some settings; "
                                 f"present: {', '.join(sorted(settings.iloc[0]['hyperparams']))}")
    return np.asarray(values, dtype=float)


def _score(row, metric: str, mode: str) -> float:
    return row["best"].get(metric, np.nan) if mode == "best" else final_mean(row, metric)


def _off_scale(values: np.ndarray, metric: str) -> np.ndarray:
    """Values no axis is scaled to: not finite, or (losses) above LOSS_BOUND x the
    smallest value shown: a blow-up the per-run rule could not see (e.g. baselines
    stored without their curves)."""
    values = np.asarray(values, float)
    bad = ~np.isfinite(values)
    if not is_accuracy(metric) and (~bad).any():
        floor = np.min(np.abs(values[~bad]))
        if floor > 0:
            bad |= np.where(bad, False, values > LOSS_BOUND * floor)
    return bad


def _all_diverged(settings: pd.DataFrame) -> np.ndarray:
    """Per setting: whether every one of its runs diverged."""
    return (settings["n_diverged"] >= settings["n_runs"]).to_numpy(bool)


def _protocol_labels(rows: pd.DataFrame, primary: Optional[str]) -> dict:
    """(source, optimizer, protocol) -> legend label; ``[protocol p]`` is added where one
    optimizer of one source has settings under several protocols."""
    labels = {}
    for (source, optimizer), group in rows.groupby(["source", "optimizer"], sort=True):
        protocols = sorted(group["protocol"].astype(str).unique())
        for protocol in protocols:
            base = _label(group.iloc[0], primary)
            labels[(source, optimizer, protocol)] = base + (f" [protocol {protocol}]" if len(protocols) > 1 else "")
    return labels


def _split_by_other_hyperparams(group: pd.DataFrame, hyperparam: str) -> list:
    """``[(label suffix, rows)]``: the settings split by the values of the other
    hyperparameters that vary among them (``" (momentum=0.9)"``), so that one line
    joins only settings that differ in ``hyperparam``."""
    names = sorted({k for hp in group["hyperparams"] for k in hp if k != hyperparam})
    varying = [n for n in names if len({repr(hp.get(n)) for hp in group["hyperparams"]}) > 1]
    if not varying:
        return [("", group)]
    keys = [tuple(repr(hp.get(n)) for n in varying) for hp in group["hyperparams"]]
    out = []
    for key in sorted(set(keys), key=lambda k: [_natural(v) for v in k]):
        rows = group[[k == key for k in keys]]
        values = rows.iloc[0]["hyperparams"]
        out.append((" (" + ", ".join(f"{n}={values.get(n)}" for n in varying) + ")", rows))
    return out


def plot_hyperparameter_sensitivity(settings: pd.DataFrame, problem: str, hyperparam: str = "lr",
                                    mode: str = "final", metric: str = "valid_accuracies",
                                    xscale: str = "log", plot_std: bool = True) -> Figure:
    """The metric (final or best mean) vs one hyperparameter, per optimizer (and
    protocol); every seed's final value as a marker with a min-max line; settings whose
    runs all diverged as triangles on the axis edge, labelled with whose they are.
    Optimizers without the metric (e.g. protocol-1.1 baselines have no validation split)
    are left out and named under the title. ``fig.deepobs_metric`` is the metric drawn."""
    rows = settings[settings["problem"] == problem]
    if rows.empty:
        raise ConfigurationError(f"no settings for problem {problem!r}")
    metric, note = resolve_metric(rows, metric, allow_test=True)
    primary = _primary(rows)
    names = _protocol_labels(rows, primary)
    fig = new_figure(figsize=(7, 5))
    ax = fig.subplots()
    look, lacking, drawn = _Look(), [], []
    groups = sorted(rows.groupby(["source", "optimizer", "protocol"], sort=True),
                    key=lambda item: item[0][0] != (primary or item[0][0]))  # the user's runs first
    for (source, optimizer, protocol), group in groups:
        label = names[(source, optimizer, str(protocol))]
        if not any(metric in r["finals"] for _, r in group.iterrows()):
            lacking.append(label)
            continue
        # One line per value of the other hyperparameters that vary (e.g. momentum).
        for suffix, line in _split_by_other_hyperparams(group, hyperparam):
            line = line.assign(_x=_setting_values(line, hyperparam)).sort_values("_x", kind="stable")
            scores = np.array([_score(r, metric, mode) for _, r in line.iterrows()])
            drawn.append((label + suffix, optimizer, _is_ours(line.iloc[0], primary), line, scores))
    everything = np.concatenate([d[4] for d in drawn]) if drawn else np.array([])
    off = _off_scale(everything, metric)
    if drawn:  # a setting whose runs all diverged is one even when --include-diverged averaged them
        off |= np.concatenate([_all_diverged(d[3]) for d in drawn])
    start, shown = 0, [everything[~off]]
    for label, optimizer, mine, group, scores in drawn:
        bad = off[start:start + len(scores)]
        start += len(scores)
        style = look.style(label, optimizer, mine)
        ax.plot(group["_x"][~bad], scores[~bad], **style)
        if plot_std:
            for x, (_, row), skip in zip(group["_x"], group.iterrows(), bad):
                finals = row["finals"].get(metric, np.array([]))
                if len(finals) > 1 and not skip:
                    ax.plot([x, x], [np.min(finals), np.max(finals)], color="grey", lw=1, alpha=0.7)
                    ax.plot(np.full(len(finals), x), finals, "x", color=style["color"], ms=4, alpha=0.7)
                    shown.append(np.asarray(finals, float))
        edge_markers(ax, list(group["_x"][bad]), metric, style["color"], f"{label}: all runs diverged", mine)
    _set_ylim(ax, shown, [], metric)
    ax.set_xscale(xscale)
    ax.set_xlabel(hyperparam)
    ax.set_ylabel(f"{mode} {metric_label(metric)}")
    # The metric is on the y axis (a fallback is noted once, in the report); what could
    # not be drawn is said here, wrapped to the figure's width.
    title = f"{problem}: {mode} {metric_label(metric)} vs {hyperparam}"
    if lacking:
        title += "\n" + "\n".join(textwrap.wrap(f"(not shown, no {metric_label(metric)}: {', '.join(lacking)})",
                                                _characters(fig, 10)))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fit_legend(fig, handles, labels, max_columns=3)
    fig.deepobs_metric = metric
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
    fig = new_figure(figsize=(6, 4.8))
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
        ax.scatter(x[~ok], y[~ok], marker="x", color=DIVERGED_COLOR, s=40,
                   label=f"{optimizer}: all runs diverged", zorder=3)
        fit_legend(fig, *ax.get_legend_handles_labels(), max_columns=2)
    ax.set_xscale(xscale)
    ax.set_yscale(yscale)
    # Room around the outer settings, so their markers are not cut by the frame.
    for values, scale, setter in ((x, xscale, ax.set_xlim), (y, yscale, ax.set_ylim)):
        low, high = np.min(values), np.max(values)
        if scale == "log" and low > 0:
            factor = (high / low) ** 0.05 if high > low else 1.5
            setter(low / factor, high * factor)
        else:
            pad = 0.05 * (high - low) if high > low else 0.5 * max(abs(high), 1.0)
            setter(low - pad, high + pad)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(hyperparams[0])
    ax.set_ylabel(hyperparams[1])
    ax.set_title(f"{problem}, {optimizer}" + (f" ({note})" if note else ""), fontsize=10)
    fig.deepobs_metric = metric
    return fig


def plot_final_metric_vs_tuning_rank(settings: pd.DataFrame, problem: str, optimizer: str,
                                     metric: str = "valid_accuracies", mode: str = "final") -> Figure:
    """The value each setting was ranked on (its tuning seeds' mean, the rule of
    :mod:`deepobs.analyzer.selection`), every seed's final value and the mean over all
    seeds, vs the setting's tuning rank; settings whose tuning runs diverged as triangles
    on the axis edge. Settings without the metric (another protocol) are left out."""
    rows = settings[(settings["problem"] == problem) & (settings["optimizer"] == optimizer)]
    if rows.empty:
        raise ConfigurationError(f"no settings for {optimizer} on {problem}")
    rows = rows[rows["source"] == rows["source"].iloc[0]]
    used, _ = resolve_metric(rows, metric, allow_test=True)
    rows = rows[[used in r["finals"] for _, r in rows.iterrows()]]
    ranked = rank_settings(rows, mode, used, allow_test=True)
    seeds = ranked.attrs["tuning_seeds"]
    color = optimizer_color(optimizer)
    fig = new_figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for _, row in ranked.iterrows():
        finals = row["finals"].get(used, np.array([]))
        ax.plot(np.full(len(finals), row["rank"]), finals, "x", color=color, alpha=0.6)
    scores = ranked["score"].to_numpy(float)
    off = _off_scale(scores, used) | _all_diverged(ranked)
    what = (f"seed {', '.join(map(str, seeds))}" if seeds else "mean over its seeds")
    ax.plot(ranked["rank"][~off], scores[~off], "o-", color=color, lw=2, label=f"{optimizer}: ranked on {what}")
    means = np.array([final_mean(r, used) for _, r in ranked.iterrows()])
    if not np.allclose(means[~off], scores[~off], equal_nan=True):
        ax.plot(ranked["rank"][~off], means[~off], "s", mfc="none", mec=color, ms=9, zorder=1,
                label=f"{optimizer}: mean over all seeds")
    edge_markers(ax, list(ranked["rank"][off]), used, color, f"{optimizer}: tuning run diverged")
    _set_ylim(ax, [scores[~off], means[~off]] + [r["finals"].get(used) for _, r in ranked[~off].iterrows()], [],
              used)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"tuning rank ({mode} {metric_label(used)})")
    ax.set_ylabel(f"{mode} {metric_label(used)}")
    ax.set_title(f"{problem}, {optimizer}", fontsize=10)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], ls="", marker="x", color=color, label="one seed"))
    fit_legend(fig, handles, labels + ["one seed"], max_columns=2)
    fig.deepobs_metric = used
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
    problem (test accuracy, or test loss for problems without one), log lr axis; the
    user's runs solid and marked, baselines dashed; settings whose runs all diverged as
    triangles on the lower edge."""
    problems = list(problems or sorted(settings["problem"].unique()))
    rows_n = int(np.ceil(len(problems) / columns))
    width = max(5.0, 3.3 * min(columns, len(problems)))
    fig = new_figure(figsize=(width, 2.9 * rows_n + 1.4))
    axes = np.asarray(fig.subplots(rows_n, min(columns, len(problems)), squeeze=False)).ravel()
    look = _Look()
    for ax, problem in zip(axes, problems):
        rows = settings[(settings["problem"] == problem) & settings["lr"].notna()]
        metric = performance_metric(rows.iloc[0])
        look.new_panel()
        primary = _primary(rows)
        names = _protocol_labels(rows, primary)
        groups = sorted(rows.groupby(["source", "optimizer", "protocol"], sort=True),
                        key=lambda item: item[0][0] != (primary or item[0][0]))  # the user's runs first
        for (source, optimizer, protocol), whole in groups:
            mine = _is_ours(whole.iloc[0], primary)
            # Relative to the optimizer's best setting; one line per value of the other
            # hyperparameters that vary (e.g. momentum), so a line joins only lrs.
            best = relative_performance([final_mean(r, metric) for _, r in whole.iterrows()], metric)
            best = dict(zip(whole.index, best))
            for suffix, group in _split_by_other_hyperparams(whole, "lr"):
                group = group.sort_values("lr", kind="stable")
                style = look.style(names[(source, optimizer, str(protocol))] + suffix, optimizer, mine)
                values = np.array([final_mean(r, metric) for _, r in group.iterrows()])
                diverged = _all_diverged(group) | ~np.isfinite(values)
                relative = np.where(diverged, np.nan, [best[index] for index in group.index])
                lrs = group["lr"].astype(float).to_numpy()
                style = dict(style, ms=4) if mine else dict(style, marker=".")
                ax.plot(lrs, relative, **style)
                edge_markers(ax, list(lrs[diverged]), "test_accuracies", style["color"],
                             f"{style['label']}: all runs diverged", mine)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_title(problem, fontsize=10)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"relative {metric_label(metric)}")
        ax.grid(alpha=0.3)
    for ax in axes[len(problems):]:
        ax.set_visible(False)
    handles, labels = _unique_handles(axes[:len(problems)])
    fit_legend(fig, handles, labels, max_columns=4, fontsize=8)
    return fig


def plot_performance_profiles(profile: pd.DataFrame, scores: Optional[pd.Series] = None,
                              title: str = "Performance profiles", warning: str = "") -> Figure:
    """rho(tau) per optimizer (AlgoPerf): the fraction of problems solved within tau times
    the fastest; the legend gives the integrated score. Names with a source in
    parentheses (``Adam (deepobs-1.1)``) are baselines: dashed and lighter. ``warning``
    (e.g. from :func:`protocol_mismatch`) is shown in red above the legend."""
    fig = new_figure(figsize=(6, 4.6))
    ax = fig.subplots()
    look = _Look()
    for optimizer in profile.columns:
        label = optimizer if scores is None else f"{optimizer} (score {scores[optimizer]:.3f})"
        base, _, source = str(optimizer).partition(" (")
        style = look.style(label, base, not source)
        if not source:
            style["markevery"] = max(1, len(profile.index) // 10)
        style["lw"] = style["lw"] + (0.6 if not source else 0)
        ax.step(profile.index, profile[optimizer], where="post", **style)
    ax.set_xlabel("τ (time / fastest time)")
    ax.set_ylabel("ρ(τ) (fraction of problems)")
    ax.set_ylim(-0.04, 1.04)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fit_legend(fig, *ax.get_legend_handles_labels(), max_columns=2, warning=warning)
    return fig


def plain_log_ticks(fig: Figure) -> None:
    """Log- and symlog-scaled axes labelled ``1e-05``, ``1``, ``100`` in plain text: the report draws
    text without math (names from files may hold ``$``), and matplotlib's default log
    labels are math (``$\\mathdefault{10^{-5}}$``), which would then show raw."""
    from matplotlib.ticker import LogFormatter, NullFormatter

    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale in ("log", "symlog"):
                axis.set_major_formatter(LogFormatter(labelOnlyBase=True))
                axis.set_minor_formatter(NullFormatter())


def save_figure(fig: Figure, stem, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> list:
    """Write ``stem.png`` / ``stem.pdf`` (and any other format) and return the paths."""
    plain_log_ticks(fig)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
