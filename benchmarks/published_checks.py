"""Reproduce published DeepOBS figures on real data (protocol 1.1, seed 42, tuned lr).

    python benchmarks/published_checks.py [--data_dir DATA] [--checks fmnist_2c2d mnist_vae tolstoi_char_rnn]

Each check trains one epoch with the optimizer and learning rate of the published
baseline (docs/testproblems.md, published baselines) through StandardRunner, then prints the measured
figures next to their published ranges (the spread of the 10 baseline seeds after
epoch 1, with a tolerance) and the seconds each training epoch took. Exit status 1
if a figure falls outside its range.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from deepobs.runners.runner import StandardRunner


@dataclass
class Target:
    """One published figure: ``key[epoch]`` of the output within [low − tol, high + tol]."""

    key: str
    epoch: int
    low: float
    high: float
    tolerance: float

    def holds(self, value: float) -> bool:
        return self.low - self.tolerance <= value <= self.high + self.tolerance


@dataclass
class Check:
    problem: str
    optimizer: type
    optimizer_name: str
    lr: float
    targets: tuple
    num_epochs: int = 1


CHECKS = {
    "fmnist_2c2d": Check("fmnist_2c2d", torch.optim.SGD, "SGD", 10 ** -0.8,
                         (Target("test_accuracies", 1, 0.832, 0.865, 0.01),)),
    "mnist_vae": Check("mnist_vae", torch.optim.Adam, "Adam", 10 ** -3.8,
                       (Target("test_losses", 0, 181.4, 181.4, 5.0),
                        Target("test_losses", 1, 37.30, 37.96, 0.5))),
    "tolstoi_char_rnn": Check("tolstoi_char_rnn", torch.optim.Adam, "Adam", 10 ** -2.6,
                              (Target("test_accuracies", 1, 0.472, 0.494, 0.01),)),
}


def default_data_dir() -> Optional[str]:
    for candidate in (os.environ.get("DEEPOBS_DATA_DIR"), "data_deepobs"):
        if candidate and Path(candidate).is_dir():
            return candidate
    return None


def run_check(check: Check, data_dir: str, device: Optional[str], seed: int) -> bool:
    runner = StandardRunner(check.optimizer, {"lr": {"type": float}}, optimizer_name=check.optimizer_name)
    started = time.perf_counter()
    output = runner.run(check.problem, hyperparams={"lr": check.lr}, num_epochs=check.num_epochs,
                        random_seed=seed, data_dir=data_dir, protocol="1.1", no_logs=True,
                        device=device, quiet=True)
    total = time.perf_counter() - started
    ok = True
    print(f"{check.problem}: {check.optimizer_name} lr {check.lr:.5g}, protocol 1.1, seed {seed}, "
          f"{total:.0f} s in all on {output['device']}")
    for target in check.targets:
        value = output[target.key][target.epoch]
        holds = target.holds(value)
        ok &= holds
        print(f"  {target.key}[{target.epoch}] = {value:.4f}   published {target.low:g}–{target.high:g} "
              f"± {target.tolerance:g}   {'ok' if holds else 'OUTSIDE'}")
    epochs = ", ".join(f"{seconds:.1f}" for seconds in output["train_times"])
    evals = ", ".join(f"{seconds:.1f}" for seconds in output["eval_times"])
    print(f"  seconds per training epoch: {epochs}; per evaluation: {evals}", flush=True)
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=default_data_dir())
    parser.add_argument("--checks", nargs="+", default=list(CHECKS), choices=sorted(CHECKS))
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--random_seed", type=int, default=42)
    parser.add_argument("--num_threads", type=int, default=None,
                        help="CPU threads of torch (1 is fastest on a busy machine)")
    args = parser.parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if not args.data_dir or not Path(args.data_dir).is_dir():
        print(f"published_checks: data folder {args.data_dir!r} not found; give --data_dir", file=sys.stderr)
        return 2
    results = [run_check(CHECKS[name], args.data_dir, args.device, args.random_seed) for name in args.checks]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
