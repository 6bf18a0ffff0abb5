"""One run of a sweep: its description, where its result file lands, how to execute it.

A :class:`RunSpec` is a RunConfig: plain data (it pickles into worker processes and SLURM jobs).
:func:`execute_run` never raises: a failed run comes back as an outcome with its error,
so one bad run does not stop a sweep.
"""

from __future__ import annotations

import math
import os
import shlex
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from deepobs.errors import ConfigurationError
from deepobs.runners.run_config import RunConfig

#: Worker-wide device, set by the local pool (one GPU per worker); None: the default.
WORKER_DEVICE: Optional[str] = None


class RunSpec(RunConfig):
    """One run of a sweep: a :class:`~deepobs.runners.run_config.RunConfig` (plain data:
    it pickles into worker processes and SLURM jobs) with the tuner's conveniences."""

    @property
    def written_optimizer_name(self) -> str:
        """The optimizer folder name (``Momentum`` for ``--optimizer momentum``)."""
        return self.resolved().optimizer_name

    def result_folder(self) -> Path:
        """The setting folder the runner writes to (the same RunConfig rule)."""
        return RunConfig.run_folder(self.resolved())

    def find_result(self) -> Optional[Path]:
        """This run's result file, if it exists."""
        return RunConfig.find_result(self.resolved())

    def held_elsewhere(self) -> bool:
        """Whether another process holds this run's lock (it is running elsewhere: another
        sweep driver, a requeued job). Takes nothing: the lock is only probed."""
        from deepobs.runners.locking import lock_path

        try:
            import fcntl

            descriptor = os.open(lock_path(self.result_folder(), self.random_seed), os.O_RDONLY)
        except (ImportError, OSError):  # no lock file (or no flock): nobody holds it
            return False
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(descriptor)  # closing drops a lock taken here
        return False

    def key(self) -> str:
        """A readable identity: problem/optimizer/setting/seed."""
        folder = self.result_folder()
        return f"{self.testproblem}/{folder.parent.name}/{folder.name}/seed__{self.random_seed}"

    def label(self) -> str:
        """A short line for progress messages."""
        from deepobs.runners.results import format_value

        values = " ".join(f"{name}={format_value(value)}" for name, value in sorted(self.hyperparams.items()))
        return f"{self.testproblem} {self.written_optimizer_name} {values} seed {self.random_seed}"

    def command(self, program: str = "deepobs-run") -> str:
        """The ``deepobs-run`` command line of this run (shell-quoted)."""
        # Like the sweep itself: skip a finished run, continue an interrupted one.
        return shlex.join([program, *self.to_argv(), "--skip_if_exists", "--resume", "--quiet"])


def coerce_hyperparams(optimizer: str, hyperparams: dict) -> dict:
    """Hyperparameter values converted to the optimizer's declared types.

    A sweep file's ``lr: 1`` becomes ``1.0``, so that the setting folder is the same as
    the one ``deepobs-run --lr 1`` writes. Unknown names and bad values are rejected.
    """
    from deepobs.runners.optimizers import resolve_optimizer

    declared = resolve_optimizer(optimizer).hyperparameters
    coerced = {}
    for name, value in hyperparams.items():
        if name not in declared:
            raise ConfigurationError(
                f"unknown hyperparameter {name!r} for optimizer {optimizer!r}; "
                f"allowed: {', '.join(sorted(declared)) or 'none'}")
        coerced[name] = coerce_value(name, value, declared[name].get("type", float))
    return coerced


def coerce_value(name: str, value, value_type):
    """``value`` as ``value_type`` (float, int, bool, str or tuple of floats)."""
    def fail():
        return ConfigurationError(
            f"hyperparameter {name!r} must be {getattr(value_type, '__name__', value_type)}, got {value!r}")

    if value_type is bool:
        if not isinstance(value, bool):
            raise fail()
        return value
    if value_type is tuple:
        if not isinstance(value, (list, tuple)) or not value:
            raise fail()
        return tuple(coerce_value(name, v, float) for v in value)
    if value_type is int:
        if isinstance(value, bool):
            raise fail()
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise fail()
        return int(value)
    if value_type is float:
        if isinstance(value, bool):
            raise fail()
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise fail() from None
        if not math.isfinite(number):
            raise fail()
        return number
    if value_type is str:
        if not isinstance(value, str):
            raise fail()
        return value
    return value


