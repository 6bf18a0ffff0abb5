"""The deepobs-pytorch baselines: today's optimizers tuned by one protocol, in PyTorch.

The protocol (docs/baselines.md) lives here, in one place: the problems, the optimizers,
the learning-rate grid, the schedules and the seeds. From it this script

* ``sweeps``: writes one sweep file per piece to ``baselines/deepobs-pytorch/sweeps/``:
  per (problem, schedule), or split by optimizer where that is needed to keep a piece to
  at most about two hours on two cores (each piece is resumable);
* ``run [--only REGEX]``: runs those sweep files with ``deepobs-tune`` (a finished run is
  found and skipped, so an interrupted piece continues where it stopped) and prints the
  CPU time of every (problem, optimizer, schedule) cell;
* ``crosscheck``: trains SGD, Momentum and Adam on quadratic_deep with protocol 1.1 at
  DeepOBS's published tuned learning rates, seeds 42-51 (the check that PyTorch
  reproduces the TensorFlow numbers);
* ``build``: turns the results into the compact shipped files, with the versions,
  commits and machines of the runs, and the list of cells present (README.md);
* ``figures``: the figures and tables of docs/baselines.md, made by the analyzer.

Example (from the repository root)::

    python scripts/pytorch_baselines.py sweeps
    python scripts/pytorch_baselines.py run --only quadratic_deep
    python scripts/pytorch_baselines.py crosscheck
    python scripts/pytorch_baselines.py build
    python scripts/pytorch_baselines.py figures
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple, Optional

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepobs.analyzer.aggregate import aggregate  # noqa: E402
from deepobs.analyzer.baselines import baseline_folder, compact_problem  # noqa: E402
from deepobs.analyzer.loading import load_results, schedule_label  # noqa: E402
from deepobs.safe_names import join_under  # noqa: E402

SET = REPO / "baselines" / "deepobs-pytorch"
SWEEPS = SET / "sweeps"
RESULTS = REPO / "results_baselines"

# ------------------------------------------------------------------ the protocol
#: Problems a CPU can afford (mnist_mlp: see docs/baselines.md for its measured cost).
PROBLEMS = ["quadratic_deep", "two_d_rosenbrock", "two_d_beale", "two_d_branin", "mnist_logreg", "fmnist_logreg"]
#: DeepOBS's learning-rate grid: 36 log-spaced points from 1e-5 to 1e2 (10^(-5 + i/5)).
LR_GRID = {"log_grid": [1.0e-5, 1.0e2, 36]}
#: ``--optimizer`` name -> hyperparameters searched (all others: the authors' defaults).
#: Learning-rate-free methods (Prodigy) run at their defaults.
OPTIMIZERS = {
    "sgd": {"lr": LR_GRID},
    "momentum": {"lr": LR_GRID},
    "nesterov": {"lr": LR_GRID},
    "adam": {"lr": LR_GRID},
    "adamw": {"lr": LR_GRID},
    "nadam": {"lr": LR_GRID},
    "radam": {"lr": LR_GRID},
    "adafactor": {"lr": LR_GRID},
    "lion": {"lr": LR_GRID},
    "lamb": {"lr": LR_GRID},
    "muon": {"lr": LR_GRID},                 # hidden matrices; the rest to AdamW (the runner's default)
    "soap": {"lr": LR_GRID},
    "schedulefree.AdamWScheduleFree": {"lr": LR_GRID},
    "prodigy": {},
}
#: Schedules: a constant learning rate, and linear warmup over 5 % of the run + cosine decay to 0.
SCHEDULES = {"constant": None, "warmup_cosine": 0.05}
TUNING_SEED = 42
RERUN_SEEDS = range(43, 52)  # rerun_best: true
WORKERS = 2
#: Optimizers that get a piece of their own on a problem, to keep every piece to about two
#: hours on two cores. Measured on mnist_logreg (constant rate, one thread a run): SOAP
#: 7,423 CPU-seconds a cell (~140 s a run: it re-factorises a 784 x 784 preconditioner every
#: 10 steps), the twelve others 10,582 s together; as one piece 2 h 34 min on 2 workers,
#: split ~1.0 h and ~1.5 h.
OWN_PIECE = {"mnist_logreg": ["soap"], "fmnist_logreg": ["soap"]}

#: The published tuned learning rates of the cross-check (DeepOBS 1.1, quadratic_deep).
CROSSCHECK = {"sgd": "SGD", "momentum": "Momentum", "adam": "Adam"}


def num_epochs(problem: str) -> int:
    from deepobs.registry import get_problem_class

    return get_problem_class(problem).default_num_epochs


def not_applicable(problem: str, optimizer: str) -> str:
    """Why ``optimizer`` cannot run on ``problem`` ('' when it can): a matrix optimizer
    on a model without a hidden weight matrix (Muon on a linear model or a vector)."""
    from deepobs.registry import get_problem_class
    from deepobs.runners.optimizer_setup import matrix_kind, split_matrix_parameters
    from deepobs.runners.optimizers import resolve_optimizer

    kind = matrix_kind(resolve_optimizer(optimizer).build)
    if kind is None:
        return ""
    model = get_problem_class(problem)()._build_net()  # the model alone: no data needed
    matrices, _ = split_matrix_parameters(model, flatten=(kind == "groups"))
    return "" if matrices else "the model has no hidden weight matrix (Muon trains only those)"


class Piece(NamedTuple):
    """One sweep file: some optimizers on one problem with one schedule."""

    name: str
    problem: str
    schedule: str
    optimizers: tuple


def pieces() -> list:
    """Every piece of the protocol: per (problem, schedule) the applicable optimizers, those
    in :data:`OWN_PIECE` each in a piece of its own (named ``PROBLEM__SCHEDULE__OPTIMIZER``)."""
    found = []
    for problem in PROBLEMS:
        applicable = [name for name in OPTIMIZERS if not not_applicable(problem, name)]
        alone = [name for name in OWN_PIECE.get(problem, []) if name in applicable]
        rest = tuple(name for name in applicable if name not in alone)
        for schedule in SCHEDULES:
            found.append(Piece(f"{problem}__{schedule}", problem, schedule, rest))
            found += [Piece(f"{problem}__{schedule}__{name}", problem, schedule, (name,)) for name in alone]
    return found


def sweep_document(piece: Piece) -> dict:
    """The sweep file of one piece."""
    problem, schedule = piece.problem, piece.schedule
    optimizers = {name: json.loads(json.dumps(OPTIMIZERS[name])) for name in piece.optimizers}  # no YAML aliases
    document = {
        "name": piece.name,
        "output_dir": str(RESULTS.relative_to(REPO) / "deepobs-pytorch"),
        "problems": [problem],
        "optimizers": optimizers,
        "search": "grid",
        "seeds": TUNING_SEED,
        "rerun_best": True,
        "mode": "final",
        "device": "cpu",
        "workers": WORKERS,
    }
    if SCHEDULES[schedule] is not None:
        document["lr_schedule"] = {"name": schedule,
                                   "warmup_epochs": round(SCHEDULES[schedule] * num_epochs(problem), 6)}
    return document


def sweep_path(piece: Piece) -> Path:
    return SWEEPS / f"{piece.name}.yaml"


def write_sweeps() -> list:
    """Writes every piece's sweep file and removes sweep files that are no piece any more."""
    SWEEPS.mkdir(parents=True, exist_ok=True)
    written = []
    for piece in pieces():
        path = sweep_path(piece)
        header = (f"# deepobs-pytorch baseline sweep: {piece.problem}, {piece.schedule} learning rate"
                  f"{'' if len(piece.optimizers) > 1 else ', ' + piece.optimizers[0]}.\n"
                  "# Written by scripts/pytorch_baselines.py sweeps (the protocol is there and in "
                  "docs/baselines.md).\n# Run from the repository root: deepobs-tune " +
                  str(path.relative_to(REPO)) + "\n")
        if len(piece.optimizers) > 1:
            skipped = {name: not_applicable(piece.problem, name) for name in OPTIMIZERS}
            header += "".join(f"# not run: {name}: {why}\n" for name, why in skipped.items() if why)
            header += "".join(f"# in a piece of its own: {name} (sweeps/{piece.name}__{name}.yaml)\n"
                              for name in OWN_PIECE.get(piece.problem, []))
        path.write_text(header + yaml.safe_dump(sweep_document(piece), sort_keys=False))
        written.append(path)
    for stale in set(SWEEPS.glob("*.yaml")) - set(written):
        stale.unlink()
    return written


