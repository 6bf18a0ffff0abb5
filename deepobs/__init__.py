"""deepobs: a deep-learning optimizer benchmark suite (DeepOBS, in PyTorch).

The names below are imported on first use, so that ``deepobs.analyzer`` (which reads
result files and never needs torch) starts without loading torch.
"""

import importlib

from deepobs.version import __version__

_LAZY = {
    "get_problem": "deepobs.registry",
    "get_problem_class": "deepobs.registry",
    "list_problems": "deepobs.registry",
    "register_problem": "deepobs.registry",
    "TestProblem": "deepobs.testproblems.base",
    "StandardRunner": "deepobs.runners.runner",
    "LearningRateScheduleRunner": "deepobs.runners.runner",
    "list_optimizers": "deepobs.runners.optimizers",
    "register_optimizer": "deepobs.runners.optimizers",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepobs' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["__version__", *_LAZY]
