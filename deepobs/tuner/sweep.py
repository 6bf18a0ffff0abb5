"""Sweep files (YAML or JSON): problems × optimizers × search space × budget × seeds.

:func:`load_sweep` is a pure function of the file's text: it checks every key and value
(problem and optimizer names, hyperparameter names and types, search and executor
settings) and raises :class:`~deepobs.errors.ConfigurationError` with a one-line message
naming the line and the key, before anything runs. Example::

    name: lr_sweep
    output_dir: results
    problems: [quadratic_deep, {name: two_d_beale, num_epochs: 5}]
    optimizers:
      sgd: {lr: {log_uniform: [1.0e-4, 1.0]}}
      momentum: {lr: [0.001, 0.01, 0.1], momentum: 0.9}
    search: random          # grid (default) | random | bayesian (Optuna TPE)
    budget: 4               # settings per problem and optimizer
    seeds: 42               # tuning seed(s)
    rerun_best: true        # rerun the best setting with seeds 43-51
    lr_schedule: {name: warmup_cosine, warmup_epochs: 0.1}   # default constant
    num_epochs: 2
    fake_data: 512
    executor: local         # local | slurm
    workers: 2
    slurm: {partition: gpu, gpus_per_node: 1, timeout_min: 60, poll_seconds: 5}

Seeds (at most 2**32 - 1) and text hyperparameter values (they become folder names)
are checked here too. How many runs a sweep may plan without ``--yes``:
:data:`deepobs.tuner.cli.MAX_RUNS_WITHOUT_YES`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from deepobs.errors import ConfigurationError
from deepobs.runners.run_config import MAX_SEED, check_hyperparameter_value
from deepobs.tuner import spaces
from deepobs.tuner.searches import RERUN_SEEDS, TUNING_SEED, BayesianSearch, GridSearch, RandomSearch, Study

#: Top-level keys of a sweep file and what they mean (shown for unknown keys).
TOP_LEVEL_KEYS = {
    "name": "sweep name (folder of its records)",
    "output_dir": "results folder",
    "problems": "list of problem names or {name, batch_size, num_epochs, weight_decay}",
    "optimizers": "{optimizer: {hyperparameter: space}}",
    "search": "grid | random | bayesian",
    "budget": "settings per problem and optimizer",
    "search_seed": "seed of random draws and of the Bayesian sampler",
    "startup_trials": "random trials before TPE models (bayesian)",
    "parallel_trials": "settings a Bayesian study proposes at once (default 1)",
    "seeds": "tuning seed(s)",
    "rerun_best": "true (seeds 43-51) or a list of seeds",
    "mode": "final | best",
    "num_epochs": "epochs", "batch_size": "batch size", "weight_decay": "L2 factor",
    "protocol": "split protocol (1.2)", "fake_data": "random data of N examples",
    "data_dir": "data folder", "device": "device of every run",
    "eval_batch_size": "evaluation batch size", "train_log_interval": "mini-batch loss log interval",
    "lr_schedule": "a schedule name, or {name: NAME, <its parameters>} (docs/schedules.md)",
    "executor": "local | slurm", "workers": "local worker processes", "slurm": "SLURM job settings",
}
PROBLEM_KEYS = ("name", "batch_size", "num_epochs", "weight_decay")
SEARCHES = {"grid": GridSearch, "random": RandomSearch, "bayesian": BayesianSearch}
EXECUTORS = ("local", "slurm")
DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "log_grid", "scipy")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MAX_DEPTH = 32
_MAX_NODES = 100_000


class _Invalid(Exception):
    """A problem at ``path`` of the document (turned into a ConfigurationError)."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path, self.message = path, message


@dataclass(frozen=True)
class ProblemEntry:
    """A problem of the sweep with its own overrides (None: the sweep's value)."""

    name: str
    batch_size: Optional[int] = None
    num_epochs: Optional[int] = None
    weight_decay: Optional[float] = None