# ------------------------------------------------------------------ running
def run(only: str) -> None:
    pattern = re.compile(only or ".")
    for path in sorted(SWEEPS.glob("*.yaml")):
        if not pattern.search(path.stem):
            continue
        started = time.perf_counter()
        print(f"== {path.relative_to(REPO)}", flush=True)
        done = subprocess.run([sys.executable, "-m", "deepobs.tuner.cli", str(path), "--yes"], cwd=REPO)
        print(f"== {path.stem}: exit {done.returncode} after {time.perf_counter() - started:.0f} s", flush=True)


def crosscheck(seeds=range(42, 52)) -> None:
    from deepobs.runners.run_config import RunConfig
    from deepobs.runners.runner import StandardRunner
    from deepobs.runners.optimizers import resolve_optimizer

    published = json.loads((baseline_folder("deepobs-1.1") / "quadratic_deep.compact.json").read_text())
    for key, name in CROSSCHECK.items():
        entry = published["optimizers"][name]
        tuned = next(s for s in entry["settings"] if entry["setting_prefix"] + s["setting"] == entry["tuned_setting"])
        lr = {**entry["hyperparams"], **tuned["hyperparams"]}["lr"]
        for seed in seeds:
            config = RunConfig("quadratic_deep", key, {"lr": lr}, random_seed=seed, protocol="1.1", device="cpu",
                               quiet=True, skip_if_exists=True, output_dir=str(RESULTS / "crosscheck"))
            StandardRunner.for_optimizer(resolve_optimizer(key)).run(config)
        print(f"crosscheck {name}: lr {lr:g}, seeds {seeds.start}-{seeds.stop - 1}", flush=True)


