"""Turn result folders into the tables and figures of a paper: loading, aggregation,
measures, plots and an offline HTML report. Reads files only; never imports torch."""

from deepobs.analyzer.aggregate import aggregate, rank_settings, select_best
from deepobs.analyzer.baselines import load_baselines
from deepobs.analyzer.loading import check_output, load_results, to_long
from deepobs.analyzer.report import build_report
from deepobs.analyzer.measures import (
    convergence_performance, estimate_runtime, performance_profile, performance_ratios,
    profile_score, speed, time_to_target_table,
)

__all__ = [
    "aggregate", "build_report", "rank_settings", "select_best", "load_baselines", "check_output",
    "load_results", "to_long", "convergence_performance", "estimate_runtime",
    "performance_profile", "performance_ratios", "profile_score", "speed",
    "time_to_target_table",
]
