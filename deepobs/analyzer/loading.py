"""Read DeepOBS result trees (v1.2 files of our runner, v1.1 files of the published
baselines) into one pandas table with one row per run."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from deepobs import result_schema
from deepobs.analyzer.divergence import run_divergence
from deepobs.errors import DataError
from deepobs.safe_names import printable

#: Per-epoch curves, in DeepOBS's key names (train = the train_eval subset).
METRICS = ("train_losses", "valid_losses", "test_losses",
           "train_accuracies", "valid_accuracies", "test_accuracies")

#: TensorFlow optimizer names of the published v1.1 baselines -> our names.
OPTIMIZER_NAMES = {
    "GradientDescentOptimizer": "SGD",
    "MomentumOptimizer": "Momentum",
    "AdamOptimizer": "Adam",
}

#: v1.1/TensorFlow hyperparameter names -> ours (runners/optimizers.py).
HYPERPARAMETER_NAMES = {"learning_rate": "lr", "use_nesterov": "nesterov"}

#: Keys every run file must have (v1.2 names; v1.1 files are mapped first).
REQUIRED_KEYS = result_schema.REQUIRED
#: Larger files are not read (ours are kilobytes to a few megabytes).
MAX_FILE_BYTES = 512 * 2 ** 20

#: Provenance keys copied to the table when a file has them.
PROVENANCE_KEYS = ("config_hash", "git_commit", "git_revision", "deepobs_version",
                   "torch_version", "python_version", "device", "fake_data", "wall_time")


@dataclass
class SkippedFile:
    """A file that could not be read as a run, and why."""

    path: str
    reason: str


@dataclass
class OutputCheck:
    """What :func:`check_output` found in a results tree."""

    summary: list = field(default_factory=list)
    empty_settings: list = field(default_factory=list)
    corrupt_files: list = field(default_factory=list)
    hash_conflicts: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no setting is empty, no file corrupt and no config hashes conflict."""
        return not (self.empty_settings or self.corrupt_files or self.hash_conflicts)

    def lines(self) -> list:
        """Human-readable report, one finding per line."""
        out = list(self.summary)
        out += [f"empty setting folder: {path}" for path in self.empty_settings]
        out += [f"skipped file: {printable(item.path)}: {item.reason}" for item in self.corrupt_files]
        out += [f"conflicting config_hash in {item}" for item in self.hash_conflicts]
        return out


def _curve(values) -> Optional[np.ndarray]:
    if values is None:
        return None
    return np.asarray([math.nan if v is None else v for v in values], dtype=float)


