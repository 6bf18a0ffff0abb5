"""The schema of a result file: the types of the keys of DeepOBS 1.1 and 1.2 files and of
the keys our runner adds (docs/results.md lists them all).

One module for every reader and writer: the analyzer validates each file before it uses
it (an invalid file is skipped and named, with the reason), the tuner before it scores a
run, and a writer can check what it is about to write. Unknown keys are allowed (DeepOBS
files grow keys over time); only their JSON nesting depth is bounded.

Imports nothing heavy (no torch, no numpy): a result file is plain JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Optional

from deepobs.errors import DataError
from deepobs.safe_names import component_problem, printable

#: Largest integer accepted for sizes and seeds (what numpy and pandas hold: int64).
MAX_INT = 2 ** 63 - 1
#: Deepest JSON nesting accepted anywhere in a file (ours is 3 deep).
MAX_DEPTH = 16
#: Per-epoch curves the analyzer reads: lists of num_epochs+1 numbers (or null).
CURVES = ("train_losses", "valid_losses", "test_losses",
          "train_accuracies", "valid_accuracies", "test_accuracies")


def _kind(value) -> str:
    """A short, one-line description of a value for messages (never recursive)."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key(s)"
    if isinstance(value, list):
        inner = f", the first {_kind(value[0]) if not isinstance(value[0], (list, dict)) else 'nested'}" \
            if value else ""
        return f"a list of {len(value)} item(s){inner}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 24:
        return f"an integer of {len(str(abs(value)))} digits"
    text = printable(repr(value)) if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value, finite: bool = False) -> bool:
    """A JSON number that fits a float (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        if abs(value) > 1.7e308:
            return False
        return True
    return math.isfinite(value) or not finite


# Checkers: value -> None when fine, else what is wrong.
def _integer(minimum: int = 0) -> Callable:
    def check(value):
        if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_INT:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
            return f"must be an integer in [{minimum}, 2**63-1], got {_kind(value)}"
        return None
    return check


def _optional(check: Callable) -> Callable:
    def optional(value):
        return None if value is None else check(value)
    return optional


def _number(finite: bool = True) -> Callable:
    def check(value):
        if not _is_number(value, finite):
            return f"must be a {'finite ' if finite else ''}number, got {_kind(value)}"
        return None
    return check


def _text(value):
    return None if isinstance(value, str) else f"must be text, got {_kind(value)}"


def _name(value):
    """Text that can be a file name: problem and optimizer names become figure names."""
    problem = component_problem(value)
    return None if problem is None else f"{problem}, got {_kind(value)}"


def _boolean(value):
    return None if isinstance(value, bool) else f"must be true or false, got {_kind(value)}"


def _curve(value):
    """A list of numbers (NaN and Infinity allowed: a diverged run) or nulls."""
    if not isinstance(value, list):
        return f"must be a list of numbers, got {_kind(value)}"
    for index, item in enumerate(value):
        if item is not None and not _is_number(item):
            return f"must be a list of numbers, item {index} is {_kind(item)}"
    return None


def _hyperparameter_number(value) -> bool:
    """A number an optimizer takes: finite or ±infinity (Prodigy's ``growth_rate`` default), never NaN."""
    return _is_number(value) and not (isinstance(value, float) and math.isnan(value))


def _scalar_or_numbers(value):
    """A hyperparameter value: a number (±infinity allowed, NaN not), true/false, text,
    null, or a list of those."""
    items = value if isinstance(value, list) else [value]
    if all(item is None or isinstance(item, (bool, str)) or _hyperparameter_number(item) for item in items):
        return None
    return f"must be a number (not NaN), true/false, text, null or a list of those, got {_kind(value)}"


def _parameters(value):
    """A mapping of hyperparameter names to values."""
    if not isinstance(value, dict):
        return f"must be a mapping of names to values, got {_kind(value)}"
    for name, item in value.items():
        problem = _scalar_or_numbers(item)
        if problem:
            return f"value of {name!r} {problem}"
    return None


def _mapping(value):
    if not isinstance(value, dict):
        return f"must be a mapping, got {_kind(value)}"
    return f"is nested more than {MAX_DEPTH} deep" if _depth(value, MAX_DEPTH) else None


def _list_of_mappings(value):
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        return f"must be a list of mappings, got {_kind(value)}"
    return None


def _diverged_at(value):
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"must be a mapping {{epoch, step, reason}} or null, got {_kind(value)}"
    return _optional(_integer())(value.get("epoch"))


#: Key -> checker, for every key of a DeepOBS 1.1 or 1.2 file and every key we add.
KEYS = {
    # DeepOBS 1.2 (and 1.1) meta keys
    "testproblem": _name,
    "batch_size": _integer(1),
    "num_epochs": _integer(0),
    "random_seed": _integer(0),
    "weight_decay": _optional(_number()),
    "optimizer_name": _name,
    "optimizer_hyperparams": _parameters,
    "training_params": _mapping,  # the schedule and its parameters
    "train_log_interval": _optional(_integer(1)),
    # DeepOBS 1.1 names
    "optimizer": _name,
    "learning_rate": _optional(_number()),
    "hyperparams": _parameters,
    "lr_sched_epochs": _optional(_curve),
    "lr_sched_factors": _optional(_curve),
    # curves
    **{key: _curve for key in CURVES},
    "minibatch_train_losses": _curve,
    "learning_rates": _curve,
    "train_times": _curve,
    "eval_times": _curve,
    # divergence
    "diverged": _boolean,
    "diverged_at": _diverged_at,
    # our extras
    "protocol": _text,
    "fake_data": _optional(_integer(1)),
    "optimizer_class": _optional(_text),
    "amp": _optional(_text),
    "compile": _optional(_text),
    "channels_last": _boolean,
    "eval_batch_size": _optional(_integer(1)),
    "num_threads": _optional(_integer(0)),
    "device": _optional(_text),
    "deepobs_version": _optional(_text),
    "torch_version": _optional(_text),
    "python_version": _optional(_text),
    "wall_time": _optional(_number(finite=False)),
    "config_hash": _optional(_text),
    "git_commit": _optional(_text),
    "git_revision": _optional(_text),
    "optimizer_package": _optional(_mapping),
    "machine": _optional(_mapping),
    "resumed_at": _list_of_mappings,
    "run_config": _mapping,
    "optimizer_setup": _optional(_mapping),
    # wrappers (SAM, Lookahead, ...) and matrix optimizers (Muon, ...)
    "base_optimizer": _optional(_text),
    "base_hyperparams": _optional(_parameters),
    "fallback_optimizer": _optional(_text),
    "fallback_hyperparams": _optional(_parameters),
}
#: Keys every file has (v1.2 names; a v1.1 file has ``optimizer`` for ``optimizer_name``).
REQUIRED = ("testproblem", "batch_size", "num_epochs", "random_seed", "train_losses", "test_losses")


def _depth(value, limit: int) -> bool:
    """True when ``value`` nests deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]
    return False


def problems(data) -> list:
    """Everything wrong with a parsed result file, one short line each (empty: valid)."""
    if not isinstance(data, dict):
        return [f"not a JSON object but {_kind(data)}"]
    found = []
    missing = [key for key in REQUIRED if key not in data]
    if "optimizer_name" not in data and "optimizer" not in data:
        missing.append("optimizer_name")
    if missing:
        found.append(f"missing key(s) {', '.join(missing)}")
    for key, value in data.items():
        check = KEYS.get(key)
        if check is not None:
            problem = check(value)
            if problem:
                found.append(f"{key} {problem}")
        elif _depth(value, MAX_DEPTH):
            found.append(f"{key} is nested more than {MAX_DEPTH} deep")
    epochs = data.get("num_epochs")
    if not found and isinstance(epochs, (int, float)):
        for key in CURVES:
            if isinstance(data.get(key), list) and len(data[key]) != int(epochs) + 1:
                found.append(f"{key} has {len(data[key])} entries, expected num_epochs+1 = {int(epochs) + 1}")
    return found


def validate(data, where: Optional[str] = None) -> dict:
    """``data`` itself when it is a valid result, else a one-line DataError naming
    ``where`` (the file) and the first problem."""
    found = problems(data)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise DataError(f"{where + ': ' if where else ''}{found[0]}{more}")
    return data


def load(path) -> dict:
    """Read and validate one result file (NaN/Infinity literals allowed, as DeepOBS
    writes them). Raises DataError, one line naming the file, for anything else: an
    unreadable or truncated file, bad JSON, nesting that exhausts the parser, huge
    integer literals, or a value of the wrong type."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError, RecursionError, MemoryError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{printable(path)}: unreadable JSON ({type(error).__name__}: {reason[:200]})") from None
    return validate(data, printable(path))


__all__ = ["KEYS", "REQUIRED", "CURVES", "problems", "validate", "load", "MAX_INT", "MAX_DEPTH"]
