"""The ``deepobs-tune`` command: run a sweep file locally or on SLURM, list its runs, or
write them as ``deepobs-run`` commands for another scheduler.

Examples::

    deepobs-tune sweep.yaml --workers 4          # local process pool
    deepobs-tune sweep.yaml --executor slurm     # one SLURM job array (submitit)
    deepobs-tune sweep.yaml --dry-run            # list the runs, run nothing
    deepobs-tune sweep.yaml --commands jobs.txt  # one deepobs-run command a line

A sweep can be interrupted and started again: finished runs are found by their files
and not run again. Two drivers may work on one sweep at once (two terminals, a requeued
driver job): a run the other one holds is "running elsewhere", waited for, never failed.
A sweep of more than ``MAX_RUNS_WITHOUT_YES`` runs, or more than
``MAX_WORKERS_WITHOUT_YES`` local workers, needs ``--yes`` (a typo must not start a
million runs). Exit status: 0 all runs done, 1 some runs failed (their errors are in
``<output_dir>/.deepobs_tune/<name>/failures``), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import math
import signal
import sys
from typing import Optional

from deepobs.errors import ConfigurationError
from deepobs.runners.cli import OneLineParser
from deepobs.safe_names import output_path, quoted, writable_folder
from deepobs.tuner.executors import EXECUTORS

#: Runs of a sweep (tuning runs and reruns) above which deepobs-tune asks for --yes.
MAX_RUNS_WITHOUT_YES = 10_000
#: Local worker processes above which deepobs-tune asks for --yes.
MAX_WORKERS_WITHOUT_YES = 256


def build_parser() -> OneLineParser:
    """The ``deepobs-tune`` argument parser."""
    parser = OneLineParser(prog="deepobs-tune", allow_abbrev=False,
                           description="Tune optimizers on DeepOBS problems from a sweep file (YAML or JSON).",
                           epilog="example: deepobs-tune sweep.yaml --workers 4   (keys of a sweep file: "
                                  "deepobs.tuner.sweep; a finished run is not run again)")
    parser.add_argument("sweep", help="sweep file (see deepobs/tuner/sweep.py for its keys)")
    parser.add_argument("--executor", choices=EXECUTORS,
                        help="where runs execute (default: the sweep's, else local)")
    parser.add_argument("--workers", type=int, help="local worker processes (default: the sweep's, else 1)")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads per local worker (default: cores // workers)")
    parser.add_argument("--output_dir", help="results folder (default: the sweep's)")
    parser.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                        help="print the runs and whether they are done; run nothing")
    parser.add_argument("--commands", nargs="?", const="-", metavar="FILE",
                        help="write one deepobs-run command a line (to FILE, or stdout) and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per finished run")
    parser.add_argument("--yes", action="store_true",
                        help=f"run (or list) a sweep of more than {MAX_RUNS_WITHOUT_YES:,} runs or with more "
                             f"than {MAX_WORKERS_WITHOUT_YES} local workers")
    return parser


def main(argv=None) -> int:
    """Entry point of ``deepobs-tune``."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from deepobs.tuner.sweep import load_sweep

        sweep = load_sweep(args.sweep)
        if args.output_dir:
            sweep = sweep.with_output_dir(output_path(args.output_dir))
        for flag, value in (("--workers", args.workers), ("--threads", args.threads)):
            if value is not None and value < 1:
                raise ConfigurationError(f"{flag} must be >= 1, got {value}")
        executor, workers = args.executor or sweep.executor, args.workers or sweep.workers
        _check_size(sweep, executor, workers, args.yes)
        if args.commands is not None:
            return _write_commands(sweep, args.commands)
        if args.dry_run:
            return _dry_run(sweep)
        return _run(sweep, executor, workers, args.quiet, args.threads)
    except ConfigurationError as error:
        print(f"deepobs-tune: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepobs-tune: interrupted; run the same command again to finish the missing runs",
              file=sys.stderr)
        return 130
    except OSError as error:  # the output folder made read-only or full during the sweep
        where = f" {quoted(error.filename)}" if getattr(error, "filename", None) else ""
        print(f"deepobs-tune: error: could not write{where}: {error.strerror or error}; finished runs "
              "are kept: run the same command again once there is room", file=sys.stderr)
        return 1


def planned_runs(sweep) -> int:
    """Tuning runs and reruns the sweep plans (grid points or budget x seeds, + reruns)."""
    return sum(study.planned_runs() for study in sweep.studies())


def _check_size(sweep, executor: str, workers: int, yes: bool) -> None:
    """A sweep far larger than intended (a typo) is refused unless ``--yes``."""
    if yes:
        return
    runs = planned_runs(sweep)
    if runs > MAX_RUNS_WITHOUT_YES:
        raise ConfigurationError(f"the sweep plans {runs:,} runs, more than {MAX_RUNS_WITHOUT_YES:,}; "
                                 "check the sweep file, or pass --yes to go ahead")
    if executor == "local" and workers > MAX_WORKERS_WITHOUT_YES:
        raise ConfigurationError(f"{workers:,} local workers asked for, more than {MAX_WORKERS_WITHOUT_YES} "
                                 f"(this machine has {_cores()} cores); pass --yes to go ahead")


def _cores() -> int:
    from deepobs.tuner.executors import available_cores

    return available_cores()


