"""Every registered problem, on tiny random data: two training steps through the runner,
finite numbers, the metric keys, bit-identical repeats, and a clean evaluation.

The heavier models (VGG at 224×224, Inception at 299×299, the wide ResNets and
ResNet-18) take seconds to minutes on a CPU and are marked slow; their shapes and
parameter counts are checked in the default suite by tests/test_models.py and
tests/test_problems.py.
"""

from __future__ import annotations

import fnmatch
import math

import pytest
import torch

import deepobs
from deepobs.runners.runner import StandardRunner

SLOW_PATTERNS = ("*vgg*", "imagenet_*", "*wrn*", "*_resnet18",
                 # same model and problem code as a sibling in the default run
                 "fmnist_vae", "cifar100_3c3d", "svhn_3c3d")
BATCH_SIZE = 2
#: Protocol 1.1 and 4 fake examples: 2 training steps of batch 2, evaluation batches on
#: every split (under 1.2 a fifth of 4 examples would be less than a validation batch).
FAKE_EXAMPLES = 4


def _params(names):
    for name in names:
        slow = any(fnmatch.fnmatchcase(name, pattern) for pattern in SLOW_PATTERNS)
        yield pytest.param(name, marks=pytest.mark.slow if slow else ())


class _KeepProblemRunner(StandardRunner):
    """Keeps the problem it trained, to inspect it afterwards."""

    problem = None

    def training(self, tproblem, *args, **kwargs):
        self.problem = tproblem
        return super().training(tproblem, *args, **kwargs)


def _run(name: str):
    # A tiny learning rate: the plumbing is under test, and the 2-D problems' gradients
    # at their start points are ~1e5.
    runner = _KeepProblemRunner(torch.optim.SGD, {"lr": {"type": float}})
    output = runner.run(name, hyperparams={"lr": 1e-6}, batch_size=BATCH_SIZE, num_epochs=1, random_seed=3,
                        protocol="1.1", fake_data=FAKE_EXAMPLES, no_logs=True, quiet=True, device="cpu")
    return output, runner.problem


def _numbers(output: dict) -> dict:
    return {key: value for key, value in output.items()
            if key.endswith(("_losses", "_accuracies")) and isinstance(value, list)}


@pytest.mark.parametrize("name", list(_params(deepobs.list_problems())))
def test_problem_conforms(name):
    first, problem = _run(name)
    assert first["minibatch_train_losses"] and len(first["minibatch_train_losses"]) == 1  # step 0 of 2 logged
    for key in ("train_losses", "test_losses"):
        assert len(first[key]) == 2 and all(math.isfinite(v) for v in first[key]), (key, first[key])
    accuracy_keys = {"train_accuracies", "test_accuracies"}
    if problem.has_accuracy:
        assert accuracy_keys <= set(first)
        assert all(0.0 <= v <= 1.0 for key in accuracy_keys for v in first[key])
    else:
        assert not accuracy_keys & set(first)
    assert not first["diverged"]

    second, _ = _run(name)
    assert _numbers(second) == _numbers(first)  # one seed, the same numbers

    # Evaluation: model left in eval mode, no autograd graph and no gradient kept.
    problem.net.zero_grad(set_to_none=True)
    loss, accuracy = problem.evaluate("test")
    assert isinstance(loss, float) and (accuracy is None) == (not problem.has_accuracy)
    assert not problem.net.training
    assert all(p.grad is None for p in problem.net.parameters())
