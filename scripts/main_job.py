"""The main job of ``make run``: the published optimizers on quadratic_deep, end to end.

Trains SGD, Momentum and Adam at their published tuned learning rates on
``quadratic_deep`` (no download needed) with ``--protocol 1.1``, the setting of the
published baselines, writes DeepOBS result files, compares the final test losses
with the published ones (docs/testproblems.md, published baselines) and ends with a report
(``<output_dir>/report/report.html``: figures, tables) against the shipped baselines.
"""

import argparse
import time
from pathlib import Path

from deepobs.runners.optimizers import resolve_optimizer
from deepobs.runners.run_config import RunConfig
from deepobs.runners.runner import StandardRunner

# (optimizer, tuned learning rate 10^(-5 + i/5), published final test loss mean ± std)
PUBLISHED = [
    ("sgd", 10 ** -1.8, 87.40, 0.16),
    ("momentum", 10 ** -2.6, 87.05, 0.02),
    ("adam", 10 ** -1.4, 87.11, 0.02),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="results")
    parser.add_argument("-N", "--num_epochs", type=int, default=100)
    parser.add_argument("-r", "--random_seed", type=int, default=42)
    parser.add_argument("--report_dir", help="where the report goes (default <output_dir>/report)")
    parser.add_argument("--overwrite", action="store_true", help="train again even if the results exist")
    args = parser.parse_args()
    rows = []
    for key, lr, mean, std in PUBLISHED:
        config = RunConfig("quadratic_deep", key, {"lr": lr}, num_epochs=args.num_epochs,
                           random_seed=args.random_seed, output_dir=args.output_dir, protocol="1.1",
                           device="cpu", quiet=True, overwrite=args.overwrite)
        existing = None if args.overwrite else config.resolved().find_result()
        started = time.perf_counter()
        output = StandardRunner.for_optimizer(resolve_optimizer(key)).run(config)
        rows.append((output["optimizer_name"], lr, output["test_losses"][-1], mean, std,
                     "reused" if existing else f"{time.perf_counter() - started:.1f}s"))
    print(f"quadratic_deep, protocol 1.1, {args.num_epochs} epochs, seed {args.random_seed}")
    print(f"{'optimizer':<10} {'lr':>10} {'final test loss':>16} {'published (10 seeds)':>22} {'time':>7}")
    for name, lr, final, mean, std, seconds in rows:
        print(f"{name:<10} {lr:>10.4g} {final:>16.3f} {f'{mean:.2f} ± {std:.2f}':>22} {seconds:>7}")
    if any(row[-1] == "reused" for row in rows):
        print("reused the result files of an earlier run (same settings and seed); --overwrite trains again")
    print(f"results in {args.output_dir}/quadratic_deep/")
    write_report(args.output_dir, args.report_dir or str(Path(args.output_dir) / "report"))


def write_report(output_dir: str, report_dir: str) -> None:
    """Compare the runs with the shipped DeepOBS 1.1 baselines: figures, tables, report.html."""
    import warnings

    from deepobs.analyzer.report import build_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = build_report(output_dir, report_dir, baselines="deepobs-1.1", formats=("png", "pdf"))
    print((Path(report_dir) / "results.md").read_text(), end="")
    print(f"report: {report.html_path} ({len(report.figures)} figure files)")


if __name__ == "__main__":
    main()
