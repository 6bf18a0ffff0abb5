"""Benchmark your own optimizer on two problems and plot it against the baselines.

The optimizer below (sign descent with momentum) stands for yours: any
``torch.optim.Optimizer`` works the same way. It runs on ``quadratic_deep`` (P1 of the
benchmark, no download) and ``two_d_beale`` under protocol 1.1, the setting of the
published baselines, then writes figures, tables and report.html comparing it with
the shipped DeepOBS 1.1 baselines of SGD, Momentum and Adam.

Example::

    python examples/custom_optimizer.py --num_epochs 100 --seeds 42 43 44
"""

from __future__ import annotations

import argparse
import warnings

import torch

from deepobs import StandardRunner
from deepobs.analyzer.report import build_report


class SignMomentum(torch.optim.Optimizer):
    """Momentum on the gradients, then a step of size ``lr`` along their sign."""

    def __init__(self, params, lr: float, momentum: float = 0.9):
        if lr <= 0 or not 0 <= momentum < 1:
            raise ValueError(f"need lr > 0 and 0 <= momentum < 1, got lr={lr}, momentum={momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                buffer = self.state[param].setdefault("momentum_buffer", torch.zeros_like(param))
                buffer.mul_(group["momentum"]).add_(param.grad)
                param.add_(buffer.sign(), alpha=-group["lr"])
        return loss


#: DeepOBS-style hyperparameter description: names, types, defaults (lr is required).
HYPERPARAMETERS = {"lr": {"type": float}, "momentum": {"type": float, "default": 0.9}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=["quadratic_deep", "two_d_beale"])
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("-N", "--num_epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--output_dir", default="results_custom")
    parser.add_argument("--report_dir", default="report_custom")
    parser.add_argument("--formats", nargs="+", default=["png", "pdf"])
    args = parser.parse_args(argv)

    runner = StandardRunner(SignMomentum, HYPERPARAMETERS, optimizer_name="SignMomentum")
    for problem in args.problems:
        for seed in args.seeds:
            output = runner.run(problem, {"lr": args.lr}, num_epochs=args.num_epochs, random_seed=seed,
                                output_dir=args.output_dir, protocol="1.1", device="cpu",
                                quiet=True, skip_if_exists=True)
            if output is not None:
                print(f"{problem} seed {seed}: final test loss {output['test_losses'][-1]:.4f}")

    with warnings.catch_warnings():  # notes such as "no validation split" are in the report
        warnings.simplefilter("ignore")
        report = build_report(args.output_dir, args.report_dir, baselines="deepobs-1.1",
                              formats=tuple(args.formats))
    print(f"{len(report.figures)} figure files; open {report.html_path}")


if __name__ == "__main__":
    main()
