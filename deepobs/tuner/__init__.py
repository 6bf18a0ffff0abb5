"""Tuning and sweeps: grid, random and Bayesian search; local pool and SLURM executors."""

from deepobs.tuner.executors import LocalExecutor, SerialExecutor, SubmititExecutor
from deepobs.tuner.runs import RunOutcome, RunSpec, execute_run, objective
from deepobs.tuner.searches import (RERUN_SEEDS, BayesianSearch, GridSearch, RandomSearch, Study,
                                    StudyResult, tune_studies)
from deepobs.tuner.spaces import int_uniform, log_grid, log_uniform, uniform
from deepobs.tuner.sweep import Sweep, load_sweep

__all__ = [
    "GridSearch", "RandomSearch", "BayesianSearch", "Study", "StudyResult", "tune_studies",
    "RERUN_SEEDS", "log_uniform", "uniform", "int_uniform", "log_grid", "RunSpec", "RunOutcome",
    "execute_run", "objective", "LocalExecutor", "SerialExecutor", "SubmititExecutor",
    "Sweep", "load_sweep",
]
