"""The results table of a paper (one row per problem and optimizer: tuned hyperparameters,
final test loss/accuracy, train loss, speed), written as Markdown, LaTeX or HTML."""

from __future__ import annotations

import html
import math
from typing import Optional

import numpy as np
import pandas as pd

from deepobs.analyzer.aggregate import final_mean, final_std
from deepobs.analyzer.measures import performance, speed


def results_table(selected: pd.DataFrame, thresholds: Optional[dict] = None) -> pd.DataFrame:
    """Numbers of the selected settings (from :func:`select_best`), one row each.

    Columns: problem, optimizer, source, lr, hyperparams, seeds, diverged, the final
    test loss / test accuracy / train loss (mean and population std over seeds),
    performance (DeepOBS: test accuracy if any, else test loss), speed (epochs to the
    convergence threshold, NaN without one) and how the setting was selected.
    """
    rows = []
    for _, row in selected.iterrows():
        metric, perf_mean, perf_std = performance(row)
        threshold = (thresholds or {}).get(row["problem"])
        rows.append({
            "problem": row["problem"], "optimizer": row["optimizer"], "source": row["source"],
            "lr": row["lr"], "hyperparams": {k: v for k, v in row["hyperparams"].items() if k != "lr"},
            "seeds": row["n_used"], "diverged": row["n_diverged"],
            "test_loss_mean": final_mean(row, "test_losses"), "test_loss_std": final_std(row, "test_losses"),
            "test_acc_mean": final_mean(row, "test_accuracies"),
            "test_acc_std": final_std(row, "test_accuracies"),
            "train_loss_mean": final_mean(row, "train_losses"),
            "performance_metric": metric, "performance_mean": perf_mean, "performance_std": perf_std,
            "speed": speed(row, threshold),
            "selected_on": row.get("metric_used"), "selection_note": row.get("selection_note") or "",
        })
    return pd.DataFrame(rows)


def _number(value: float, digits: int) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _small_number(value: float) -> str:
    """3 decimals, or 3 significant digits below 0.01 (a train loss of 0.0004 is not 0.000)."""
    if value is not None and math.isfinite(value) and value != 0 and abs(value) < 0.01:
        return f"{value:.2e}"
    return _number(value, 3)


def _loss_digits(value: float) -> int:
    return 2 if math.isfinite(value) and abs(value) >= 1 else 3


def _pm(mean: float, std: float, digits: int, scale: float = 1.0, unit: str = "", seeds: int = 2) -> str:
    """``mean ± std`` (just the mean for a single seed, where a std says nothing); a loss
    below 0.01 in 3 significant digits (a mean of 0.0009 is not 0.000 ± 0.000)."""
    if mean is None or not math.isfinite(mean):
        return "—"
    shape = f".{digits}f"
    if scale == 1.0 and not unit and mean != 0 and abs(mean) < 0.01:
        shape = ".2e"
    if seeds < 2:
        return f"{mean * scale:{shape}}{unit}"
    return f"{mean * scale:{shape}} ± {std * scale:{shape}}{unit}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The results table as strings, as in reference §5 (losses 2 decimals, accuracies
    in percent, lr in 4 significant digits, speed in epochs)."""
    out = pd.DataFrame({
        "problem": table["problem"],
        "optimizer": [o if s == table["source"].iloc[0] else f"{o} ({s})"
                      for o, s in zip(table["optimizer"], table["source"])],
        "tuned lr": ["—" if lr is None or not np.isfinite(lr) else f"{lr:.3e}" for lr in table["lr"]],
        "seeds": [f"{n}" + (f" (+{d} diverged)" if d else "") for n, d in zip(table["seeds"], table["diverged"])],
        "final test loss": [_pm(m, s, _loss_digits(m), seeds=n) for m, s, n in
                            zip(table["test_loss_mean"], table["test_loss_std"], table["seeds"])],
        "final test acc": [_pm(m, s, 2, 100.0, " %", seeds=n) for m, s, n in
                           zip(table["test_acc_mean"], table["test_acc_std"], table["seeds"])],
        "final train loss": [_small_number(v) for v in table["train_loss_mean"]],
        "speed (epochs)": [_number(v, 1) for v in table["speed"]],
        "other hyperparameters": [", ".join(f"{k}={v}" for k, v in sorted(h.items())) or "—"
                                  for h in table["hyperparams"]],
    })
    return out.astype(str)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a string DataFrame."""
    cells = [[str(c).replace("|", "\\|") for c in frame.columns]]
    cells += [[str(v).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join(" --- " for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
          "{": r"\{", "}": r"\}", "±": r"$\pm$", "—": "--", "~": r"\textasciitilde{}", "^": r"\^{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and write ± as $\\pm$)."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(frame: pd.DataFrame, caption: str = "", label: str = "tab:deepobs-results") -> str:
    """A booktabs LaTeX table (needs ``\\usepackage{booktabs}``)."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{" + "l" * len(frame.columns) + "}", r"\toprule",
             " & ".join(latex_escape(c) for c in frame.columns) + r" \\", r"\midrule"]
    previous = None
    for row in frame.itertuples(index=False):
        values = list(row)
        if previous is not None and values[0] != previous:
            lines.append(r"\midrule")
        previous = values[0]
        lines.append(" & ".join(latex_escape(v) for v in values) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    lines += [r"\label{" + label + "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(frame: pd.DataFrame, table_class: str = "results") -> str:
    """An HTML ``<table>`` (escaped; no scripts, no external styles)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>\n"
                   for row in frame.itertuples(index=False))
    return f'<table class="{table_class}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n'


def deepobs_layout(table: pd.DataFrame) -> pd.DataFrame:
    """DeepOBS's table layout: rows (problem, Performance/Speed/Tuneability), one column
    per optimizer (and source)."""
    display = display_table(table)
    records = {}
    for (_, numbers), (_, shown) in zip(table.iterrows(), display.iterrows()):
        perf = shown["final test acc"] if numbers["performance_metric"] == "test_accuracies" else shown["final test loss"]
        tune = f"lr={shown['tuned lr']}" + ("" if shown["other hyperparameters"] == "—"
                                             else f", {shown['other hyperparameters']}")
        for measure, value in (("Performance", perf), ("Speed", shown["speed (epochs)"]), ("Tuneability", tune)):
            records.setdefault((numbers["problem"], measure), {})[shown["optimizer"]] = value
    frame = pd.DataFrame.from_dict(records, orient="index").fillna("—")
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["problem", "measure"])
    return frame
