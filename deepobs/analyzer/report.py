"""One results tree (plus baselines) -> figures (PNG, PDF), tables (Markdown, LaTeX,
HTML) and a self-contained report.html (images inlined, no scripts, works offline)."""

from __future__ import annotations

import base64
import html
import os
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from deepobs.analyzer import plots, tables
from deepobs.analyzer.aggregate import SETTING_KEYS, aggregate, select_best
from deepobs.analyzer.baselines import SHIPPED, load_baselines
from deepobs.analyzer.loading import check_output, config_hash_conflicts, load_results
from deepobs.analyzer.measures import (
    R_MAX, convergence_performance, performance_profile, performance_ratios, profile_score,
    time_to_target_table,
)
from deepobs.errors import ConfigurationError, DataError
from deepobs.safe_names import bounded_component, join_under, printable, quoted, writable_folder
from deepobs.version import __version__


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    html_path: Path
    figures: list = field(default_factory=list)
    tables: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    #: Figure name -> whether all its legends lie inside it (checked when saved).
    legends_fit: dict = field(default_factory=dict)


@dataclass
class _Section:
    title: str
    figures: list = field(default_factory=list)  # (caption, png path)
    html: str = ""


def baseline_names(baselines) -> list:
    """``--baselines`` as a list of set names or paths (None, one, or several)."""
    if baselines is None:
        return []
    if isinstance(baselines, (str, os.PathLike)):
        return [str(baselines)]
    return list(dict.fromkeys(str(name) for name in baselines))


def _labelled(settings: pd.DataFrame, primary: str) -> pd.DataFrame:
    """Optimizer names with the source appended for everything but the primary runs."""
    out = settings.copy()
    out["optimizer"] = [o if s == primary else f"{o} ({s})" for o, s in zip(out["optimizer"], out["source"])]
    out["source"] = primary
    return out


def _save(fig, out_dir: Path, name: str, formats: Sequence[str], written: list,
          fits: Optional[dict] = None, notes: Optional[list] = None) -> Optional[Path]:
    """Save a figure (always as PNG too, for the page) and return the PNG's path;
    ``fits[name]`` records whether its legends lie inside it.

    ``name`` holds problem and optimizer names read from result files, which the result
    schema has checked to be file names; it is shortened (with a digest) to fit the
    length limit, and every path is checked to stay inside ``out_dir/figures``.
    A figure matplotlib cannot draw (values near the float limit defeat its tick
    locators) is left out with a line in ``notes`` (None: raise), the report is kept.
    """
    formats = tuple(dict.fromkeys(["png", *formats]))
    name = bounded_component(name, reserve=1 + max(len(fmt.encode("utf-8")) for fmt in formats))
    for fmt in formats:
        join_under(out_dir / "figures", f"{name}.{fmt}", what="figure file")
    try:
        paths = plots.save_figure(fig, out_dir / "figures" / name, formats=formats)
    except (ValueError, OverflowError, FloatingPointError, ZeroDivisionError) as error:
        if notes is None:
            raise
        notes.append(f"figure {printable(name)} left out: matplotlib cannot draw it "
                     f"({type(error).__name__}: {' '.join(printable(error).split())[:160]})")
        for fmt in formats:
            (out_dir / "figures" / f"{name}.{fmt}").unlink(missing_ok=True)
        return None
    written += paths
    if fits is not None:
        fits[name] = plots.legends_fit(fig, redraw=False)  # the layout savefig just drew
    return paths[0]


def check_formats(formats: Sequence[str]) -> tuple:
    """The figure formats, each one matplotlib can write (else a one-line ConfigurationError)."""
    from matplotlib.figure import Figure

    supported = Figure().canvas.get_supported_filetypes()
    for fmt in formats:
        if fmt not in supported:
            raise ConfigurationError(f"figure format {quoted(fmt)} is not one of {', '.join(sorted(supported))}")
    return tuple(formats)


def _drop_conflicts(runs: pd.DataFrame, notes: list) -> pd.DataFrame:
    """Runs without the settings whose files cannot be averaged, each named in ``notes``:
    a setting folder whose files carry different config hashes (different experiments),
    or a setting whose files have different numbers of epochs (curves of other lengths)."""
    if runs.empty:
        return runs
    drop = set()
    for message in config_hash_conflicts(runs):
        drop.add(message.split(": ", 1)[0])
        notes.append(f"skipped setting, its files carry different config_hash: {printable(message)}")
    folders = runs["path"].map(lambda p: str(Path(p).parent))
    for key, group in runs.groupby(SETTING_KEYS, sort=True):
        epochs = sorted({int(n) for n in group["num_epochs"]})
        if len(epochs) > 1:
            drop |= set(folders[group.index])
            notes.append(f"skipped setting {printable(' | '.join(map(str, key[1:])))}: its files have different "
                         f"num_epochs {epochs}: {printable(', '.join(group['path']))}")
    if not drop:
        return runs
    kept = runs[~folders.isin(drop)].reset_index(drop=True)
    kept.attrs.update(runs.attrs)
    return kept


