"""Test problems, registered by name where they are defined.

``from deepobs.testproblems import quadratic_deep`` returns the registered class, as
DeepOBS users are used to.
"""

from deepobs.testproblems.base import TestProblem
from deepobs.testproblems import quadratic, two_d  # noqa: F401  (register the problems)
from deepobs.testproblems import cifar10, cifar100, fmnist, imagenet, mnist, svhn, tolstoi  # noqa: F401
from deepobs.testproblems import tolstoi_resnetbk, tolstoi_transformer  # noqa: F401


def __getattr__(name):
    from deepobs.registry import _PROBLEMS

    if name in _PROBLEMS:
        return _PROBLEMS[name]
    raise AttributeError(f"module 'deepobs.testproblems' has no attribute {name!r}")


__all__ = ["TestProblem"]
