"""Does the default thread count hold up on a busy machine?

    python benchmarks/threads.py [--problem mnist_mlp] [--fake_data 8192] [--repeats 3]

Runs one epoch of ``deepobs-run PROBLEM --fake_data N`` (one process per run, so that each
run chooses its threads afresh) with the default threads, ``--threads 1`` and
``--threads <cores>``, first on the machine as it is, then with competing processes
keeping all cores but one busy (spinning Python loops). Prints the median wall time of
each and the default's ratio to the best of the three (target: at most 1.3 in both).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time

from deepobs.runners.threads import granted_cores


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def run_once(problem: str, fake_data: int, threads) -> float:
    """Wall seconds of one ``deepobs-run`` process (start-up included, as a user sees it)."""
    environment = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    with tempfile.TemporaryDirectory() as output:
        command = [sys.executable, "-m", "deepobs.runners.cli", problem, "--optimizer", "sgd", "--lr", "0.01",
                   "-N", "1", "--fake_data", str(fake_data), "--output_dir", output, "-q", "--device", "cpu"]
        if threads is not None:
            command += ["--threads", str(threads)]
        started = time.perf_counter()
        subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def measure(problem: str, fake_data: int, repeats: int, cores: int) -> dict:
    """Median seconds per thread setting, the settings alternated within each repeat."""
    settings = {"default": None, "1 thread": 1, f"{cores} threads": cores}
    times = {name: [] for name in settings}
    for _ in range(repeats):
        for name, threads in settings.items():
            times[name].append(run_once(problem, fake_data, threads))
    return {name: statistics.median(values) for name, values in times.items()}


def report(title: str, medians: dict) -> float:
    best = min(medians.values())
    print(f"{title}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in medians.items())
          + f"; default / best = {medians['default'] / best:.2f}")
    return medians["default"] / best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="mnist_mlp")
    parser.add_argument("--fake_data", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cores, why = granted_cores()
    print(f"{args.problem}, one epoch of {args.fake_data} fake examples; {cores} cores ({why}); "
          f"load average {os.getloadavg()[0]:.2f}")
    ratios = [report("as it is", measure(args.problem, args.fake_data, args.repeats, cores))]
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(max(1, cores - 1))]
    for spinner in spinners:
        spinner.start()
    try:
        time.sleep(1.0)
        ratios.append(report(f"{len(spinners)} core(s) kept busy",
                             measure(args.problem, args.fake_data, args.repeats, cores)))
    finally:
        stop.set()
        for spinner in spinners:
            spinner.join()
    print(f"target default / best <= 1.3: {'met' if max(ratios) <= 1.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