def _varying(settings: pd.DataFrame) -> list:
    """Hyperparameters that take more than one numeric value across settings."""
    names = sorted({k for hp in settings["hyperparams"] for k in hp})
    varying = []
    for name in names:
        values = {tuple(v) if isinstance(v, list) else v
                  for v in (hp.get(name) for hp in settings["hyperparams"])}
        if len(values) > 1 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            varying.append(name)
    return varying


def build_report(results, out_dir, baselines=None, mode: str = "final",
                 metric: str = "valid_accuracies", which: str = "mean_and_std",
                 include_diverged: bool = False, formats: Sequence[str] = ("png", "pdf"),
                 title: Optional[str] = None) -> Report:
    """Write figures, tables and ``report.html`` for a results tree into ``out_dir``.

    Args:
        results: a results folder (``<problem>/<optimizer>/<setting>/*.json``).
        out_dir: where to write; created if needed.
        baselines: a shipped set (``deepobs-1.1``, ``deepobs-pytorch``), a path to any
            results tree, or a list of these (each set is drawn under its own name).
        mode, metric: how settings are selected (validation metric; see
            :func:`rank_settings`). Shipped baselines keep their published selection
            (the setting rerun with 10 seeds).
        include_diverged: count diverged runs in means (off: they are shown apart).

    Text in figures is drawn as it is (no ``$...$`` math): names come from result
    files, and a ``$`` in one must not break the report.
    """
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        return _build_report(results, out_dir, baselines, mode, metric, which, include_diverged, formats, title)


