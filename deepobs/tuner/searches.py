"""Grid, random and Bayesian (Optuna) search, judged on the validation split only.

Each search proposes settings of one optimizer's hyperparameters; :func:`tune_studies`
runs the proposals of many (problem, search) studies through one executor, scores every
setting by its validation metric (final or best epoch; never the test set), and, as in
the DeepOBS protocol, reruns each study's best setting with more seeds::

    from deepobs.tuner import GridSearch, log_grid
    search = GridSearch("sgd", {"lr": log_grid(1e-5, 1e2, 36)})
    result = search.tune("quadratic_deep", rerun_best_setting=True)  # seed 42, then 43–51
    result.best.setting
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

from deepobs.errors import ConfigurationError
from deepobs.tuner import spaces
from deepobs.tuner.progress import SweepProgress
from deepobs.tuner.records import SweepRecords
from deepobs.tuner.runs import (
    RunOutcome, RunSpec, coerce_hyperparams, objective, read_output, run_value, validation_metric,
)

#: The DeepOBS protocol: tune on seed 42, rerun the best setting with 43–51 (10 seeds).
TUNING_SEED = 42
RERUN_SEEDS = tuple(range(43, 52))
MODES = ("final", "best")

#: Run options a study passes to every RunSpec.
RUN_OPTIONS = ("output_dir", "batch_size", "num_epochs", "weight_decay", "protocol", "fake_data",
               "data_dir", "device", "eval_batch_size", "train_log_interval", "lr_schedule", "schedule_params")


def _check_budget(budget, required: bool) -> Optional[int]:
    if budget is None and not required:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigurationError(f"budget must be an integer >= 1, got {budget!r}")
    if budget > spaces.MAX_SETTINGS:
        raise ConfigurationError(f"budget must be at most {spaces.MAX_SETTINGS:,}, got {budget:,}")
    return budget


class Search:
    """Base class: a search over one optimizer's hyperparameters.

    Args:
        optimizer: an ``--optimizer`` name (registered, ``torch.optim`` class or dotted
            path; it must be importable by name in worker processes).
        space: ``{hyperparameter: list | distribution | fixed value}`` (see spaces.py).
        budget: settings to try (the number of grid points if None, for grid search).
    """

    method = ""

    def __init__(self, optimizer: str, space: dict, budget: Optional[int] = None):
        from deepobs.runners.optimizers import resolve_optimizer

        spaces.check_space(space)
        self.optimizer = optimizer
        declared = resolve_optimizer(optimizer).hyperparameters
        unknown = sorted(set(space) - set(declared))
        if unknown:
            raise ConfigurationError(
                f"unknown hyperparameter(s) {', '.join(unknown)} for optimizer {optimizer!r}; "
                f"allowed: {', '.join(sorted(declared)) or 'none'}")
        missing = sorted(name for name, hp in declared.items() if "default" not in hp and name not in space)
        if missing:
            raise ConfigurationError(
                f"the search space of {optimizer!r} must give {', '.join(missing)} (no default)")
        searched, fixed = spaces.split_space(space)
        # Check the listed and fixed values' types now, before any run starts.
        coerce_hyperparams(optimizer, fixed)
        for name, values in searched.items():
            if isinstance(values, list):
                searched[name] = [coerce_hyperparams(optimizer, {name: v})[name] for v in values]
        self.space = {**fixed, **searched}
        self.budget = budget

    def proposer(self, study_seed: int = 0) -> "Proposer":
        """A fresh proposer for one study."""
        raise NotImplementedError

    def planned_settings(self) -> int:
        """How many settings a study of this search tries."""
        return self.budget

    def tune(self, testproblem: str, output_dir: str = "./results", random_seed: int = TUNING_SEED,
             rerun_best_setting: bool = False, mode: str = "final", executor=None,
             seeds: Optional[Iterable[int]] = None, rerun_seeds: Iterable[int] = RERUN_SEEDS,
             progress: Optional[SweepProgress] = None, records: Optional[SweepRecords] = None,
             **run_options) -> "StudyResult":
        """Tune on ``testproblem`` with ``random_seed`` (or every seed of ``seeds``), pick
        the best setting on the validation metric and, if ``rerun_best_setting``, rerun it
        with ``rerun_seeds`` (default 43–51: the DeepOBS protocol, 10 seeds in all).

        ``run_options`` are passed to every run (num_epochs, batch_size, fake_data, ...).
        ``executor`` defaults to running in this process, one run after the other.
        """
        study = Study(testproblem, self, seeds=tuple(seeds) if seeds is not None else (random_seed,),
                      rerun_seeds=tuple(rerun_seeds) if rerun_best_setting else (), mode=mode,
                      run_options=dict(run_options, output_dir=output_dir))
        return tune_studies([study], executor, progress=progress, records=records)[0]


class Proposer:
    """Proposes settings of one study and learns their scores."""

    def ask(self, count: int) -> list:
        """Up to ``count`` new settings (all remaining ones for grid and random search);
        an empty list when the budget is spent."""
        raise NotImplementedError

    def tell(self, index: int, score: Optional[float]) -> None:
        """The score of the ``index``-th proposed setting (None: every run of it failed)."""


class _FixedListProposer(Proposer):
    def __init__(self, settings: list):
        self._settings = settings
        self._given = False

    def ask(self, count: int) -> list:
        if self._given:
            return []
        self._given = True
        return list(self._settings)


class GridSearch(Search):
    """Every combination of the listed values (the cartesian product).

    ``budget``, if given, is an upper bound: a larger grid is rejected before any run.
    """

    method = "grid"

    def __init__(self, optimizer: str, space: dict, budget: Optional[int] = None):
        super().__init__(optimizer, space, _check_budget(budget, required=False))
        self.settings = spaces.grid_points(self.space)
        if self.budget is not None and len(self.settings) > self.budget:
            raise ConfigurationError(
                f"the grid of {optimizer!r} has {len(self.settings)} points, more than the budget {self.budget}")

    def planned_settings(self) -> int:
        """The number of grid points."""
        return len(self.settings)

    def proposer(self, study_seed: int = 0) -> Proposer:
        """Proposes the grid points in order."""
        return _FixedListProposer(self.settings)


class RandomSearch(Search):
    """``budget`` settings drawn from the space (any scipy distribution, the helpers of
    spaces.py, or lists); the same ``seed`` gives the same settings, for every problem."""

    method = "random"

    def __init__(self, optimizer: str, space: dict, budget: int, seed: int = 0):
        super().__init__(optimizer, space, _check_budget(budget, required=True))
        self.seed = seed
        self.settings = [coerce_hyperparams(optimizer, point)
                         for point in spaces.random_points(self.space, self.budget, seed)]

    def proposer(self, study_seed: int = 0) -> Proposer:
        """Proposes the settings drawn at construction, in order."""
        return _FixedListProposer(self.settings)


class BayesianSearch(Search):
    """Bayesian optimisation with Optuna (TPE by default), maximising the validation score.

    Proposals are asked ``batch`` at a time; with the same ``seed`` and ``batch`` the
    proposals are the same, whatever the number of workers, so a resumed sweep asks for
    the runs it already has and finds their files.

    Args:
        seed: seed of the sampler.
        startup_trials: random trials before TPE starts modelling (Optuna's default: 10).
        batch: settings proposed at once per study (more parallelism, weaker sampling).
        sampler: an Optuna sampler to use instead of TPE (``lambda seed: sampler``).
    """

    method = "bayesian"

    def __init__(self, optimizer: str, space: dict, budget: int, seed: int = 0,
                 startup_trials: int = 10, batch: int = 1, sampler=None):
        super().__init__(optimizer, space, _check_budget(budget, required=True))
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise ConfigurationError("bayesian search needs optuna: pip install optuna") from None
        searched, _ = spaces.split_space(self.space)
        for name, value in searched.items():
            if not isinstance(value, list) and not hasattr(value, "suggest"):
                raise ConfigurationError(
                    f"bayesian search cannot use the distribution of {name!r} ({value!r}); "
                    "use a list, uniform, log_uniform or int_uniform")
        self.seed = seed
        self.startup_trials = _check_budget(startup_trials, required=True)
        self.batch = _check_budget(batch, required=True)
        self.sampler = sampler

    def proposer(self, study_seed: int = 0) -> Proposer:
        """An Optuna proposer for one study (its sampler seeded from ``seed`` and ``study_seed``)."""
        return _OptunaProposer(self, study_seed)


class _OptunaProposer(Proposer):
    def __init__(self, search: BayesianSearch, study_seed: int):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = search.seed + study_seed
        sampler = (search.sampler(seed) if search.sampler is not None
                   else optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.startup_trials))
        self.search = search
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.trials: list = []

    def ask(self, count: int) -> list:
        count = min(self.search.batch, self.search.budget - len(self.trials))
        settings = []
        for _ in range(max(count, 0)):
            trial = self.study.ask()
            point = spaces.suggest_point(self.search.space, trial)
            self.trials.append(trial)
            settings.append(coerce_hyperparams(self.search.optimizer, point))
        return settings

    def tell(self, index: int, score: Optional[float]) -> None:
        import optuna

        trial = self.trials[index]
        if score is None or math.isnan(score):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            # TPE ranks the values; a diverged run (-inf) is just the worst one.
            self.study.tell(trial, max(score, -1e300))


# --------------------------------------------------------------------------- studies
@dataclass
class Trial:
    """One proposed setting and its runs (one per tuning seed)."""

    setting: dict
    paths: dict = field(default_factory=dict)      # seed -> result file
    errors: dict = field(default_factory=dict)     # seed -> error line
    scores: dict = field(default_factory=dict)     # seed -> objective
    values: dict = field(default_factory=dict)     # seed -> metric value (NaN: diverged)

    @property
    def score(self) -> Optional[float]:
        """Mean objective over the tuning seeds; None while a seed failed or is missing."""
        if self.errors or not self.scores:
            return None
        return statistics.fmean(self.scores.values())

    def to_dict(self) -> dict:
        """The trial as plain data (for summary.json)."""
        return {"setting": self.setting, "score": self.score, "scores": self.scores,
                "values": self.values, "files": self.paths, "errors": self.errors}


@dataclass
class StudyResult:
    """The outcome of tuning one optimizer on one problem."""

    testproblem: str
    optimizer: str
    method: str
    mode: str
    metric: Optional[str]
    trials: list
    best: Optional[Trial]
    reruns: Optional[Trial] = None
    seeds: tuple = ()

    def to_dict(self) -> dict:
        """The result as plain data (for summary.json), with the reruns' mean and std
        (of the scores, and of the metric itself as ``metric_mean``/``metric_std``)."""
        reruns = None
        if self.reruns is not None:
            values = _mean_and_std(list(self.reruns.values.values()))
            reruns = {**self.reruns.to_dict(), **_mean_and_std(list(self.reruns.scores.values())),
                      "metric_mean": values["mean"], "metric_std": values["std"]}
        return {
            "testproblem": self.testproblem, "optimizer": self.optimizer, "method": self.method,
            "mode": self.mode, "metric": self.metric, "tuning_seeds": list(self.seeds),
            "selection": ("the best mean over the tuning seeds of the validation metric, as deepobs-plot "
                          "selects (deepobs.analyzer.selection); score: higher is better, losses negated"),
            "best_setting": self.best.setting if self.best else None,
            "best_score": self.best.score if self.best else None,
            "trials": [trial.to_dict() for trial in self.trials], "reruns": reruns,
        }


def _mean_and_std(values: list) -> dict:
    """Mean and population std of scores; the std is None when a score is not finite."""
    if not values:
        return {"mean": None, "std": None}
    mean = statistics.fmean(values)
    finite = all(math.isfinite(value) for value in values)
    return {"mean": mean, "std": statistics.pstdev(values) if finite and len(values) > 1 else None}


class Study:
    """One optimizer tuned on one problem: the search's proposals, scored per setting."""

    def __init__(self, testproblem: str, search: Search, seeds: tuple = (TUNING_SEED,),
                 rerun_seeds: tuple = (), mode: str = "final", run_options: Optional[dict] = None,
                 study_seed: int = 0):
        if mode not in MODES:
            raise ConfigurationError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        unknown = sorted(set(run_options or {}) - set(RUN_OPTIONS))
        if unknown:
            raise ConfigurationError(f"unknown run option(s) {', '.join(unknown)}; allowed: {', '.join(RUN_OPTIONS)}")
        if not seeds:
            raise ConfigurationError("a study needs at least one tuning seed")
        self.testproblem = testproblem
        self.search = search
        self.seeds = tuple(seeds)
        self.rerun_seeds = tuple(seed for seed in rerun_seeds if seed not in self.seeds)
        self.mode = mode
        self.run_options = dict(run_options or {})
        self.proposer = search.proposer(study_seed)
        self.trials: list = []
        self.metric: Optional[str] = None
        self._waiting: dict = {}   # run key -> [(trial index or -1 for reruns, seed)]
        self.reruns: Optional[Trial] = None

    def planned_runs(self) -> int:
        """Tuning runs (settings x seeds) plus the reruns of the best setting."""
        return self.search.planned_settings() * len(self.seeds) + len(self.rerun_seeds)

    def run_spec(self, setting: dict, seed: int) -> RunSpec:
        """The run of ``setting`` with ``seed`` under this study's options."""
        return RunSpec(self.testproblem, self.search.optimizer, dict(setting), seed, **self.run_options)

    def ask(self, count: int) -> list:
        """RunSpecs of the next proposals (one per tuning seed)."""
        runs = []
        for setting in self.proposer.ask(count):
            self.trials.append(Trial(setting))
            for seed in self.seeds:
                runs.append(self._expect(self.run_spec(setting, seed), len(self.trials) - 1, seed))
        return runs

    def _expect(self, spec: RunSpec, index: int, seed: int) -> RunSpec:
        # A setting drawn twice (random search over a list) waits for the same run.
        self._waiting.setdefault(spec.key(), []).append((index, seed))
        return spec

    def owns(self, outcome: RunOutcome) -> bool:
        """Whether ``outcome`` is a run this study is waiting for."""
        return outcome.run.key() in self._waiting

    def receive(self, outcome: RunOutcome) -> None:
        """File one outcome under its trial(s); tell the proposer when a trial is complete."""
        for index, seed in self._waiting.pop(outcome.run.key()):
            trial = self.trials[index] if index >= 0 else self.reruns
            if outcome.status == "failed":
                trial.errors[seed] = outcome.error
            else:
                trial.paths[seed] = outcome.path
                try:
                    output = read_output(outcome.path)
                    self.metric = self.metric or validation_metric(output)
                    trial.scores[seed] = objective(output, self.mode)
                    trial.values[seed] = run_value(output, self.metric, self.mode)
                except (OSError, ValueError) as error:  # unreadable file, or no validation split
                    trial.errors[seed] = f"{outcome.path}: {error}"
            if index >= 0 and len(trial.paths) + len(trial.errors) == len(self.seeds):
                self.proposer.tell(index, trial.score)

    def refresh_from_disk(self) -> None:
        """Re-read every trial's result files, so that the study's scores are those of the
        files on disk (a run another driver finished, a failure that another process
        has since run successfully)."""
        for trial in self.trials:
            self._refresh(trial, self.seeds)
        if self.reruns is not None:
            self._refresh(self.reruns, self.seeds + self.rerun_seeds)

    def _refresh(self, trial: Trial, seeds: tuple) -> None:
        for seed in seeds:
            path = self.run_spec(trial.setting, seed).find_result()
            if path is None:
                continue
            try:
                output = read_output(path)
                self.metric = self.metric or validation_metric(output)
                trial.scores[seed] = objective(output, self.mode)
            except (OSError, ValueError) as error:
                trial.errors[seed] = f"{path}: {error}"
                continue
            trial.paths[seed] = str(path)
            trial.errors.pop(seed, None)

    def best_trial(self) -> Optional[Trial]:
        """The setting chosen by the rule ``deepobs-plot`` applies too
        (:func:`deepobs.analyzer.selection.choose`): the best mean over the tuning seeds,
        ties to the first in :func:`~deepobs.analyzer.selection.hyperparameter_order`;
        settings with a failed run are not candidates."""
        from deepobs.analyzer.selection import choose, hyperparameter_order

        scored = [trial for trial in self.trials if trial.score is not None]
        if not scored:
            return None
        return scored[choose([trial.values for trial in scored], self.metric, self.seeds,
                             [hyperparameter_order(trial.setting) for trial in scored])]

    def ask_reruns(self) -> list:
        """RunSpecs of the best setting with the rerun seeds."""
        best = self.best_trial()
        if best is None or not self.rerun_seeds:
            return []
        self.reruns = Trial(best.setting, dict(best.paths), dict(best.errors), dict(best.scores),
                            dict(best.values))
        runs = []
        for seed in self.rerun_seeds:
            runs.append(self._expect(self.run_spec(best.setting, seed), -1, seed))
        return runs

    def result(self) -> StudyResult:
        """The study's trials, best setting and reruns."""
        from deepobs.runners.optimizers import resolve_optimizer

        return StudyResult(self.testproblem, resolve_optimizer(self.search.optimizer).name,
                           self.search.method, self.mode, self.metric, list(self.trials),
                           self.best_trial(), self.reruns, self.seeds)


#: How often a driver looks whether runs held by another process have finished (seconds).
ELSEWHERE_POLL_SECONDS = 1.0


def execute(runs: list, executor, progress: Optional[SweepProgress] = None,
            records: Optional[SweepRecords] = None):
    """Yield an outcome per run: runs with a result file at once, the rest through
    ``executor``. Failures are recorded, never raised.

    A run whose lock another process holds (a second driver on the same sweep, a
    requeued job) is running elsewhere: it is not submitted, and not failed; the driver
    waits for it, takes its result file when it appears, and runs it itself if the lock
    is let go without a result (the other process was killed)."""
    from deepobs.tuner.executors import SerialExecutor

    executor = executor or SerialExecutor()
    pending, announced = list(runs), set()
    while pending:
        todo, waiting = [], []
        for spec in pending:
            existing = spec.find_result()
            if existing is not None:
                outcome = RunOutcome(spec, "exists", str(existing),
                                     extra={"elsewhere": True} if spec.key() in announced else {})
                _account(outcome, progress, records)
                yield outcome
            elif spec.held_elsewhere():
                waiting.append(spec)
            else:
                todo.append(spec)
        for outcome in executor.run(todo) if todo else ():
            if outcome.status == "elsewhere":
                waiting.append(outcome.run)
                continue
            _account(outcome, progress, records)
            yield outcome
        for spec in waiting:
            if spec.key() not in announced:
                announced.add(spec.key())
                if progress is not None:
                    progress.running_elsewhere(spec)
        while waiting and all(spec.held_elsewhere() and spec.find_result() is None for spec in waiting):
            time.sleep(ELSEWHERE_POLL_SECONDS)
        pending = waiting


def _account(outcome: RunOutcome, progress, records) -> None:
    if progress is not None:
        progress.update(outcome)
    if records is not None:
        records.record(outcome)
        if progress is not None:
            records.write("progress", progress.as_dict())


def tune_studies(studies: list, executor=None, progress: Optional[SweepProgress] = None,
                 records: Optional[SweepRecords] = None) -> list:
    """Run every study to its budget, then rerun each best setting; returns StudyResults.

    All studies share the executor: each round gathers the next proposals of every
    study into one batch (one job array on SLURM), so grid and random sweeps run in a
    single round and Bayesian studies advance side by side.
    """
    keys = [(study.testproblem, study.search.optimizer) for study in studies]
    if len(set(keys)) != len(keys):
        raise ConfigurationError("each (problem, optimizer) pair may appear in one study only")
    if progress is not None and not progress.total:
        progress.add(sum(study.planned_runs() for study in studies))
    workers = getattr(executor, "workers", 1)
    while True:
        batch = _unique([spec for study in studies for spec in study.ask(workers)], progress)
        if not batch:
            break
        _deliver(execute(batch, executor, progress, records), studies)
    for study in studies:
        study.refresh_from_disk()
    reruns = _unique([spec for study in studies for spec in study.ask_reruns()], progress)
    if reruns:
        _deliver(execute(reruns, executor, progress, records), studies)
        for study in studies:
            study.refresh_from_disk()
    if progress is not None:  # planned reruns of a study without a finished setting never ran
        progress.total = progress.done + progress.failed
    return [study.result() for study in studies]


def _unique(runs: list, progress: Optional[SweepProgress] = None) -> list:
    """Runs without repeats (two runs of one seed would write two files)."""
    seen = {}
    for spec in runs:
        seen.setdefault(spec.key(), spec)
    if progress is not None:
        progress.add(len(seen) - len(runs))
    return list(seen.values())


def _deliver(outcomes, studies: list) -> None:
    for outcome in outcomes:
        for study in studies:
            if study.owns(outcome):
                study.receive(outcome)
                break
