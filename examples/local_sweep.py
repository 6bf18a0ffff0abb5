"""A learning-rate sweep on the local process pool, then the best settings rerun with
more seeds: the tuning protocol of the baselines, shrunk to minutes.

The sweep file written below is what you would write by hand and run with
``deepobs-tune sweep.yaml --workers 4``; this script does the same through
:func:`deepobs.tuner.cli.main`. Runs that have a result file are not run again, so an
interrupted sweep continues where it stopped when started again.

Example::

    python examples/local_sweep.py --workers 2 --grid_points 8 --num_epochs 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from deepobs.tuner.cli import main as deepobs_tune


def sweep_text(args) -> str:
    """The sweep file: SGD and Momentum on quadratic_deep, a log grid of learning rates,
    selection on the validation loss (protocol 1.2), the best setting rerun with more seeds."""
    sweep = {
        "name": "lr_sweep",
        "output_dir": args.output_dir,
        "problems": ["quadratic_deep"],
        "optimizers": {
            "sgd": {"lr": {"log_grid": [1.0e-3, 1.0, args.grid_points]}},
            "momentum": {"lr": {"log_grid": [1.0e-4, 1.0e-1, args.grid_points]}},
        },
        "search": "grid",
        "seeds": 42,
        "rerun_best": list(range(43, 43 + args.rerun_seeds)),
        "mode": "final",
        "num_epochs": args.num_epochs,
        "protocol": "1.2",
        "device": "cpu",
        "executor": "local",
        "workers": args.workers,
    }
    return yaml.safe_dump(sweep, sort_keys=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--grid_points", type=int, default=8)
    parser.add_argument("--rerun_seeds", type=int, default=9, help="extra seeds for the best setting")
    parser.add_argument("-N", "--num_epochs", type=int, default=20)
    parser.add_argument("--output_dir", default="results_sweep")
    parser.add_argument("--sweep_file", default="lr_sweep.yaml")
    args = parser.parse_args(argv)

    Path(args.sweep_file).write_text(sweep_text(args))
    print(f"wrote {args.sweep_file}")
    return deepobs_tune([args.sweep_file, "--quiet"])


if __name__ == "__main__":
    raise SystemExit(main())
