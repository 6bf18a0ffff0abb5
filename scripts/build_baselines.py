"""Build the compact DeepOBS 1.1 baselines (baselines/deepobs-1.1/) from the published
result files (the DeepOBS authors' baseline repository, fsschneider/DeepOBS_Baselines).

Per problem and optimizer it keeps every learning rate's final values and, for the tuned
setting (the one rerun with 10 seeds), the per-epoch mean/std/median/quartiles and each
seed's speed. Usage::

    python scripts/build_baselines.py --source DeepOBS_Baselines/ [--out baselines/deepobs-1.1]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from deepobs.analyzer.aggregate import aggregate
from deepobs.analyzer.baselines import compact_problem
from deepobs.analyzer.loading import load_results
from deepobs.safe_names import join_under

REPO = Path(__file__).resolve().parents[1]
ORIGIN = "fsschneider/DeepOBS_Baselines, commit 3da285abf9786e823aaef6d0fc0c9c98ef5d6d83 (tags v1.0 = v1.1)"


def build(source: Path, out: Path) -> list:
    """Write ``<problem>.compact.json`` files, the thresholds and the license; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    thresholds = json.loads((source / "convergence_performance.json").read_text())
    runs = load_results(source, source="deepobs-1.1", strict=True)
    settings = aggregate(runs)
    written = []
    for problem, group in settings.groupby("problem", sort=True):
        path = join_under(out, f"{problem}.compact.json")
        path.write_text(json.dumps(compact_problem(group, thresholds), separators=(",", ":")) + "\n")
        written.append(path)
    shutil.copyfile(source / "convergence_performance.json", out / "convergence_performance.json")
    shutil.copyfile(source / "LICENSE", out / "LICENSE")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a checkout of the baseline repository")
    parser.add_argument("--out", type=Path, default=REPO / "baselines" / "deepobs-1.1")
    args = parser.parse_args()
    started = time.perf_counter()
    written = build(args.source, args.out)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files, {total / 1024:.0f} KiB, from {ORIGIN} "
          f"in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
