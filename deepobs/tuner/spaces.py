"""Search spaces: what values a hyperparameter may take in a grid, random or Bayesian search.

A search space is a dict ``{hyperparameter: space}`` where a space is

* a list of values (grid points; drawn uniformly by random search; categorical for Optuna),
* a distribution with ``rvs(random_state=...)`` (any frozen ``scipy.stats`` distribution,
  or the helpers below; random search only, the helpers also work with Optuna),
* a single value (the hyperparameter is fixed, not searched).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepobs.errors import ConfigurationError

#: Most settings one search may propose (grid points or budget): a bound on memory and
#: time; deepobs-tune asks for --yes well below it (see deepobs.tuner.cli).
MAX_SETTINGS = 1_000_000


def _check_bounds(kind: str, low, high, positive: bool = False) -> tuple:
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigurationError(f"{kind} bounds must be finite numbers, got [{low!r}, {high!r}]")
    if not low < high:
        raise ConfigurationError(f"{kind} needs low < high, got [{low!r}, {high!r}]")
    if positive and low <= 0:
        raise ConfigurationError(f"{kind} needs positive bounds, got [{low!r}, {high!r}]")
    return low, high


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high)."""

    low: float
    high: float

    def __post_init__(self):
        _check_bounds("uniform", self.low, self.high)

    def rvs(self, random_state=None) -> float:
        """One draw (scipy-style ``rvs``)."""
        return float(np.random.default_rng(random_state).uniform(self.low, self.high))

    def suggest(self, trial, name: str) -> float:
        """The value an Optuna ``trial`` suggests for ``name``."""
        return trial.suggest_float(name, self.low, self.high)


@dataclass(frozen=True)
class LogUniform:
    """Log-uniform on [low, high): the logarithm of the value is uniform (learning rates)."""

    low: float
    high: float

    def __post_init__(self):
        _check_bounds("log_uniform", self.low, self.high, positive=True)

    def rvs(self, random_state=None) -> float:
        """One draw (scipy-style ``rvs``)."""
        rng = np.random.default_rng(random_state)
        return float(np.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def suggest(self, trial, name: str) -> float:
        """The value an Optuna ``trial`` suggests for ``name``."""
        return trial.suggest_float(name, self.low, self.high, log=True)


@dataclass(frozen=True)
class IntUniform:
    """Uniform on the integers low … high (both included)."""

    low: int
    high: int

    def __post_init__(self):
        for value in (self.low, self.high):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigurationError(f"int_uniform bounds must be integers, got [{self.low!r}, {self.high!r}]")
        _check_bounds("int_uniform", int(self.low), int(self.high))

    def rvs(self, random_state=None) -> int:
        """One draw (scipy-style ``rvs``)."""
        return int(np.random.default_rng(random_state).integers(self.low, self.high, endpoint=True))

    def suggest(self, trial, name: str) -> int:
        """The value an Optuna ``trial`` suggests for ``name``."""
        return trial.suggest_int(name, int(self.low), int(self.high))


def uniform(low: float, high: float) -> Uniform:
    """Values uniform on [low, high)."""
    return Uniform(low, high)


def log_uniform(low: float, high: float) -> LogUniform:
    """Values whose logarithm is uniform: ``log_uniform(1e-5, 1e-1)`` for a learning rate.

    Unlike DeepOBS's helper of the same name, the bounds are the values themselves,
    not exponents.
    """
    return LogUniform(low, high)


def int_uniform(low: int, high: int) -> IntUniform:
    """Integers from low to high, both included."""
    return IntUniform(low, high)


def log_grid(low: float, high: float, num: int) -> list:
    """``num`` log-spaced grid points from low to high, both included.

    ``log_grid(1e-5, 1e2, 36)`` is the learning-rate grid of the published baselines.
    """
    _check_bounds("log_grid", low, high, positive=True)
    if isinstance(num, bool) or not isinstance(num, int) or num < 2:
        raise ConfigurationError(f"log_grid needs num >= 2 points, got {num!r}")
    return [float(v) for v in np.logspace(math.log10(low), math.log10(high), num)]


def is_distribution(space: Any) -> bool:
    """True for anything random search can draw from (``rvs``)."""
    return callable(getattr(space, "rvs", None))


def split_space(space: dict) -> tuple[dict, dict]:
    """``(searched, fixed)``: the hyperparameters with a list or distribution, and the rest.

    A tuple is one value (e.g. Adam's ``betas``), a list is a set of choices.
    """
    searched, fixed = {}, {}
    for name, value in space.items():
        if isinstance(value, list) or is_distribution(value):
            searched[name] = value
        else:
            fixed[name] = value
    return searched, fixed


def check_space(space: dict) -> None:
    """Reject empty choice lists; called before any run starts."""
    if not isinstance(space, dict):
        raise ConfigurationError(f"a search space is a dict {{hyperparameter: values}}, got {space!r}")
    for name, value in space.items():
        if isinstance(value, list) and not value:
            raise ConfigurationError(f"hyperparameter {name!r} has an empty list of values")


def grid_points(space: dict) -> list:
    """Every combination of the listed values (the cartesian product), in a stable order.

    Raises ConfigurationError if a hyperparameter has a distribution instead of a list.
    """
    searched, fixed = split_space(space)
    for name, value in searched.items():
        if is_distribution(value):
            raise ConfigurationError(
                f"grid search needs a list of values for {name!r}, got the distribution {value!r} "
                "(use random or bayesian search, or log_grid)")
    names = sorted(searched)
    size = math.prod(len(searched[name]) for name in names)
    if size > MAX_SETTINGS:
        raise ConfigurationError(f"the grid has {size:,} points, more than the {MAX_SETTINGS:,} a sweep can hold")
    return [{**fixed, **dict(zip(names, combination))}
            for combination in itertools.product(*(searched[name] for name in names))]


def random_points(space: dict, budget: int, seed: int = 0) -> list:
    """``budget`` settings drawn from the space; the same seed gives the same draws.

    Hyperparameters are drawn in alphabetical order, one setting after the other,
    from one ``numpy`` generator seeded with ``seed``.
    """
    searched, fixed = split_space(space)
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(budget):
        point = dict(fixed)
        for name in sorted(searched):
            value = searched[name]
            if is_distribution(value):
                draw = value.rvs(random_state=rng)
                point[name] = draw.item() if isinstance(draw, np.generic) else draw
            else:
                point[name] = value[int(rng.integers(len(value)))]
        points.append(point)
    return points


def suggest_point(space: dict, trial) -> dict:
    """An Optuna trial's setting: lists are categorical, the helpers map to suggest_*."""
    searched, fixed = split_space(space)
    point = dict(fixed)
    for name in sorted(searched):
        value = searched[name]
        if isinstance(value, list):
            point[name] = trial.suggest_categorical(name, list(value))
        elif hasattr(value, "suggest"):
            point[name] = value.suggest(trial, name)
        else:
            raise ConfigurationError(
                f"bayesian search cannot use the distribution of {name!r} ({value!r}); "
                "use a list, uniform, log_uniform or int_uniform")
    return point


def space_size(space: dict):
    """Number of grid points, or None when a hyperparameter has a distribution."""
    searched, _ = split_space(space)
    if any(is_distribution(value) for value in searched.values()):
        return None
    return math.prod(len(value) for value in searched.values())
