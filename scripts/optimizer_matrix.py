"""The optimizer compatibility matrix: every optimizer we can name, run from the command
line with its defaults, and the page docs/optimizers.md that lists what happened.

Runs ``python -m deepobs.runners.cli`` (= ``deepobs-run``) once per optimizer, with its
defaults and no ``--lr``, for one epoch:

* every ``torch.optim`` optimizer, every optimizer ``pytorch_optimizer`` lists
  (``get_supported_optimizers()``), its wrappers (SAM family, Lookahead, ...) and
  ``schedulefree``'s optimizers on ``mnist_mlp --fake_data 2048``;
* the matrix (Muon family) and second-order families (Hessian-based, L-BFGS,
  Shampoo/SOAP/Kron) also on ``cifar10_3c3d --fake_data 1024``;

two at a time, one thread each. A run "runs" when it exits with status 0 and (unless
``--no_logs``) wrote a result file; otherwise the page shows the last line it printed.

Example::

    python scripts/optimizer_matrix.py                      # about an hour on two cores
    python scripts/optimizer_matrix.py --only 'sam|muon' --output /tmp/m.md
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deepobs.runners import optimizer_setup as setup  # noqa: E402
from deepobs.runners.optimizers import resolve_optimizer  # noqa: E402

MAIN = ("mnist_mlp", 2048)
MATRIX = ("cifar10_3c3d", 1024)
#: pytorch_optimizer wrappers that get_supported_optimizers() does not list.
WRAPPERS = ["SAM", "GSAM", "WSAM", "FriendlySAM", "LookSAM", "Lookahead", "ScheduleFreeWrapper", "TRAC",
            "OrthoGrad"]
#: Optimizers of other packages, tried by dotted path when their package is installed
#: (``pip install lion-pytorch prodigyopt dadaptation torch-optimizer muon-optimizer
#: came-pytorch adam-atan2-pytorch pytorch-ranger timm``); the matrix runs without them.
OTHER_PACKAGES = ["lion_pytorch.Lion", "prodigyopt.Prodigy", "dadaptation.DAdaptAdam", "dadaptation.DAdaptSGD",
                  "torch_optimizer.Shampoo", "torch_optimizer.Adahessian", "torch_optimizer.Yogi", "muon.Muon",
                  "muon.SingleDeviceMuon", "came_pytorch.CAME", "adam_atan2_pytorch.AdamAtan2",
                  "pytorch_ranger.Ranger", "timm.optim.Lamb", "timm.optim.AdamP", "timm.optim.Adan",
                  "timm.optim.Muon", "timm.optim.LaProp"]
#: Preconditioner ("second-order") optimizers that are not Hessian-based, also run on the conv net.
SECOND_ORDER = {"LBFGS", "Shampoo", "ScalableShampoo", "SOAP", "Kron", "AdaHessian", "SophiaH"}


@dataclass
class Entry:
    source: str         # torch.optim, pytorch_optimizer, pytorch_optimizer wrapper, schedulefree
    argument: str       # what --optimizer gets
    problem: str
    fake_data: int
    family: str = "-"
    result: str = ""
    message: str = ""
    seconds: float = 0.0
    details: dict = field(default_factory=dict)


def _torch_names() -> list:
    return sorted(name for name, obj in vars(torch.optim).items()
                  if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
                  and obj is not torch.optim.Optimizer)


def static_family(argument: str) -> str:
    """The family, read without building the optimizer (for runs that did not start)."""
    try:
        build = resolve_optimizer(argument).build
    except Exception:  # noqa: BLE001 - an unresolvable name has no family
        return "-"
    if setup.wrapper_argument(build) is not None:
        return "wrapper"
    if setup.matrix_kind(build) is not None:
        return "matrix"
    names = setup._class_names(build)
    step = getattr(build, "step", None)
    parameters = inspect.signature(step).parameters if step is not None else {}
    if "hessian" in parameters or names & setup.HESSIAN_OPTIMIZERS:
        return "hessian"
    closure = parameters.get("closure")
    if (closure is not None and closure.default is inspect.Parameter.empty) or names & setup.CLOSURE_OPTIMIZERS:
        return "closure"
    if inspect.isclass(build) and all(callable(getattr(build, m, None)) for m in ("train", "eval")):
        return "train_eval"
    if callable(getattr(build, "fused_backward", None)):
        return "fused_backward"
    if setup._first_argument(build) in setup.MODEL_ARGUMENTS:
        return "model"
    return "plain"


def entries() -> list:
    """Every optimizer of the matrix, with the problem it runs on."""
    found = []
    for name in _torch_names():
        found.append(Entry("torch.optim", f"torch.optim.{name}", *MAIN))
    try:
        import pytorch_optimizer
    except ImportError:
        pytorch_optimizer = None
    if pytorch_optimizer is not None:
        torch_lower = {name.lower() for name in _torch_names()} | {"sgd", "momentum", "nesterov", "adam"}
        for key in pytorch_optimizer.get_supported_optimizers():
            cls = pytorch_optimizer.load_optimizer(key)
            # Names that torch.optim or deepobs also has resolve to those: use the path.
            argument = f"pytorch_optimizer.{cls.__name__}" if key in torch_lower else key
            found.append(Entry("pytorch_optimizer", argument, *MAIN))
        for name in WRAPPERS:
            if hasattr(pytorch_optimizer, name):
                found.append(Entry("pytorch_optimizer wrapper", name.lower(), *MAIN))
    try:
        import schedulefree
    except ImportError:
        schedulefree = None
    if schedulefree is not None:
        for name in sorted(n for n, obj in vars(schedulefree).items() if inspect.isclass(obj)):
            found.append(Entry("schedulefree", f"schedulefree.{name}", *MAIN))
    for path in OTHER_PACKAGES:
        if importlib.util.find_spec(path.split(".")[0]) is not None:
            found.append(Entry("other packages (dotted path)", path, *MAIN))
    for entry in list(found):
        entry.family = static_family(entry.argument)
        if entry.source.startswith("other"):  # the conv net is for the three packages above
            continue
        names = setup._class_names(resolve_optimizer(entry.argument).build) if entry.family != "-" else set()
        if entry.family in ("matrix", "hessian") or names & SECOND_ORDER:
            found.append(Entry(entry.source, entry.argument, *MATRIX, family=entry.family))
    return found


def run_entry(entry: Entry, output_dir: str, no_logs: bool, timeout: int) -> Entry:
    """One deepobs-run; fills in result and message."""
    command = [sys.executable, "-m", "deepobs.runners.cli", entry.problem, "--optimizer", entry.argument,
               "--fake_data", str(entry.fake_data), "-N", "1", "--device", "cpu", "-q",
               "--output_dir", output_dir]
    if no_logs:
        command.append("--no_logs")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=output_dir)
    except subprocess.TimeoutExpired:
        entry.result, entry.message = "timeout", f"no result after {timeout} s"
        entry.seconds = time.perf_counter() - started
        return entry
    entry.seconds = time.perf_counter() - started
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    written = sorted(Path(output_dir).rglob("*.json")) if not no_logs else []  # its own folder
    if "Traceback (most recent call last)" in done.stderr:
        entry.result, entry.message = "traceback", lines[-1] if lines else ""
    elif done.returncode != 0:
        entry.result, entry.message = "error", lines[-1] if lines else f"exit status {done.returncode}"
    elif not no_logs and not written:
        entry.result, entry.message = "no result", lines[-1] if lines else "exit status 0 but no result file"
    else:
        entry.result = "runs"
        if written:
            output = json.loads(written[-1].read_text())
            setup_record = output.get("optimizer_setup") or {}
            entry.family = setup_record.get("family", entry.family)
            entry.details = {"test_accuracy": (output.get("test_accuracies") or [None])[-1],
                             "diverged": output.get("diverged")}
            if output.get("diverged"):
                entry.result = "runs (diverged)"
    return entry


def run_all(selected: list, workers: int, no_logs: bool, timeout: int, journal: Path = None) -> list:
    """Run the entries; each finished row is appended to ``journal`` (JSON lines), and
    rows already there are reused (an interrupted matrix continues where it stopped)."""
    done = {}
    if journal is not None and journal.exists():
        for line in journal.read_text().splitlines():
            row = json.loads(line)
            done[(row["argument"], row["problem"])] = Entry(**row)
    with tempfile.TemporaryDirectory(prefix="deepobs_matrix_") as base:
        def one(indexed):
            index, entry = indexed
            if (entry.argument, entry.problem) in done:
                return done[(entry.argument, entry.problem)]
            folder = Path(base, str(index))
            folder.mkdir()
            result = run_entry(entry, str(folder), no_logs, timeout)
            if journal is not None:
                with open(journal, "a") as stream:
                    stream.write(json.dumps(result.__dict__) + "\n")
            print(f"{result.result:16s} {result.seconds:7.1f}s {entry.problem:13s} {entry.argument:40s} "
                  f"{result.message}", flush=True)
            return result

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, enumerate(selected)))


def _summary(done: list, source_filter) -> tuple:
    runs = [e for e in done if source_filter(e) and e.problem == MAIN[0]]
    return sum(e.result.startswith("runs") for e in runs), len(runs)


def write_page(done: list, path: Path, no_logs: bool, seconds: float) -> None:
    """docs/optimizers.md: counts, then one table per source."""
    versions = {"torch": torch.__version__}
    for package in ("pytorch_optimizer", "schedulefree", "einops"):
        try:
            from importlib.metadata import version
            versions[package] = version(package.replace("_", "-"))
        except Exception:  # noqa: BLE001 - a package that is not installed
            versions[package] = "not installed"
    from deepobs.runners.provenance import optimizer_package

    other_versions = sorted({"{name} {version}".format(**optimizer_package(resolve_optimizer(e.argument).build))
                             for e in done if e.source.startswith("other")})
    tracebacks = sum(e.result == "traceback" for e in done)
    lines = [
        "# Optimizer compatibility",
        "",
        "Every optimizer we can name, run from the command line with its own defaults (no `--lr`, no",
        "other flag) for one epoch of `mnist_mlp --fake_data 2048` (the matrix and second-order",
        "families also on `cifar10_3c3d --fake_data 1024`), on a CPU, one thread per run. Generated by",
        "`scripts/optimizer_matrix.py`; " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "A run *runs* when `deepobs-run` exits with status 0"
        + (" (measured with `--no_logs`: no result file written)" if no_logs else " and writes its result")
        + "; *runs (diverged)* means it ran and its loss became NaN or infinite with those",
        "defaults (the result says so); *timeout* means it was still running after the time limit",
        "(`--timeout`, default an hour) on a shared two-core CPU: slow there, not refused, and not",
        "counted as running. Families: see [the runner page](runners.md)."
        + (" Other packages, tried by dotted path: " + ", ".join(other_versions) + "." if other_versions else ""),
        "",
        "```{code-block} bash",
        ":class: no-test",
        "python scripts/optimizer_matrix.py   # rewrites this page (about 1.5 hours on two cores)",
        "```",
        "",
        "| | runs | of |",
        "|---|---|---|",
    ]
    for label, test in (("torch.optim", lambda e: e.source == "torch.optim"),
                        ("pytorch_optimizer (`get_supported_optimizers()`)", lambda e: e.source == "pytorch_optimizer"),
                        ("pytorch_optimizer wrappers", lambda e: e.source == "pytorch_optimizer wrapper"),
                        ("schedulefree", lambda e: e.source == "schedulefree"),
                        ("other packages, by dotted path", lambda e: e.source.startswith("other"))):
        ran, total = _summary(done, test)
        if total:
            lines.append(f"| {label} on {MAIN[0]} | {ran} | {total} |")
    matrix = [e for e in done if e.problem == MATRIX[0]]
    lines.append(f"| matrix and second-order families on {MATRIX[0]} | "
                 f"{sum(e.result.startswith('runs') for e in matrix)} | {len(matrix)} |")
    not_run = sum(e.result == "not run" for e in done)
    lines += ["", f"Tracebacks: {tracebacks}. Time: {seconds / 60:.0f} minutes"
              + (f". Not run in this measurement (time): {not_run}." if not_run else "."), ""]
    for source in ("torch.optim", "pytorch_optimizer", "pytorch_optimizer wrapper", "schedulefree",
                   "other packages (dotted path)"):
        rows = [e for e in done if e.source == source]
        if not rows:
            continue
        lines += [f"## {source}", "", "| `--optimizer` | problem | family | result | message |",
                  "|---|---|---|---|---|"]
        for e in sorted(rows, key=lambda e: (e.argument.lower(), e.problem != MAIN[0])):
            message = e.message.replace("|", "\\|")
            lines.append(f"| `{e.argument}` | {e.problem} | {e.family} | {e.result} | {message} |")
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", help="regular expression: run only the optimizers it matches")
    parser.add_argument("--no_logs", action="store_true",
                        help="run with --no_logs (measures the optimizers apart from writing results)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per run (default 3600)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "optimizers.md"))
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--journal", help="JSON-lines file of finished runs: appended to, and reused "
                                          "when the matrix is run again")
    parser.add_argument("--page_only", action="store_true",
                        help="run nothing: write the page from --journal (missing runs: 'not run')")
    args = parser.parse_args(argv)
    selected = entries()
    if args.only:
        selected = [e for e in selected if re.search(args.only, e.argument, re.IGNORECASE)]
    # The main problem first, the slow ones (matrix optimizers on a CPU, the conv net) last.
    selected.sort(key=lambda e: (e.problem != MAIN[0], e.family == "matrix"))
    print(f"{len(selected)} runs, {args.workers} workers", flush=True)
    started = time.perf_counter()
    if args.page_only:
        finished = {}
        for line in Path(args.journal).read_text().splitlines():
            row = Entry(**json.loads(line))
            finished[(row.argument, row.problem)] = row
        done = [finished.get((e.argument, e.problem), e) for e in selected]
        for entry in done:
            entry.result = entry.result or "not run"
    else:
        done = run_all(selected, args.workers, args.no_logs, args.timeout,
                       Path(args.journal) if args.journal else None)
    seconds = sum(e.seconds for e in done) / max(args.workers, 1) if args.page_only else time.perf_counter() - started
    write_page(done, Path(args.output), args.no_logs, seconds)
    if args.json:
        Path(args.json).write_text(json.dumps([e.__dict__ for e in done], indent=1))
    for label, test in (("torch.optim", lambda e: e.source == "torch.optim"),
                        ("pytorch_optimizer", lambda e: e.source == "pytorch_optimizer")):
        ran, total = _summary(done, test)
        print(f"{label}: {ran} of {total} run")
    print(f"tracebacks: {sum(e.result == 'traceback' for e in done)}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