def _write_commands(sweep, target: str) -> int:
    lines = [spec.command() for spec in _unique_runs(sweep.tuning_runs())]
    text = "".join(line + "\n" for line in lines)
    if target == "-":
        sys.stdout.write(text)
    else:
        try:
            with open(target, "w") as stream:
                stream.write(text)
        except OSError as error:
            raise ConfigurationError(f"cannot write {target!r}: {error.strerror or error}") from None
        print(f"wrote {len(lines)} commands to {target}", file=sys.stderr)
    if sweep.rerun_seeds:
        print("note: the reruns of the best settings depend on the results and are not listed; "
              "run deepobs-tune on the sweep once the commands have finished", file=sys.stderr)
    return 0


def _unique_runs(runs: list) -> list:
    return list({spec.key(): spec for spec in runs}.values())


def _dry_run(sweep) -> int:
    studies = sweep.studies()
    print(f"sweep {sweep.name}: {sweep.method} search, {len(sweep.problems)} problem(s) x "
          f"{len(sweep.searches)} optimizer(s), seeds {list(sweep.seeds)}, mode {sweep.mode}, "
          f"output {sweep.output_dir}")
    if sweep.method == "bayesian":
        for study in studies:
            print(f"  {study.testproblem} {study.search.optimizer}: {study.search.budget} settings "
                  f"proposed by TPE (seed {study.search.seed}) x {len(sweep.seeds)} seed(s)")
        tuning = sum(study.search.budget * len(sweep.seeds) for study in studies)
    else:
        runs = _unique_runs(sweep.tuning_runs())
        done = 0
        for spec in runs:
            exists = spec.find_result() is not None
            done += exists
            print(f"  {'[done] ' if exists else ''}{spec.label()}")
        tuning = len(runs)
        print(f"{tuning} tuning runs, {done} already done")
    reruns = len(studies) * len(sweep.rerun_seeds)
    if reruns:
        print(f"then {reruns} reruns of the best settings (seeds {list(sweep.rerun_seeds)})")
    return 0


def _run(sweep, executor_kind: str, workers: int, quiet: bool, threads: Optional[int] = None) -> int:
    from deepobs.tuner.executors import make_executor
    from deepobs.tuner.progress import SweepProgress, format_seconds
    from deepobs.tuner.records import SweepRecords, state_dir
    from deepobs.tuner.searches import tune_studies

    writable_folder(output_path(sweep.output_dir, "output_dir"), "output_dir")
    folder = state_dir(sweep.output_dir, sweep.name)
    executor = make_executor(executor_kind, workers, folder / "jobs", sweep.slurm, threads)
    records = SweepRecords(folder)
    progress = SweepProgress(stream=None if quiet else sys.stderr)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with executor:
            results = tune_studies(sweep.studies(), executor, progress, records)
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = {"sweep": sweep.name, "method": sweep.method, "mode": sweep.mode,
               "seeds": list(sweep.seeds), "rerun_seeds": list(sweep.rerun_seeds),
               "progress": progress.as_dict(), "studies": [result.to_dict() for result in results]}
    path = records.write("summary", summary)
    _print_summary(results)
    # The same counters as the progress lines.
    failed = progress.failed
    print(f"{progress.done} runs done ({progress.existed} found finished), {failed} failed, "
          f"in {format_seconds(progress.as_dict()['elapsed_seconds'])}; summary: {path}")
    if failed:
        print(f"failed runs and their errors: {folder / 'failures'}", file=sys.stderr)
        return 1
    return 0


def _print_summary(results: list) -> None:
    """The chosen setting of each study (deepobs.analyzer.selection's rule, as
    deepobs-plot applies it), its numbers exact so that they can be pasted into
    ``deepobs-run``, and its mean ± std over all its seeds, 4 significant digits."""
    from deepobs.analyzer.selection import format_number, setting_value
    from deepobs.runners.results import format_value

    for result in results:
        if result.best is None:
            print(f"{result.testproblem} {result.optimizer}: no setting finished")
            continue
        setting = " ".join(f"{k}={v!r}" if isinstance(v, float) else f"{k}={format_value(v)}"
                           for k, v in sorted(result.best.setting.items())) \
            or "(its defaults)"
        seeds = ", ".join(str(seed) for seed in result.seeds)
        tuned = setting_value(result.best.values, result.seeds)
        if math.isfinite(tuned):
            line = (f"{result.testproblem} {result.optimizer}: best {setting} ({result.mode} {result.metric} "
                    f"{format_number(tuned)} on seed{'s' if len(result.seeds) > 1 else ''} {seeds})")
        else:  # nothing to choose: the one ranked first is no better than the rest
            line = (f"{result.testproblem} {result.optimizer}: every setting diverged ({len(result.trials)} "
                    f"settings on seed{'s' if len(result.seeds) > 1 else ''} {seeds}); rerun: {setting}")
        if result.reruns is not None and result.reruns.values:
            values = list(result.reruns.values.values())
            line += f"; {len(values)} seeds: {_mean_std(values)}"
        print(line)


def _mean_std(values: list) -> str:
    """``mean ± std`` (population std) in 4 significant digits, and how many diverged."""
    import statistics

    from deepobs.analyzer.selection import format_number

    finite = [v for v in values if math.isfinite(v)]
    diverged = f" ({len(values) - len(finite)} diverged, left out)" if len(finite) < len(values) else ""
    if not finite:
        return "all diverged"
    if len(finite) == 1:
        return f"mean {format_number(finite[0])}{diverged}"
    return f"mean {format_number(statistics.fmean(finite))} ± {format_number(statistics.pstdev(finite))}{diverged}"


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