# ------------------------------------------------------------------ building
def provenance(folder: Path) -> dict:
    """Per (problem, optimizer label): the versions, commits, machines and CPU seconds of its runs."""
    found = defaultdict(lambda: defaultdict(set))
    seconds = defaultdict(float)
    for path in folder.rglob("random_seed__*.json"):
        data = json.loads(path.read_text())
        label = schedule_label(data["optimizer_name"], data.get("training_params") or {})
        cell = found[(data["testproblem"], label)]
        cell["deepobs"].add(data.get("deepobs_version"))
        cell["torch"].add(data.get("torch_version"))
        package = data.get("optimizer_package") or {}
        cell["optimizer_package"].add(f"{package.get('name')} {package.get('version')}")
        cell["git_commit"].add(data.get("git_commit"))
        cell["machine"].add(json.dumps(data.get("machine"), sort_keys=True))
        seconds[(data["testproblem"], label)] += float(data.get("wall_time") or 0.0)
    return {key: {**{k: sorted(map(str, v)) for k, v in cell.items()}, "wall_seconds": round(seconds[key], 1)}
            for key, cell in found.items()}


def build_folder(results: Path, out: Path) -> list:
    """Compact files of every problem under ``results`` into ``out``; returns the paths."""
    thresholds = json.loads((baseline_folder("deepobs-1.1") / "convergence_performance.json").read_text())
    settings = aggregate(load_results(results, source="deepobs-pytorch", strict=True))
    origins = provenance(results)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    # Only finished cells: the chosen setting rerun with all 10 seeds (a piece still running
    # has cells with one seed per setting so far).
    finished = settings.groupby(["problem", "optimizer"])["n_runs"].transform("max") >= 1 + len(RERUN_SEEDS)
    for (problem, optimizer), group in settings[~finished].groupby(["problem", "optimizer"]):
        print(f"not finished, not shipped: {problem} {optimizer} ({len(group)} settings so far)")
    for problem, group in settings[finished].groupby("problem", sort=True):
        compact = compact_problem(group, thresholds)
        for optimizer, entry in compact["optimizers"].items():
            entry["provenance"] = origins.get((problem, optimizer), {})
        path = join_under(out, f"{problem}.compact.json")
        path.write_text(json.dumps(compact, separators=(",", ":")) + "\n")
        written.append(path)
    (out / "convergence_performance.json").write_text(
        (baseline_folder("deepobs-1.1") / "convergence_performance.json").read_text())
    return written


class Cell(NamedTuple):
    """One shipped (problem, optimizer label) cell: its tuned setting's seeds (finished
    and diverged) and the summed wall time of all its runs."""

    problem: str
    label: str
    seeds: int
    diverged: int
    seconds: Optional[float]


