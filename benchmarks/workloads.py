"""The benchmarked problems: built on real data where it is here, else fake data of the real size.

A workload is a set-up problem plus the number of batches of each pass. ``--quick``
shortens the epoch: a fixed number of training steps and every evaluation pass cut
in the same proportion, so the shares of training and evaluation stay those of a
real epoch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

import deepobs
from deepobs.runners.runner import seed_everything

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEEPOBS_SHARED_DATA", REPO.parent / "shared" / "data"))

#: The problems of the issue and their data folder in SHARED_DATA (None: always fake).
PROBLEMS = {
    "mnist_mlp": "mnist",
    "fmnist_2c2d": "fmnist",
    "cifar10_3c3d": None,
    "tolstoi_char_rnn": "tolstoi",
    "quadratic_deep": None,
    "cifar100_resnet18": None,
}
#: Problems benchmarked only when asked for or on a GPU: one CPU epoch of ResNet-18
#: (0.56 GFLOPs per image forward) takes hours.
GPU_PROBLEMS = ("cifar100_resnet18",)
#: Fake-data sizes giving the real protocol-1.2 split sizes (CIFAR-10: 40k/10k train/valid).
FAKE_SIZES = {"cifar10_3c3d": 50_000, "mnist_mlp": 60_000, "fmnist_2c2d": 60_000,
              "tolstoi_char_rnn": 52_000, "cifar100_resnet18": 50_000}
#: Real test split sizes, for problems built on fake data (the fake test split is N/2).
TEST_SIZES = {"cifar10_3c3d": 10_000, "mnist_mlp": 10_000, "fmnist_2c2d": 10_000,
              "cifar100_resnet18": 10_000}
PHASES = ("train", "train_eval", "valid", "test")
#: Training steps of a --quick epoch: about the same seconds for every problem on a CPU.
QUICK_STEPS = {"mnist_mlp": 32, "fmnist_2c2d": 8, "cifar10_3c3d": 6, "tolstoi_char_rnn": 24,
               "quadratic_deep": 7, "cifar100_resnet18": 2}


def default_problems(device: str) -> list:
    """The problems benchmarked without ``--problems``: all on a GPU, the GPU-only ones
    left out on a CPU."""
    if str(device).startswith("cuda"):
        return list(PROBLEMS)
    return [name for name in PROBLEMS if name not in GPU_PROBLEMS]


@dataclass
class Workload:
    """A set-up problem and the batches of each pass of one (possibly shortened) epoch."""

    name: str
    problem: object
    batches: dict
    real_data: bool
    full_batches: dict

    @property
    def shortened(self) -> bool:
        return self.batches != self.full_batches

    def describe(self) -> str:
        source = "real data" if self.real_data else "fake data of the real shape"
        return f"{source}; batches per pass {self.batches}" + (
            f" (full epoch: {self.full_batches})" if self.shortened else "")


def build_problem(name: str, device: str, seed: int = 0, **options):
    """The problem ``name`` set up on ``device`` with real data if present, else fake data."""
    folder = PROBLEMS.get(name)
    real = folder is not None and (SHARED_DATA / folder).is_dir()
    seed_everything(seed)
    kwargs = dict(device=device, protocol="1.2", random_seed=seed, **options)
    if real:
        kwargs["data_dir"] = str(SHARED_DATA)
    else:
        kwargs["fake_data"] = FAKE_SIZES.get(name, 1000)
    problem = deepobs.get_problem(name, **kwargs).set_up()
    if not real and name in TEST_SIZES:
        test = problem.data.splits["test"]
        problem.data.splits["test"] = test.subset(torch.arange(min(len(test), TEST_SIZES[name])))
    return problem, real


def limit_batches(problem, batches: dict) -> None:
    """Cut every pass of ``problem`` to ``batches[split]`` batches (the rest is unchanged)."""
    data = problem.data
    full = type(data).num_batches.__get__(data)

    def num_batches(split: str) -> int:
        return min(full(split), batches.get(split, full(split)))

    data.num_batches = num_batches


def quick_batches(full: dict, train_steps: int) -> dict:
    """A shortened epoch: ``train_steps`` training steps, evaluations in proportion."""
    if full["train"] <= train_steps:
        return dict(full)
    fraction = train_steps / full["train"]
    return {split: max(1, math.ceil(count * fraction)) for split, count in full.items()}


def build_workload(name: str, device: str, quick_steps: Optional[int], seed: int = 0,
                   **options) -> Workload:
    """Build ``name`` and shorten its epoch to ``quick_steps`` training steps (None: full)."""
    problem, real = build_problem(name, device, seed, **options)
    data = problem.data
    full = {split: data.num_batches(split) for split in PHASES
            if split != "valid" or data.has_validation}
    batches = quick_batches(full, quick_steps) if quick_steps else dict(full)
    limit_batches(problem, batches)
    return Workload(name, problem, batches, real, full)


def reshape_like(problem, batches: dict, seed: int = 0, **options):
    """Another instance of the same problem with the same (shortened) passes."""
    other, _ = build_problem(problem.name, str(problem.device), seed, **options)
    limit_batches(other, batches)
    return other
