"""The one rule that chooses a setting, shared by ``deepobs-tune`` and ``deepobs-plot``.

DeepOBS's protocol: tune on the tuning seed, then rerun the chosen setting with more
seeds and report its mean ± std over all of them. So settings are ranked on their
result for the *tuning seeds* only: the seeds every setting of the comparison was run
with (seed 42 when a sweep reruns its best setting with 43-51; every seed when all
settings were run with the same seeds). Ranking on each setting's mean over all its
seeds instead would compare a rerun setting's ten-seed mean with other settings' single
lucky seed, and the report could choose a setting the tuner did not.

A run's value is its final validation metric (mode ``final``) or the best value of its
curve (mode ``best``); a diverged run (:mod:`deepobs.analyzer.divergence`) has no value
(NaN), so a setting with a diverged tuning run ranks last. A setting's value is the mean
of its runs' values over the tuning seeds. Lower is better for losses, higher for
accuracies; ties go to the first setting in one canonical order of the hyperparameters
(:func:`hyperparameter_order`), the same for both tools. Pure Python: the tuner uses it without pandas.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional, Sequence

MODES = ("final", "best")


def maximised(metric: str) -> bool:
    """Accuracies are maximised, losses minimised."""
    return metric.endswith("accuracies")


def run_value(curve: Optional[Sequence[float]], metric: str, mode: str = "final",
              diverged: bool = False) -> float:
    """One run's value in the metric's own units: its last-epoch value (``final``) or the
    best value of its curve (``best``); NaN when the run diverged or has no finite value."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if diverged or curve is None or len(curve) == 0:
        return math.nan
    values = [math.nan if v is None else float(v) for v in curve]
    if mode == "final":
        return values[-1] if math.isfinite(values[-1]) else math.nan
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan
    return max(finite) if maximised(metric) else min(finite)


def tuning_seeds(seed_sets: Iterable[Iterable[int]]) -> tuple:
    """The seeds every setting was run with, sorted; empty when they share none."""
    common = None
    for seeds in seed_sets:
        common = set(seeds) if common is None else common & set(seeds)
    return tuple(sorted(common or ()))


def setting_value(values: Mapping[int, float], seeds: Optional[Iterable[int]] = None) -> float:
    """Mean of a setting's run values (seed -> value) over ``seeds`` (all of its seeds
    when None or empty); NaN when one of those runs is missing or has no value."""
    chosen = list(seeds) if seeds else list(values)
    picked = [values.get(seed, math.nan) for seed in chosen]
    if not picked or any(not math.isfinite(v) for v in picked):
        return math.nan
    return math.fsum(picked) / len(picked)


def hyperparameter_order(hyperparams: Mapping) -> tuple:
    """A setting's place in a canonical order of settings, the tie-break of
    :func:`ranking`: hyperparameters by name, numbers ascending. Ties are real (Adafactor's
    rate is capped at 1/sqrt(step), so every rate >= 1 trains identically; every rate of a
    grid can diverge), and the tuner sees its settings in grid order while the analyzer sees
    them in folder order: one order for both makes them choose the same one."""
    def place(value):
        if isinstance(value, (int, float)) and math.isfinite(value):
            return (0, float(value), "")
        return (1, 0.0, repr(value))

    return tuple((name, place(value)) for name, value in sorted(hyperparams.items()))


def ranking(values: Sequence[float], metric: str, order: Optional[Sequence[tuple]] = None) -> list:
    """Indices of ``values`` best first; NaN last; ties by ``order``
    (:func:`hyperparameter_order` of each setting), else in their given order."""
    sign = -1.0 if maximised(metric) else 1.0

    def key(index):
        value = values[index]
        tie = order[index] if order is not None else ()
        return (0, sign * value, tie) if math.isfinite(value) else (1, 0.0, tie)

    return sorted(range(len(values)), key=key)


def choose(settings: Sequence[Mapping[int, float]], metric: str,
           seeds: Optional[Iterable[int]] = None, order: Optional[Sequence[tuple]] = None) -> Optional[int]:
    """Index of the chosen setting among ``settings`` (each a seed -> run value map):
    the best :func:`setting_value` over ``seeds`` (default: :func:`tuning_seeds` of the
    settings), ties broken by ``order`` (see :func:`ranking`). None when there is no setting."""
    if not settings:
        return None
    seeds = tuple(seeds) if seeds is not None else tuning_seeds(settings)
    return ranking([setting_value(values, seeds) for values in settings], metric, order)[0]


def format_number(value: float, digits: int = 4) -> str:
    """A metric value for people: ``digits`` significant digits (``187.1``, ``0.8734``)."""
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"