def cells(folder: Path) -> list:
    """The :class:`Cell` of every shipped (problem, optimizer label)."""
    rows = []
    for path in sorted(folder.glob("*.compact.json")):
        data = json.loads(path.read_text())
        for optimizer, entry in sorted(data["optimizers"].items()):
            tuned = next(s for s in entry["settings"]
                         if entry["setting_prefix"] + s["setting"] == entry["tuned_setting"])
            diverged = len(tuned["diverged_seeds"])
            rows.append(Cell(data["problem"], optimizer, len(tuned["seeds"]) + diverged, diverged,
                             entry.get("provenance", {}).get("wall_seconds")))
    return rows


def missing_cells(present: list) -> list:
    """(problem, optimizer label, why) of every protocol cell not shipped."""
    from deepobs.runners.optimizers import resolve_optimizer

    have = {(cell.problem, cell.label) for cell in present}
    missing = []
    for problem in PROBLEMS:
        for name in OPTIMIZERS:
            for schedule in SCHEDULES:
                label = resolve_optimizer(name).name + ("" if schedule == "constant" else f"+{schedule}")
                if (problem, label) not in have:
                    why = not_applicable(problem, name) or "not run yet"
                    missing.append((problem, label, why))
    return missing


def cpu_totals(present: list) -> list:
    """(problem, cells, CPU seconds) per problem in ``present``, then ("all", ...)."""
    totals = defaultdict(lambda: [0, 0.0])
    for cell in present:
        totals[cell.problem][0] += 1
        totals[cell.problem][1] += cell.seconds or 0.0
    rows = [(problem, count, seconds) for problem, (count, seconds) in sorted(totals.items())]
    return rows + [("all", sum(r[1] for r in rows), sum(r[2] for r in rows))]


def write_readme(present: list) -> Path:
    """The set's README: origin, licence, protocol, regeneration, and the cells table."""
    lines = [README_HEAD.strip(), "", "## Cells", "",
             "Shipped: each row is one cell, its chosen setting rerun with 10 seeds; the CPU time is the "
             "sum of the wall times of all its runs (tuning grid and reruns), one thread per run.", "",
             "A cell whose tuned setting diverged on every seed is one where every learning rate of the "
             "grid diverged on the tuning seed (the one ranked first is rerun all the same): the result "
             "is that the optimizer does not train this problem anywhere on the grid.", "",
             "| problem | optimizer | seeds | of them diverged | CPU time (s) |", "|---|---|---|---|---|"]
    lines += [f"| {c.problem} | {c.label} | {c.seeds} | {c.diverged or ''} | {c.seconds or 0:.0f} |"
              for c in present]
    lines += ["", "CPU time per problem:", "", "| problem | cells | CPU time (s) | hours |", "|---|---|---|---|"]
    for problem, count, seconds in cpu_totals(present):
        lines.append(f"| {problem} | {count} | {seconds:.0f} | {seconds / 3600:.2f} |")
    missing = missing_cells(present)
    if missing:
        lines += ["", "Not shipped:", "", "| problem | optimizer | why |", "|---|---|---|"]
        lines += [f"| {problem} | {label} | {why} |" for problem, label, why in missing]
    path = SET / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path


README_HEAD = """
# deepobs-pytorch baselines (compact form)

Today's optimizers tuned by one protocol on the problems a CPU can afford, run with this
project's PyTorch code. `deepobs-plot RESULTS --baselines deepobs-pytorch` (or
`--baselines deepobs-1.1 deepobs-pytorch` for both sets) compares your runs with them.
The protocol and the tables are in the documentation (docs/baselines.md).

## Origin
* Produced by this repository: `python scripts/pytorch_baselines.py run` runs the sweep
  files in `sweeps/` with `deepobs-tune` (one file per problem and schedule, SOAP on the
  logreg problems in a file of its own, so that a piece takes at most about two hours on
  two cores; a finished run is skipped, so an interrupted piece resumes), then `python scripts/pytorch_baselines.py
  build` writes these files. Every optimizer entry records under `provenance` the deepobs,
  torch and optimizer-package versions, the git commits and the machines of its runs.
* `crosscheck/quadratic_deep.compact.json`: SGD, Momentum and Adam on quadratic_deep with
  protocol 1.1 at DeepOBS's published tuned learning rates, seeds 42-51
  (`python scripts/pytorch_baselines.py crosscheck`): PyTorch against the TensorFlow numbers.

## Protocol
Learning-rate grid of DeepOBS (36 points 10^(-5 + i/5), 1e-5 to 1e2); learning-rate-free
methods (Prodigy) at their defaults; every other hyperparameter at its authors' default;
tuning seed 42; the setting with the best final validation loss (validation accuracy where
the problem has one; protocol 1.2) rerun with seeds 43-51; each optimizer with a constant
learning rate and with `warmup_cosine` (linear warmup over 5 % of the epochs, cosine decay
to 0), labelled `NAME+warmup_cosine`.

## License
MIT (the license of deepobs): see `LICENSE` in this folder.

## Format
As `baselines/deepobs-1.1` (see its README), plus per optimizer `training_params` (the
schedule) and `provenance`.
"""