def _number_or_none(value) -> Optional[float]:
    """A learning rate as a float; None for a custom optimizer's non-numeric one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


#: Significant digits of a hyperparameter value in a setting's identity: the same value
#: written with other precision (``0.0025118864`` by a user, ``2.5118864315e-03`` by
#: DeepOBS) is one setting.
SETTING_DIGITS = 6


def _setting_value(value) -> str:
    if isinstance(value, float):
        return format(value, f".{SETTING_DIGITS}g")
    if isinstance(value, (list, tuple)):
        return "_".join(_setting_value(item) for item in value)
    if isinstance(value, dict):
        return "_".join(f"{key}-{_setting_value(value[key])}" for key in sorted(value))
    return str(value)


def schedule_label(optimizer: str, training_params: dict) -> str:
    """The name an optimizer is grouped and labelled under: ``Adam`` with a constant
    learning rate (or DeepOBS's step schedule), ``Adam+warmup_cosine`` with a per-step
    schedule, so that one optimizer run with two schedules is two entries of every plot
    and table, each with its own selected setting."""
    schedule = (training_params or {}).get("lr_schedule")
    return optimizer if schedule in (None, "constant", "step") else f"{optimizer}+{schedule}"


def setting_key(record: dict, extras: dict) -> str:
    """A setting's identity from a file's content, not its folder name: runs group by
    their sizes, hyperparameters (to SETTING_DIGITS significant digits), schedule,
    protocol and the other options that change the numbers (``extras``)."""
    parts = {"num_epochs": record["num_epochs"], "batch_size": record["batch_size"]}
    if record["weight_decay"] is not None:
        parts["weight_decay"] = record["weight_decay"]
    parts.update(sorted(record["hyperparams"].items()))
    parts.update(sorted(record["training_params"].items()))
    parts.update(sorted(extras.items()))
    if record["protocol"] != "1.2":
        parts["protocol"] = record["protocol"]
    return "__".join(f"{name}__{_setting_value(value)}" for name, value in parts.items())


def normalize_run(data: dict, path: Path) -> dict:
    """One run file's content as a flat record with v1.2 names.

    v1.1 files (``optimizer``, ``learning_rate``, ``hyperparams``) are mapped to the
    v1.2 names; TensorFlow optimizer names become ours (GradientDescentOptimizer ->
    SGD, ...). Raises DataError naming the file when the content does not follow the
    result schema (:mod:`deepobs.result_schema`: a required key missing, a value of the
    wrong type, a per-epoch list without num_epochs+1 entries, a name that cannot be a
    file name).
    """
    result_schema.validate(data, printable(path))
    is_v11 = "optimizer_name" not in data and "optimizer" in data
    if is_v11:
        source_name = data["optimizer"]
        hyperparams = {HYPERPARAMETER_NAMES.get(k, k): v for k, v in (data.get("hyperparams") or {}).items()}
        hyperparams["lr"] = data.get("learning_rate")
        training_params = {k: data.get(k) for k in ("lr_sched_epochs", "lr_sched_factors")
                           if data.get(k) is not None}
        protocol = "1.1"
    else:
        source_name = data.get("optimizer_name")
        hyperparams = dict(data.get("optimizer_hyperparams") or {})
        training_params = dict(data.get("training_params") or {})
        protocol = str(data.get("protocol") or ("1.2" if "valid_losses" in data else "1.1"))
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if source_name is None:
        missing.append("optimizer_name")
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    num_epochs = data["num_epochs"]
    record = {
        "problem": data["testproblem"],
        "optimizer": OPTIMIZER_NAMES.get(source_name, source_name),
        "optimizer_source_name": source_name,
        "setting": None,  # below: from the content, not the folder name
        "folder": path.parent.name,
        "seed": int(data["random_seed"]),
        "format": "1.1" if is_v11 else "1.2",
        "protocol": protocol,
        "num_epochs": int(num_epochs),
        "batch_size": int(data["batch_size"]),
        "weight_decay": data.get("weight_decay", data.get("l2_reg")),
        "hyperparams": hyperparams,
        "training_params": training_params,
        "lr": _number_or_none(hyperparams.get("lr", hyperparams.get("learning_rate"))),
    }
    if is_v11 and record["optimizer"] == "Momentum" and hyperparams.get("nesterov"):
        record["optimizer"] = "Nesterov"
    record["optimizer"] = schedule_label(record["optimizer"], training_params)
    extras = {key: data.get(key) for key in ("amp", "base_optimizer", "base_hyperparams",
                                             "fallback_optimizer", "fallback_hyperparams") if data.get(key)}
    record["setting"] = setting_key(record, extras)
    for metric in METRICS:
        curve = _curve(data.get(metric))
        if curve is not None and len(curve) != num_epochs + 1:
            raise DataError(f"{path}: {metric} has {len(curve)} entries, expected num_epochs+1 = {num_epochs + 1}")
        record[metric] = curve
    # One definition of divergence (deepobs.analyzer.divergence), shared with the tuner.
    record["diverged"], record["diverged_epoch"] = run_divergence(data)
    for key in ("train_times", "eval_times"):
        record[key] = _curve(data.get(key))
    for key in PROVENANCE_KEYS:
        record[key] = data.get(key)
    record["path"] = str(path)
    return record


def read_run_file(path) -> dict:
    """Parse and validate one result file (NaN/Infinity literals allowed) into a run record."""
    path = Path(path)
    try:
        if not path.is_file():
            raise DataError(f"{printable(path)}: not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DataError(f"{printable(path)}: larger than {MAX_FILE_BYTES // 2 ** 20} MiB")
    except OSError as error:
        raise DataError(f"{printable(path)}: unreadable ({error.strerror or type(error).__name__})") from None
    return normalize_run(result_schema.load(path), path)


def find_run_files(root) -> list:
    """All ``random_seed__*.json`` files below ``root`` (or ``root`` itself), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"results path {str(root)!r} does not exist")
    found = []
    for folder, _, files in os.walk(root):
        found += [Path(folder) / name for name in files
                  if name.startswith("random_seed__") and name.endswith(".json")]
    return sorted(found)


def find_setting_folders(root) -> list:
    """Folders whose name contains ``num_epochs`` (DeepOBS's rule for a setting)."""
    root = Path(root)
    return sorted(Path(folder) for folder, _, _ in os.walk(root) if "num_epochs" in Path(folder).name)


