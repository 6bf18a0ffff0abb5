"""deepobs: a deep-learning optimizer benchmark suite (DeepOBS, in PyTorch)."""

from deepobs.version import __version__
from deepobs.registry import get_problem, get_problem_class, list_problems, register_problem
from deepobs.testproblems.base import TestProblem
from deepobs.runners.runner import LearningRateScheduleRunner, StandardRunner
from deepobs.runners.optimizers import list_optimizers, register_optimizer

__all__ = [
    "__version__", "get_problem", "get_problem_class", "list_problems", "register_problem",
    "TestProblem", "StandardRunner", "LearningRateScheduleRunner", "list_optimizers",
    "register_optimizer",
]