def build() -> None:
    written = build_folder(RESULTS / "deepobs-pytorch", SET)
    if (RESULTS / "crosscheck").is_dir():
        written += build_folder(RESULTS / "crosscheck", SET / "crosscheck")
    total = sum(p.stat().st_size for p in written)
    present = cells(SET)
    write_readme(present)
    print(f"wrote {len(written)} compact files, {total / 1024:.0f} KiB, and README.md")
    for c in present:
        diverged = f" ({c.diverged} diverged)" if c.diverged else ""
        print(f"{c.problem:18s} {c.label:36s} {c.seeds:3d} seeds  {c.seconds or 0:8.0f} s{diverged}")
    for problem, count, seconds in cpu_totals(present):
        print(f"{problem:18s} {count:3d} cells  {seconds:8.0f} s CPU ({seconds / 3600:.2f} h)")


def figures() -> None:
    """The figures and tables of docs/baselines.md, made by deepobs-plot from the sweep
    results: per schedule, one report of those runs against the deepobs-1.1 baselines."""
    import shutil
    import tempfile
    import warnings

    from deepobs.analyzer.report import build_report

    source = RESULTS / "deepobs-pytorch"
    out = REPO / "docs" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    shipped = {(cell.problem, cell.label) for cell in cells(SET)}  # finished cells only
    for old in out.glob("baselines_*"):
        old.unlink()
    for schedule in SCHEDULES:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "results"
            for path in source.rglob("random_seed__*.json"):
                data = json.loads(path.read_text())
                if (data.get("training_params") or {}).get("lr_schedule", "constant") != schedule:
                    continue
                label = schedule_label(data["optimizer_name"], data.get("training_params") or {})
                if (data["testproblem"], label) not in shipped:
                    continue
                target = tree / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)
            if not tree.is_dir():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = build_report(tree, Path(tmp) / "report", baselines="deepobs-1.1", formats=("png",),
                                      title=f"deepobs-pytorch baselines, {schedule} learning rate")
            # The page includes baselines_<schedule>.md: the table, then every problem's figure.
            # The analyzer's table without its last column (the other hyperparameters: the
            # authors' defaults, too wide for the page; the shipped files hold them).
            table = (report.html_path.parent / "results.md").read_text().strip().splitlines()
            page = ["\n".join(line.rsplit(" | ", 1)[0] + " |" for line in table), ""]
            for figure in sorted(report.figures):
                if figure.name.startswith("performance_") and figure.stem != "performance_profiles":
                    problem = figure.stem[len("performance_"):]
                    name = f"baselines_{problem}_{schedule}.png"
                    shutil.copyfile(figure, out / name)
                    page += [f"![{problem}, {schedule} learning rate](/figures/{name})", ""]  # from the docs root
                    print(f"wrote docs/figures/{name}")
            (out / f"baselines_{schedule}.md").write_text("\n".join(page))
            print(f"wrote docs/figures/baselines_{schedule}.md")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["sweeps", "run", "crosscheck", "build", "figures"])
    parser.add_argument("--only", help="run: only the sweep files whose name matches this regular expression")
    args = parser.parse_args(argv)
    if args.command == "sweeps":
        for path in write_sweeps():
            print(f"wrote {path.relative_to(REPO)}")
    elif args.command == "run":
        run(args.only)
    elif args.command == "crosscheck":
        crosscheck()
    elif args.command == "build":
        build()
    else:
        figures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