def config_hash_conflicts(runs: pd.DataFrame) -> list:
    """Setting folders whose files carry different ``config_hash`` values.

    Returns one message per conflict, naming the files and their hashes.
    """
    if runs.empty or "config_hash" not in runs:
        return []
    messages = []
    folders = runs["path"].map(lambda p: str(Path(p).parent))
    for folder, group in runs.groupby(folders, sort=True):
        hashes = group["config_hash"].dropna()
        if hashes.nunique() > 1:
            files = ", ".join(f"{Path(p).name} ({h})" for p, h in zip(group["path"], group["config_hash"]))
            messages.append(f"{folder}: {files}")
    return messages


def _run_table(records: list) -> pd.DataFrame:
    columns = ["source", "problem", "optimizer", "setting", "seed"]
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=columns + ["path"])
    names = sorted({name for hp in frame["hyperparams"] for name in hp})
    for name in names:
        frame[f"hp_{name}"] = [hp.get(name) for hp in frame["hyperparams"]]
    front = [c for c in columns if c in frame]
    return frame[front + [c for c in frame.columns if c not in front]]


def load_results(paths, source: Optional[str] = None, strict: bool = False,
                 check_hashes: bool = True) -> pd.DataFrame:
    """Load every run below one or more results trees into one table (one row per run).

    Columns: identity (``source``, ``problem``, ``optimizer``, ``setting``, ``seed``),
    hyperparameters (``hyperparams`` dict, ``lr``, one ``hp_<name>`` column each),
    per-epoch curves as arrays (:data:`METRICS`, None where absent), ``diverged``,
    and provenance (format, protocol, versions, config_hash, ``path``).

    Args:
        paths: a folder or file, or a list of them.
        source: a label for these runs (default: the folder's name).
        strict: raise on a corrupt file instead of skipping it with a warning.
        check_hashes: raise DataError when one setting folder mixes config hashes.

    The files that were skipped are in ``table.attrs["skipped"]``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    records, skipped = [], []
    for root in paths:
        label = source or Path(root).resolve().name
        for path in find_run_files(root):
            try:
                record = read_run_file(path)
            except (DataError, TypeError, ValueError, OverflowError, RecursionError) as error:
                if strict:
                    raise
                reason = str(error)
                prefix = printable(path) + ": "
                reason = reason[len(prefix):] if reason.startswith(prefix) else f"{type(error).__name__}: {reason}"
                skipped.append(SkippedFile(str(path), " ".join(reason.split())))
                continue
            record["source"] = label
            records.append(record)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} invalid result file(s), first: "
                      f"{printable(skipped[0].path)}: {skipped[0].reason}", stacklevel=2)
    table = _run_table(records)
    if check_hashes:
        conflicts = config_hash_conflicts(table)
        if conflicts:
            raise DataError("refusing to merge runs with different config_hash in one setting: "
                            + "; ".join(conflicts))
    table.attrs["skipped"] = skipped
    return table


def check_output(results_path) -> OutputCheck:
    """Survey a results tree without failing on it (DeepOBS's ``check_output``).

    Reports "<problem> | <optimizer>: k setting(s) with n seed(s)" per pair, and
    lists empty setting folders, corrupt files and config-hash conflicts.
    """
    root = Path(results_path)
    check = OutputCheck()
    check.empty_settings = [str(folder) for folder in find_setting_folders(root)
                            if not any(folder.glob("*.json"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = load_results(root, check_hashes=False)
    check.corrupt_files = list(runs.attrs.get("skipped", []))
    check.hash_conflicts = config_hash_conflicts(runs)
    if not runs.empty:
        for (problem, optimizer), group in runs.groupby(["problem", "optimizer"], sort=True):
            seeds = group.groupby("setting")["seed"].nunique()
            counts = ", ".join(f"{k} setting(s) with {n} seed(s)"
                               for n, k in sorted(seeds.value_counts().items()))
            check.summary.append(f"{problem} | {optimizer}: {counts}")
    return check


def iter_problems(runs: pd.DataFrame) -> Iterable[str]:
    """The problems of a run table, sorted."""
    return sorted(runs["problem"].unique()) if not runs.empty else []


def to_long(runs: pd.DataFrame) -> pd.DataFrame:
    """The run table in long form: one row per (run, epoch), one column per metric.

    Handy for pandas/seaborn plotting and for writing a flat CSV or parquet file.
    """
    identity = ["source", "problem", "optimizer", "setting", "seed", "lr", "diverged"]
    frames = []
    for _, run in runs.iterrows():
        epochs = np.arange(run["num_epochs"] + 1)
        columns = {name: run[name] for name in identity}
        columns["epoch"] = epochs
        for metric in METRICS:
            if isinstance(run[metric], np.ndarray):
                columns[metric] = run[metric]
        frames.append(pd.DataFrame(columns))
    if not frames:
        return pd.DataFrame(columns=identity + ["epoch"])
    return pd.concat(frames, ignore_index=True)