@dataclass
class RunOutcome:
    """What happened to one run.

    status: ``done`` (ran now), ``exists`` (a result file was there already),
    ``elsewhere`` (another process holds the run's lock: it is running elsewhere; not a
    failure) or ``failed`` (``error`` says why; ``details`` holds the traceback).
    """

    run: RunSpec
    status: str
    path: Optional[str] = None
    seconds: float = 0.0
    error: Optional[str] = None
    details: Optional[str] = None
    extra: dict = field(default_factory=dict)


def execute_run(run: RunSpec) -> RunOutcome:
    """Run one spec in this process, unless its result file exists. Never raises.

    A run interrupted earlier (killed sweep, preempted job) resumes from the checkpoint
    the runner left; the outcome of a run stopped by a signal is marked ``interrupted``.
    """
    started = time.perf_counter()
    try:
        existing = run.find_result()
        if existing is not None:
            return RunOutcome(run, "exists", str(existing))
        _train(run)
        path = run.find_result()
        if path is None:
            raise RuntimeError(f"the run finished but wrote no file in {run.result_folder()}")
        return RunOutcome(run, "done", str(path), time.perf_counter() - started)
    except Exception as error:  # one failed run must not stop the sweep
        from deepobs.runners.checkpoint import RunInterrupted
        from deepobs.runners.locking import RunLockedError

        if isinstance(error, RunLockedError):  # another driver or job runs it: not a failure
            return RunOutcome(run, "elsewhere", None, time.perf_counter() - started, error=_first_line(str(error)))

        return RunOutcome(run, "failed", None, time.perf_counter() - started,
                          error=_first_line(f"{type(error).__name__}: {error}"),
                          details=traceback.format_exc(),
                          extra={"interrupted": True} if isinstance(error, RunInterrupted) else {})


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else text


def _train(run: RunSpec) -> None:
    from deepobs.runners.optimizers import resolve_optimizer
    from deepobs.runners.runner import StandardRunner

    config = RunConfig.from_dict(run.to_dict()).replace(
        skip_if_exists=True, resume=True, quiet=True, device=run.device or WORKER_DEVICE)
    StandardRunner.for_optimizer(resolve_optimizer(run.optimizer)).run(config)


# --------------------------------------------------------------------------- objective
def validation_metric(output: dict) -> str:
    """The key a run is judged by: valid_accuracies if present, else valid_losses."""
    for key in ("valid_accuracies", "valid_losses"):
        if output.get(key):
            return key
    raise ConfigurationError(
        "the run has no validation split (protocol 1.1); tuning selects on validation data only")


def objective(output: dict, mode: str = "final") -> float:
    """Score of a run, higher is better (what a search maximises): the final (or best)
    validation accuracy, or the negated validation loss. A diverged run (the rule of
    :mod:`deepobs.analyzer.divergence`) or a non-finite value scores -inf."""
    if mode not in ("final", "best"):
        raise ConfigurationError(f"mode must be 'final' or 'best', got {mode!r}")
    key = validation_metric(output)
    value = run_value(output, key, mode)
    if not math.isfinite(value):
        return -math.inf
    return value if key == "valid_accuracies" else -value


def run_value(output: dict, metric: str, mode: str = "final") -> float:
    """A run's value of ``metric`` in its own units under the shared selection rule
    (:func:`deepobs.analyzer.selection.run_value`); NaN for a diverged run."""
    from deepobs.analyzer.divergence import run_divergence
    from deepobs.analyzer.selection import run_value as shared_run_value

    return shared_run_value(output.get(metric), metric, mode, diverged=run_divergence(output)[0])


def read_output(path) -> dict:
    """The JSON of a result file, checked against the result schema
    (:mod:`deepobs.result_schema`); a DataError (a ValueError) names the file and the problem."""
    from deepobs import result_schema

    return result_schema.load(path)