def _build_report(results, out_dir, baselines, mode, metric, which, include_diverged, formats, title) -> Report:
    started = time.perf_counter()
    formats = check_formats(formats)
    out_dir = writable_folder(out_dir)
    check = check_output(results)
    runs = load_results(results, source="ours", check_hashes=False)
    notes = []
    runs = _drop_conflicts(runs, notes)
    if runs.empty:
        skipped = len(check.corrupt_files)
        raise DataError(f"no valid result files (random_seed__*.json) under {printable(results)}"
                        + (f"; {skipped} skipped as invalid (deepobs-plot --check lists them)" if skipped else "")
                        + (f"; {notes[0]}" if notes else ""))
    settings = aggregate(runs, include_diverged)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selected = select_best(settings, mode, metric)
    problems = sorted(settings["problem"].unique())
    notes += grouped_notes(selected)
    selection = selection_summary(selected, mode)
    reference = pd.DataFrame()
    baselines = baseline_names(baselines)
    for name in baselines:
        reference = load_baselines(name, include_diverged)
        reference = reference[reference["problem"].isin(problems)]
        if reference.empty:
            notes.append(f"baselines {name}: none for {', '.join(problems)}")
            continue
        reference_mode = "most" if name in SHIPPED else mode  # shipped sets: their own selection
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference_selected = select_best(reference, reference_mode, metric)
        selected = pd.concat([selected, reference_selected], ignore_index=True)
        settings = pd.concat([settings, reference], ignore_index=True)
    try:
        thresholds = convergence_performance()
    except DataError:
        thresholds = {}
    written, sections, fits = [], [], {}

    warnings_shown = [f"{problem}: {text}" for problem in problems
                      for text in [plots.protocol_mismatch(selected[selected["problem"] == problem], "ours")] if text]

    # Performance of the selected settings vs the baselines.
    section = _Section("Performance of the selected settings")
    for problem in problems:
        fig = plots.plot_optimizer_performance(selected, problem, which, thresholds)
        panels = "test/train loss and accuracy" if any(
            "test_accuracies" in r["curves"] for _, r in selected[selected["problem"] == problem].iterrows()) \
            else "test/train loss"
        section.figures.append((f"{problem}: {panels} per epoch of each optimizer's selected setting (band: "
                                + ("± std" if which == "mean_and_std" else "quartiles")
                                + " over seeds, clipped to the metric's range; your runs solid and marked, "
                                "baselines dashed; convergence threshold dash-dotted; a triangle on the axis "
                                "edge: a diverged run)",
                                _save(fig, out_dir, f"performance_{problem}", formats, written, fits, notes)))
    if len(problems) > 1:
        fig = plots.plot_testset_performances(selected, problems, which)
        section.figures.append(("All problems", _save(fig, out_dir, "testset_performances", formats, written, fits, notes)))
    sections.append(section)

    # Tables.
    table = tables.results_table(selected, thresholds)
    shown = tables.display_table(table)
    (out_dir / "results.md").write_text(tables.to_markdown(shown))
    (out_dir / "results.tex").write_text(tables.to_latex(shown, caption="Final test performance of the selected settings (mean ± std over seeds)."))
    (out_dir / "results.html").write_text(tables.to_html(shown))
    layout = tables.deepobs_layout(table).reset_index()
    (out_dir / "results_deepobs_layout.md").write_text(tables.to_markdown(layout.astype(str)))
    table.to_csv(out_dir / "results.csv", index=False)
    written += [out_dir / n for n in ("results.md", "results.tex", "results.html",
                                      "results_deepobs_layout.md", "results.csv")]
    sections.insert(0, _Section("Results table", html=tables.to_html(shown)
                                + "<p class='note'>Performance: final test accuracy (or test loss), mean ± population "
                                "std over seeds. Speed: epochs until the test metric reaches DeepOBS's convergence "
                                "threshold (never reached = num_epochs+1), mean over seeds.</p>"))

    # Sensitivity and tuning.
    section = _Section("Hyperparameter sensitivity and tuning")
    fig = plots.plot_lr_sensitivity(settings[settings["lr"].notna()], problems)
    section.figures.append(("Learning-rate sensitivity (v1.1 style): final test accuracy (test loss where a "
                            "problem has no accuracy) relative to the best learning rate of each optimizer; "
                            "triangles on the lower edge: all runs diverged",
                            _save(fig, out_dir, "lr_sensitivity", formats, written, fits, notes)))
    own = settings[settings["source"] == "ours"]
    for problem in problems:
        rows = own[own["problem"] == problem]
        if "lr" in _varying(rows):
            fig = plots.plot_hyperparameter_sensitivity(settings, problem, "lr", mode, metric)
            shown = plots.metric_label(fig.deepobs_metric)
            section.figures.append((f"{problem}: {mode} {shown} (mean over seeds) vs learning rate (x: one seed; "
                                    "grey: min-max; a triangle on the axis edge: all runs of that setting "
                                    "diverged)", _save(fig, out_dir, f"sensitivity_lr_{problem}", formats, written, fits, notes)))
        for optimizer, group in rows.groupby("optimizer", sort=True):
            varying = _varying(group)
            if len(group) > 1:
                fig = plots.plot_final_metric_vs_tuning_rank(settings[settings["source"] == "ours"], problem,
                                                             optimizer, metric, mode)
                shown = plots.metric_label(fig.deepobs_metric)
                section.figures.append((f"{problem}, {optimizer}: {mode} {shown} of every setting vs its tuning "
                                        "rank (ranked on the tuning seeds; x: one seed)",
                                        _save(fig, out_dir, f"tuning_rank_{problem}_{optimizer}", formats, written, fits, notes)))
            if len(varying) >= 2:
                fig = plots.plot_hyperparameter_sensitivity_2d(own, problem, optimizer, varying[:2], mode, metric)
                shown = plots.metric_label(fig.deepobs_metric)
                section.figures.append((f"{problem}, {optimizer}: {mode} {shown} (mean over seeds) over "
                                        f"{varying[0]} x {varying[1]} (dots: the settings run)",
                                        _save(fig, out_dir, f"sensitivity_2d_{problem}_{optimizer}", formats, written, fits, notes)))
    sections.append(section)

    # AlgoPerf-style time to target and performance profiles.
    combined = _labelled(settings, "ours")
    times = time_to_target_table(combined, thresholds) if thresholds else pd.DataFrame()
    if not times.empty:
        times.to_csv(out_dir / "time_to_target.csv")
        written.append(out_dir / "time_to_target.csv")
        ratios = performance_ratios(times)
        scores = profile_score(ratios)
        fig = plots.plot_performance_profiles(
            performance_profile(ratios), scores,
            title=f"Performance profiles over {len(times)} problem(s), epochs to target",
            warning=("not comparable: " + " | ".join(warnings_shown)) if warnings_shown else "")
        section = _Section("Time to target and performance profiles")
        section.html = (tables.to_html(times.map(lambda v: "∞" if not np.isfinite(v) else f"{v:g}")
                                       .reset_index().rename(columns={"index": "problem"}).astype(str))
                        + f"<p class='note'>Epochs until the median seed of the fastest setting reaches the "
                        f"convergence threshold; ratios above r_max = {R_MAX:g} count as unsolved. Integrated "
                        "scores: " + html.escape(", ".join(f"{k} {v:.3f}" for k, v in scores.items())) + "</p>")
        section.figures.append(("ρ(τ): fraction of problems solved within τ × the fastest time",
                                _save(fig, out_dir, "performance_profiles", formats, written, fits, notes)))
        sections.append(section)

    notes += [line for line in check.lines()[len(check.summary):] if not line.startswith("conflicting config_hash")]
    page = _render(title or f"deepobs report: {Path(results).resolve().name}", runs, check, notes, sections,
                   baselines, selection, time.perf_counter() - started, warnings_shown)
    html_path = out_dir / "report.html"
    html_path.write_text(page)
    return Report(html_path=html_path, figures=[p for p in written if p.parent.name == "figures"],
                  tables=[p for p in written if p.parent != out_dir / "figures"],
                  notes=list(warnings_shown) + notes, legends_fit=fits)


