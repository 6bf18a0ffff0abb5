"""Reproduce one published baseline curve: Momentum on quadratic_deep (no download).

The published DeepOBS 1.1 baseline trains ``MomentumOptimizer`` (momentum 0.99) at its
tuned learning rate 10^-2.6 for 100 epochs, batch size 128, with seeds 42-51; its final
test loss is 87.05 ± 0.02 (mean ± std over the seeds). This script makes the same runs
under protocol 1.1 (the published setting), prints our number next to the published one
and draws both test-loss curves (mean ± std) into one figure.

Example::

    python examples/reproduce_baseline.py            # 10 seeds x 100 epochs
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from deepobs.analyzer import aggregate, load_baselines, load_results
from deepobs.runners.optimizers import resolve_optimizer
from deepobs.runners.runner import StandardRunner

PROBLEM, OPTIMIZER, LEARNING_RATE = "quadratic_deep", "momentum", 10 ** -2.6
PUBLISHED_FINAL = (87.05, 0.02)


def published_curve() -> dict:
    """Test-loss statistics of the published tuned Momentum setting (10 seeds)."""
    baselines = load_baselines("deepobs-1.1")
    rows = baselines[(baselines["problem"] == PROBLEM) & (baselines["optimizer"] == "Momentum")]
    tuned = rows[rows["n_runs"] == rows["n_runs"].max()].iloc[0]
    return tuned["curves"]["test_losses"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-N", "--num_epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(42, 52)))
    parser.add_argument("--output_dir", default="results_reproduce")
    parser.add_argument("--figure", default="reproduce_momentum_quadratic_deep.png")
    args = parser.parse_args(argv)

    spec = resolve_optimizer(OPTIMIZER)  # torch SGD, momentum 0.99, named "Momentum"
    runner = StandardRunner(spec.build, spec.hyperparameters, optimizer_name=spec.name)
    for seed in args.seeds:
        runner.run(PROBLEM, {"lr": LEARNING_RATE}, num_epochs=args.num_epochs, random_seed=seed,
                   output_dir=args.output_dir, protocol="1.1", device="cpu", quiet=True,
                   skip_if_exists=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = aggregate(load_results(Path(args.output_dir) / PROBLEM))
    setting = ours[ours["num_epochs"] == args.num_epochs].iloc[0]
    finals = np.asarray(setting["finals"]["test_losses"], dtype=float)
    print(f"{PROBLEM}, Momentum lr {LEARNING_RATE:.4g}, {args.num_epochs} epochs, {len(finals)} seeds: "
          f"final test loss {finals.mean():.2f} ± {finals.std():.2f} "
          f"(published, 100 epochs, 10 seeds: {PUBLISHED_FINAL[0]:.2f} ± {PUBLISHED_FINAL[1]:.2f})")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    # Ours wide and light underneath, the published curve thin and dashed on top: where
    # they agree, both stay visible.
    for label, curve, style in (("this package", setting["curves"]["test_losses"],
                                 {"color": "tab:orange", "lw": 3, "alpha": 0.8}),
                                ("published (TF, DeepOBS 1.1)", published_curve(),
                                 {"color": "black", "lw": 1, "ls": "--"})):
        mean, std = np.asarray(curve["mean"], float), np.asarray(curve["std"], float)
        epochs = np.arange(len(mean))
        ax.plot(epochs, mean, label=label, **style)
        ax.fill_between(epochs, mean - std, mean + std, color=style["color"], alpha=0.2)
    ax.set(xlabel="epoch", ylabel="test loss", yscale="log", title="Momentum on quadratic_deep")
    ax.legend()
    fig.savefig(args.figure, dpi=120)
    print(f"figure: {args.figure}")
    return {"mean": float(finals.mean()), "std": float(finals.std()), "seeds": len(finals)}


if __name__ == "__main__":
    main()