@dataclass(frozen=True)
class Sweep:
    """A checked sweep description (see the module docstring)."""

    name: str
    problems: tuple
    searches: dict                      # optimizer name -> Search
    output_dir: str = "./results"
    seeds: tuple = (TUNING_SEED,)
    rerun_seeds: tuple = ()
    mode: str = "final"
    run_options: dict = field(default_factory=dict)
    executor: str = "local"
    workers: int = 1
    slurm: dict = field(default_factory=dict)

    @property
    def method(self) -> str:
        """The search method of the sweep (``grid``, ``random`` or ``bayesian``)."""
        return next(iter(self.searches.values())).method

    def with_output_dir(self, output_dir: str) -> "Sweep":
        """A copy of the sweep writing to ``output_dir``."""
        return replace(self, output_dir=str(output_dir))

    def studies(self) -> list:
        """One fresh Study per (problem, optimizer)."""
        studies = []
        for problem in self.problems:
            options = {**self.run_options, "output_dir": self.output_dir}
            for key in ("batch_size", "num_epochs", "weight_decay"):
                if getattr(problem, key) is not None:
                    options[key] = getattr(problem, key)
            for search in self.searches.values():
                studies.append(Study(problem.name, search, seeds=self.seeds, rerun_seeds=self.rerun_seeds,
                                     mode=self.mode, run_options=options))
        return studies

    def tuning_runs(self) -> list:
        """Every tuning run, for grid and random search (Bayesian runs depend on results)."""
        if self.method == "bayesian":
            raise ConfigurationError("bayesian search chooses its runs from earlier results; "
                                     "the runs cannot be listed in advance (use grid or random search)")
        return [spec for study in self.studies() for spec in study.ask(0)]


# --------------------------------------------------------------------------- parsing
def load_sweep(source: Union[str, os.PathLike]) -> Sweep:
    """Read and check a sweep from a path or from YAML/JSON text.

    A ``Path`` is always a file; a string is a file if it names an existing file (or has
    no line break and ends in .yaml/.yml/.json), else it is the text itself.

    Raises:
        ConfigurationError: one line, ``<file>:<line>: <key>: <what is wrong>``.
    """
    text, where, default_name = _read_source(source)
    data, lines = _parse(text, where)
    try:
        return _build(data, default_name)
    except _Invalid as invalid:
        raise ConfigurationError(_message(where, lines, invalid.path, invalid.message)) from None


def _read_source(source) -> tuple:
    if isinstance(source, os.PathLike):
        return _read_file(Path(source))
    if not isinstance(source, str):
        raise ConfigurationError(f"a sweep is a file path or YAML/JSON text, got {type(source).__name__}")
    if "\n" not in source and len(source) < 4096:
        try:
            is_file = Path(source).is_file()
        except (OSError, ValueError):  # not a usable path name: it is text
            is_file = False
        if is_file or source.strip().lower().endswith((".yaml", ".yml", ".json")):
            return _read_file(Path(source))
    return source, "sweep", "sweep"


def _read_file(path: Path) -> tuple:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"sweep file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"sweep file {str(path)!r} cannot be read: {error}") from None
    stem = path.stem if _NAME.match(path.stem) else "sweep"
    return text, str(path), stem