def grouped_notes(selected: pd.DataFrame) -> list:
    """The selection notes of the chosen settings, each text once with the problems and
    optimizers it applies to (a fallback usually applies to every optimizer alike)."""
    groups = {}
    for row in selected.itertuples():
        if row.selection_note:
            groups.setdefault(row.selection_note, []).append(f"{row.problem} | {row.optimizer}")
    return [f"{text} ({', '.join(where)})" for text, where in groups.items()]


def selection_summary(selected: pd.DataFrame, mode: str) -> str:
    """How the user's settings were chosen, with the metric(s) actually used and the
    tuning seeds, e.g. ``final valid_losses on seed 42``."""
    ours = selected[selected["source"] == "ours"]
    ranked = ours[ours["n_candidates"] > 1] if "n_candidates" in ours else ours
    if ranked.empty:
        return "one setting per optimizer, nothing to select"
    parts = {}
    for row in ranked.itertuples():
        seeds = tuple(getattr(row, "tuning_seeds", ()) or ())
        on = (f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}" if seeds
              else "each setting's mean over its seeds")
        parts.setdefault(f"{mode} {row.metric_used} on {on}", []).append(f"{row.problem}, protocol {row.protocol}")
    if len(parts) == 1:
        return next(iter(parts))
    return "; ".join(f"{text} ({', '.join(sorted(set(p)))})" for text, p in parts.items())


_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.8em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}
tbody tr:nth-child(even){background:#fafafa}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}
.warning{border-left:4px solid #b00020;background:#fff4f4;padding:.4em .8em;color:#7a0015}
ul.notes li{font-size:.85em}code{background:#f3f3f3;padding:0 .2em}
"""


def _image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _provenance(runs: pd.DataFrame) -> str:
    items = []
    for column in ("deepobs_version", "torch_version", "device", "git_commit", "protocol"):
        if column in runs:
            values = sorted({str(v) for v in runs[column].dropna()})
            if values:
                items.append(f"<li>{column}: {html.escape(', '.join(values))}</li>")
    return "<ul class='notes'>" + "".join(items) + "</ul>"


def _render(title, runs, check, notes, sections, baselines, selection, seconds, warnings_shown=()) -> str:
    parts = [f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(runs)} runs, {runs['problem'].nunique()} problem(s), "
             f"{runs['optimizer'].nunique()} optimizer(s); baselines: {html.escape(', '.join(baselines) or 'none')}; "
             f"selection: <code>{html.escape(selection)}</code> (never the test set), then the chosen "
             "setting's mean ± std over all its seeds. Generated by deepobs "
             f"{html.escape(__version__)} on {time.strftime('%Y-%m-%d %H:%M:%S')} in {seconds:.1f} s.</p>",
             "<h2>Runs</h2><ul class='notes'>"
             + "".join(f"<li>{html.escape(line)}</li>" for line in check.summary) + "</ul>",
             _provenance(runs)]
    for warning in warnings_shown:
        parts.append(f"<p class='warning'>⚠ {html.escape(warning)}</p>")
    if notes:
        parts.append("<h2>Notes</h2><ul class='notes'>"
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>{section.html}")
        for caption, path in (item for item in section.figures if item[1] is not None):
            parts.append(f"<figure>{_image_tag(path, caption)}<figcaption>{html.escape(caption)}"
                         "</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def report_summary(report: Report) -> str:
    """One line per written artefact group, for the command line."""
    return json.dumps({"report": str(report.html_path), "figures": len(report.figures),
                       "tables": len(report.tables), "notes": len(report.notes)})