def _parse(text: str, where: str) -> tuple:
    """The document as Python data, and the line of every key and list item."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        try:  # JSON that YAML 1.1 does not read (e.g. tab indentation)
            return _check_json(json.loads(text)), {}
        except (ValueError, RecursionError):
            pass
        raise ConfigurationError(f"{where}{line}: not valid YAML or JSON: {_one_line(problem)}") from None
    except RecursionError:
        raise ConfigurationError(f"{where}: the document is nested too deeply") from None
    if node is None:
        raise ConfigurationError(f"{where}: the sweep is empty")
    lines: dict = {}
    constructor = yaml.SafeLoader("")
    try:
        data = _to_python(node, (), lines, constructor, [0])
    except _Invalid as invalid:
        raise ConfigurationError(_message(where, lines, invalid.path, invalid.message)) from None
    return data, lines


def _check_json(data):
    def walk(value, depth):
        if depth > _MAX_DEPTH:
            raise ValueError("nested too deeply")
        if isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value:
                walk(item, depth + 1)

    walk(data, 0)
    return data


_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


def _to_python(node, path: tuple, lines: dict, constructor, count: list):
    if len(path) > _MAX_DEPTH:
        raise _Invalid(path, "nested too deeply")
    count[0] += 1
    if count[0] > _MAX_NODES:
        raise _Invalid(path, f"more than {_MAX_NODES} values")
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP_TAG:
            raise _Invalid(path, f"unsupported YAML tag {node.tag}")
        mapping = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, path, constructor) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                lines.setdefault(path + ("?",), key_node.start_mark.line + 1)
                raise _Invalid(path + ("?",), f"keys must be names, got {key_node.value!r}"
                               if isinstance(key_node, yaml.ScalarNode) else "keys must be names")
            lines[path + (key,)] = key_node.start_mark.line + 1
            if key in mapping:
                raise _Invalid(path + (key,), "duplicate key")
            mapping[key] = _to_python(value_node, path + (key,), lines, constructor, count)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ_TAG:
            raise _Invalid(path, f"unsupported YAML tag {node.tag}")
        return [_to_python(item, path + (index,), lines, constructor, count)
                for index, item in enumerate(node.value)]
    return _scalar(node, path, constructor)


def _scalar(node, path: tuple, constructor):
    try:
        return constructor.construct_object(node)
    except Exception as error:  # PyYAML raises many kinds for bad scalars (dates, !!int ...)
        raise _Invalid(path, f"bad value {node.value!r}: {_one_line(str(error))}") from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _format_path(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _message(where: str, lines: dict, path: tuple, message: str) -> str:
    line = None
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            line = lines[path[:end]]
            break
    location = f"{where}:{line}" if line is not None else where
    return _one_line(f"{location}: {_format_path(path)}: {message}")


# --------------------------------------------------------------------------- checking
def _build(data: Any, default_name: str) -> Sweep:
    if not isinstance(data, dict):
        raise _Invalid((), f"a sweep is a mapping of keys (problems, optimizers, ...), got {_kind(data)}")
    from deepobs.registry import close_matches

    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise _Invalid((key,), f"unknown key{close_matches(key, TOP_LEVEL_KEYS)} "
                                   f"(allowed: {', '.join(TOP_LEVEL_KEYS)})")
    for required in ("problems", "optimizers"):
        if required not in data:
            raise _Invalid((), f"missing key {required!r}")
    name = _text(data, "name", default_name)
    if not _NAME.match(name):
        raise _Invalid(("name",), f"must be letters, digits, '_', '-' or '.', got {name!r}")
    method = _choice(data, "search", tuple(SEARCHES), "grid")
    budget = _integer(data, "budget", None, minimum=1)
    if method != "grid" and budget is None:
        raise _Invalid(("search",), f"{method} search needs a budget (settings per problem and optimizer)")
    search_seed = _integer(data, "search_seed", 0, minimum=0)
    if "startup_trials" in data and method != "bayesian":
        raise _Invalid(("startup_trials",), "only bayesian search has startup trials")
    startup_trials = _integer(data, "startup_trials", 10, minimum=1)
    if "parallel_trials" in data and method != "bayesian":
        raise _Invalid(("parallel_trials",), "only bayesian search proposes trials in parallel")
    parallel_trials = _integer(data, "parallel_trials", 1, minimum=1)
    protocol = _protocol(data)
    run_options = {
        "num_epochs": _integer(data, "num_epochs", None, minimum=0),
        "batch_size": _integer(data, "batch_size", None, minimum=1),
        "weight_decay": _number(data, "weight_decay", None, minimum=0.0),
        "protocol": protocol,
        "fake_data": _integer(data, "fake_data", None, minimum=1),
        "data_dir": _text(data, "data_dir", None),
        "device": _text(data, "device", None),
        "eval_batch_size": _integer(data, "eval_batch_size", None, minimum=1),
        "train_log_interval": _integer(data, "train_log_interval", None, minimum=1),
        **_schedule(data),
    }
    problems = _problems(data)
    searches = _searches(data, method, budget, search_seed, startup_trials, parallel_trials)
    seeds = _seeds(data.get("seeds", TUNING_SEED), ("seeds",))
    rerun_seeds = _rerun_seeds(data)
    executor = _choice(data, "executor", EXECUTORS, "local")
    workers = _integer(data, "workers", 1, minimum=1)
    slurm = _slurm(data)
    return Sweep(name=name, problems=problems, searches=searches,
                 output_dir=_text(data, "output_dir", "./results"), seeds=seeds,
                 rerun_seeds=rerun_seeds, mode=_choice(data, "mode", ("final", "best"), "final"),
                 run_options={k: v for k, v in run_options.items() if v is not None},
                 executor=executor, workers=workers, slurm=slurm)


def _kind(value) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), f"the {type(value).__name__} {value!r}")


def _text(data: dict, key: str, default, path: tuple = ()):
    if key not in data:
        return default
    value = data[key]
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise _Invalid(path + (key,), f"must be non-empty text, got {_kind(value)}")
    return value


def _choice(data: dict, key: str, allowed: tuple, default):
    value = data.get(key, default)
    if value not in allowed or not isinstance(value, str):
        raise _Invalid((key,), f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _integer(data: dict, key: str, default, minimum: int, path: tuple = ()):
    if key not in data:
        return default
    return _as_integer(data[key], path + (key,), minimum)


def _as_integer(value, path: tuple, minimum: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _Invalid(path, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _as_number(value, path: tuple) -> float:
    """A finite number; YAML reads ``1e-3`` (no dot) as text, which is accepted here."""
    if isinstance(value, bool):
        raise _Invalid(path, f"must be a number, got {value!r}")
    try:
        number = float(value) if isinstance(value, (int, float, str)) else None
    except (ValueError, OverflowError):
        number = None
    if number is None or not math.isfinite(number):
        raise _Invalid(path, f"must be a finite number, got {value!r}")
    return number


def _number(data: dict, key: str, default, minimum: float, path: tuple = ()):
    if key not in data:
        return default
    number = _as_number(data[key], path + (key,))
    if number < minimum:
        raise _Invalid(path + (key,), f"must be >= {minimum}, got {data[key]!r}")
    return number


def _schedule(data: dict) -> dict:
    """``lr_schedule`` as the run options ``lr_schedule`` and ``schedule_params``; names and
    parameter types are checked here, lengths against each problem's epochs in the run."""
    from deepobs.runners.schedules import SCHEDULES, check_schedule

    if "lr_schedule" not in data:
        return {}
    value = data["lr_schedule"]
    params = dict(value) if isinstance(value, dict) else {}
    name = params.pop("name", None) if isinstance(value, dict) else value
    if not isinstance(name, str) or name not in SCHEDULES:
        raise _Invalid(("lr_schedule",), f"must be one of {', '.join(SCHEDULES)} or {{name: NAME, ...}}, "
                                         f"got {name!r}")
    try:
        check_schedule(name, params, num_epochs=10 ** 6)
    except ConfigurationError as error:
        raise _Invalid(("lr_schedule",), str(error)) from None
    return {"lr_schedule": name, "schedule_params": params} if params else {"lr_schedule": name}


def _protocol(data: dict) -> str:
    value = data.get("protocol", "1.2")
    if str(value) != "1.2":
        raise _Invalid(("protocol",), f"sweeps select settings on the validation split, which only "
                                      f"protocol 1.2 has; got {value!r} (use deepobs-run for protocol 1.1)")
    return "1.2"


def _problems(data: dict) -> tuple:
    from deepobs.registry import get_problem_class

    value = data["problems"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _Invalid(("problems",), f"must be a non-empty list of problem names, got {_kind(value)}")
    problems, seen = [], set()
    for index, item in enumerate(value):
        path = ("problems", index)
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise _Invalid(path, f"must be a problem name or {{name: ..., num_epochs: ...}}, got {_kind(item)}")
        for key in item:
            if key not in PROBLEM_KEYS:
                raise _Invalid(path + (key,), f"unknown key (allowed: {', '.join(PROBLEM_KEYS)})")
        if "name" not in item:
            raise _Invalid(path, "missing key 'name'")
        name = _text(item, "name", None, path)
        try:
            get_problem_class(name)
        except ConfigurationError as error:
            raise _Invalid(path + ("name",), str(error)) from None
        if name in seen:
            raise _Invalid(path + ("name",), f"problem {name!r} is listed twice")
        seen.add(name)
        problems.append(ProblemEntry(
            name, _integer(item, "batch_size", None, 1, path), _integer(item, "num_epochs", None, 0, path),
            _number(item, "weight_decay", None, 0.0, path)))
    return tuple(problems)


def _searches(data: dict, method: str, budget, search_seed: int, startup_trials: int,
              parallel_trials: int) -> dict:
    value = data["optimizers"]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        raise _Invalid(("optimizers",), "give each optimizer its search space: {sgd: {lr: [0.01, 0.1]}}")
    if not isinstance(value, dict) or not value:
        raise _Invalid(("optimizers",), f"must be a mapping {{optimizer: {{hyperparameter: values}}}}, "
                                        f"got {_kind(value)}")
    searches = {}
    for optimizer, space in value.items():
        path = ("optimizers", optimizer)
        declared = _declared_hyperparameters(optimizer, path)
        if space is None:
            space = {}
        if not isinstance(space, dict):
            raise _Invalid(path, f"must be a mapping {{hyperparameter: values}}, got {_kind(space)}")
        parsed = {}
        for name, spec in space.items():
            if name not in declared:
                from deepobs.registry import close_matches

                raise _Invalid(path + (name,), f"unknown hyperparameter of {optimizer}"
                                               f"{close_matches(name, declared)} "
                                               f"(allowed: {', '.join(sorted(declared)) or 'none'})")
            parsed[name] = _space(spec, declared[name].get("type", float), path + (name,), method)
        kwargs = {"budget": budget}
        if method in ("random", "bayesian"):
            kwargs["seed"] = search_seed
        if method == "bayesian":
            kwargs.update(startup_trials=startup_trials, batch=parallel_trials)
        try:
            searches[optimizer] = SEARCHES[method](optimizer, parsed, **kwargs)
        except ConfigurationError as error:
            raise _Invalid(path, str(error)) from None
    written = {}
    for optimizer, search in searches.items():
        name = _written_name(optimizer)
        if name in written:
            raise _Invalid(("optimizers", optimizer), f"writes to the same folder {name!r} as {written[name]!r}")
        written[name] = optimizer
    return searches


def _written_name(optimizer: str) -> str:
    from deepobs.runners.optimizers import resolve_optimizer

    return resolve_optimizer(optimizer).name


def _declared_hyperparameters(optimizer: str, path: tuple) -> dict:
    from deepobs.runners.optimizers import resolve_optimizer

    if not optimizer.strip() or "\x00" in optimizer:
        raise _Invalid(path, f"bad optimizer name {optimizer!r}")
    try:
        return resolve_optimizer(optimizer).hyperparameters
    except ConfigurationError as error:
        raise _Invalid(path, str(error)) from None
    except Exception as error:  # a dotted path that imports but is no optimizer
        raise _Invalid(path, f"optimizer {optimizer!r} cannot be loaded: {type(error).__name__}: {error}") from None


def _space(spec, value_type, path: tuple, method: str):
    """One hyperparameter's space: a fixed value, a list of choices or a distribution."""
    if isinstance(spec, dict):
        return _distribution(spec, value_type, path, method)
    if isinstance(spec, list):
        if value_type is tuple and spec and not isinstance(spec[0], list):
            return tuple(_value(v, float, path + (i,)) for i, v in enumerate(spec))
        if not spec:
            raise _Invalid(path, "the list of values is empty")
        return [_value(v, value_type, path + (i,)) for i, v in enumerate(spec)]
    return _value(spec, value_type, path)


def _value(value, value_type, path: tuple):
    from deepobs.tuner.runs import coerce_value

    if value_type is tuple:
        if not isinstance(value, list):
            raise _Invalid(path, f"must be a list of numbers, got {_kind(value)}")
        return tuple(_as_number(v, path + (i,)) for i, v in enumerate(value))
    if isinstance(value, (dict, list)) or value is None:
        raise _Invalid(path, f"must be a {value_type.__name__}, got {_kind(value)}")
    try:
        coerced = coerce_value(path[-1] if path else "value", value, value_type)
    except ConfigurationError:
        raise _Invalid(path, f"must be a {value_type.__name__}, got {value!r}") from None
    try:  # the runner's rule for a value, checked before anything runs
        check_hyperparameter_value(path[-1] if path else "value", coerced)
    except ConfigurationError as error:
        raise _Invalid(path, str(error)) from None
    return coerced


def _distribution(spec: dict, value_type, path: tuple, method: str):
    kinds = [key for key in spec if key in DISTRIBUTIONS]
    if len(kinds) != 1:
        raise _Invalid(path, f"a distribution is a mapping with one of {', '.join(DISTRIBUTIONS)}, "
                             f"got keys {', '.join(map(str, spec)) or 'none'}")
    kind = kinds[0]
    extra = set(spec) - {kind} - ({"args", "loc", "scale"} if kind == "scipy" else set())
    if extra:
        raise _Invalid(path + (sorted(map(str, extra))[0],), f"unknown key for {kind}")
    if value_type not in (float, int):
        raise _Invalid(path, f"{kind} draws numbers; this hyperparameter is {value_type.__name__}")
    if kind == "scipy":
        return _scipy_distribution(spec, path)
    bounds = spec[kind]
    size = 3 if kind == "log_grid" else 2
    if not isinstance(bounds, list) or len(bounds) != size:
        what = "[low, high, number of points]" if kind == "log_grid" else "[low, high]"
        raise _Invalid(path + (kind,), f"must be {what}, got {bounds!r}")
    try:
        if kind == "int_uniform":
            return spaces.int_uniform(*(_as_integer(b, path + (kind, i), -2**62) for i, b in enumerate(bounds)))
        low, high = (_as_number(b, path + (kind, i)) for i, b in enumerate(bounds[:2]))
        if kind == "log_grid":
            points = spaces.log_grid(low, high, _as_integer(bounds[2], path + (kind, 2), 2))
            return [value_type(p) for p in points] if value_type is float else points
        return spaces.log_uniform(low, high) if kind == "log_uniform" else spaces.uniform(low, high)
    except ConfigurationError as error:
        raise _Invalid(path + (kind,), str(error)) from None


def _scipy_distribution(spec: dict, path: tuple):
    import scipy.stats

    name = spec["scipy"]
    family = getattr(scipy.stats, name, None) if isinstance(name, str) and name.isidentifier() else None
    if not isinstance(family, (scipy.stats.rv_continuous, scipy.stats.rv_discrete)):
        raise _Invalid(path + ("scipy",), f"unknown scipy.stats distribution {name!r}")
    args = spec.get("args", [])
    if not isinstance(args, list):
        raise _Invalid(path + ("args",), f"must be a list of numbers, got {_kind(args)}")
    numbers = [_as_number(a, path + ("args", i)) for i, a in enumerate(args)]
    keywords = {key: _as_number(spec[key], path + (key,)) for key in ("loc", "scale") if key in spec}
    try:
        frozen = family(*numbers, **keywords)
        frozen.rvs(random_state=0)  # rejects bad shape parameters now
    except Exception as error:  # scipy reports bad parameters in several ways
        raise _Invalid(path, f"bad parameters for scipy.stats.{name}: {_one_line(str(error))}") from None
    return frozen


def _seeds(value, path: tuple) -> tuple:
    if isinstance(value, list):
        if not value:
            raise _Invalid(path, "the list of seeds is empty")
        seeds = tuple(_as_integer(seed, path + (i,), 0) for i, seed in enumerate(value))
    else:
        seeds = (_as_integer(value, path, 0),)
    for index, seed in enumerate(seeds):
        if seed > MAX_SEED:
            where = path + (index,) if isinstance(value, list) else path
            raise _Invalid(where, f"a seed must be at most {MAX_SEED} (NumPy's limit), got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise _Invalid(path, f"seeds repeat: {list(seeds)}")
    return seeds


def _rerun_seeds(data: dict) -> tuple:
    value = data.get("rerun_best", False)
    if value is True:
        return RERUN_SEEDS
    if value is False or value is None:
        return ()
    if isinstance(value, list):
        return _seeds(value, ("rerun_best",))
    raise _Invalid(("rerun_best",), f"must be true, false or a list of seeds, got {value!r}")


_SLURM_TYPES = {
    "partition": str, "timeout_min": int, "gpus_per_node": int, "cpus_per_task": int, "mem_gb": float,
    "array_parallelism": int, "account": str, "qos": str, "constraint": str,
    "additional_parameters": dict, "setup": list, "poll_seconds": float,
}


def _slurm(data: dict) -> dict:
    value = data.get("slurm", {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(("slurm",), f"must be a mapping of SLURM settings, got {_kind(value)}")
    checked = {}
    for key, item in value.items():
        path = ("slurm", key)
        if key not in _SLURM_TYPES:
            raise _Invalid(path, f"unknown SLURM setting (allowed: {', '.join(_SLURM_TYPES)})")
        kind = _SLURM_TYPES[key]
        if kind is int:
            checked[key] = _as_integer(item, path, 0 if key == "gpus_per_node" else 1)
        elif kind is float:
            checked[key] = _as_number(item, path)
            if checked[key] <= 0:
                raise _Invalid(path, f"must be > 0, got {item!r}")
        elif kind is str:
            checked[key] = _text(value, key, None, ("slurm",))
        elif kind is dict:
            if not isinstance(item, dict) or not all(isinstance(v, (str, int, float)) for v in item.values()):
                raise _Invalid(path, "must be a mapping of sbatch options to values")
            checked[key] = dict(item)
        else:
            if not isinstance(item, list) or not all(isinstance(line, str) for line in item):
                raise _Invalid(path, "must be a list of shell lines")
            checked[key] = list(item)
    return checked
