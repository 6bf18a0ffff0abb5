"""The ``deepobs-run`` command: one problem, one optimizer, one seed.

Example::

    deepobs-run quadratic_deep --optimizer sgd --lr 0.01584893 --protocol 1.1 -N 100

The flags come from :class:`~deepobs.runners.run_config.RunConfig` (run options) and
from the optimizer's signature (hyperparameters). Bad input ends in one line on stderr
and exit status 2, before anything is written.

Exit statuses: 0 done (or an existing result reused), 1 failed (e.g. disk full; earlier
files intact), 2 bad input, 3 another process runs the same setting and seed, 75
interrupted by SIGTERM/SIGINT after writing a checkpoint (resumable: run again with
``--resume``), 130 interrupted without a checkpoint. See :mod:`deepobs.runners.checkpoint`.
"""

from __future__ import annotations

import os
import sys

from deepobs.errors import ConfigurationError, one_line
from deepobs.runners.checkpoint import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_LOCKED, EXIT_NOT_RESUMABLE,
                                        RunInterrupted)
from deepobs.runners.locking import RunLockedError
from deepobs.runners.memory_guard import limit_cpu_memory
from deepobs.runners.run_config import OneLineParser, build_run_parser, hyperparameter_flag, parse_run_argv

__all__ = ["main", "one_line", "hyperparameter_flag", "build_run_parser"]


def _error(message) -> None:
    print(f"deepobs-run: error: {one_line(message)}", file=sys.stderr)


def _first_line(error) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def _print_problems(pattern: str, verbose: bool) -> None:
    from deepobs.registry import get_problem_class, list_problems

    names = list_problems(pattern)
    if not verbose:
        print("\n".join(names))
        return
    columns = ["problem", "dataset", "model", "parameters", "loss", "batch_size", "num_epochs", "weight_decay"]
    rows = [get_problem_class(name)(device="cpu").describe() for name in names]
    print("\t".join(columns))
    for row in rows:
        print("\t".join("-" if row[c] is None else (f"{row[c]:,}" if c == "parameters" else str(row[c]))
                        for c in columns))


def _print_optimizers() -> None:
    from deepobs.runners.optimizers import list_optimizers

    for name, description in list_optimizers().items():
        print(f"{name:<12} {description}")


def main(argv=None) -> int:
    """Entry point of ``deepobs-run``. Run as a command (``argv`` None), a CPU run gets a
    memory ceiling (:mod:`deepobs.runners.memory_guard`)."""
    own_process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = OneLineParser(prog="deepobs-run", add_help=False, allow_abbrev=False)
    pre.add_argument("testproblem", nargs="?")
    pre.add_argument("--optimizer")
    pre.add_argument("--list", nargs="?", const="*", metavar="PATTERN")
    pre.add_argument("-v", "--verbose", action="store_true")
    pre.add_argument("--list-optimizers", "--list_optimizers", dest="list_optimizers", action="store_true")
    pre.add_argument("-h", "--help", action="store_true")
    known, _ = pre.parse_known_args(argv)
    try:
        if known.list is not None:
            _print_problems(known.list, known.verbose)
            return 0
        if known.list_optimizers:
            _print_optimizers()
            return 0
        if known.help and known.optimizer is None:
            build_run_parser({}).parse_args(["--help"])
        config = parse_run_argv(argv)
        if own_process:
            limit_cpu_memory(config.device)
        return _run(config)
    except ConfigurationError as error:
        _error(error)
        return EXIT_BAD_INPUT
    except RunLockedError as error:
        _error(error)
        return EXIT_LOCKED
    except RunInterrupted as interruption:
        print(f"deepobs-run: {one_line(interruption)}", file=sys.stderr)
        return interruption.exit_status
    except KeyboardInterrupt:
        print("deepobs-run: interrupted", file=sys.stderr)
        return EXIT_NOT_RESUMABLE
    except MemoryError:
        _error("out of memory; try a smaller --bs or --eval_batch_size")
        return EXIT_FAILED
    except OSError as error:  # disk full, folder removed or made read-only during the run
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        _error(f"could not write{where}: {error.strerror or error}; files written "
               "before are intact (rerun with --resume to continue from the last checkpoint, if any)")
        return EXIT_FAILED
    except Exception as error:  # an optimizer or model that fails mid-run: one line, not a traceback
        if os.environ.get("DEEPOBS_DEBUG"):
            raise
        _error(f"the run failed: {type(error).__name__}: {_first_line(error)} "
               "(DEEPOBS_DEBUG=1 shows the traceback)")
        return EXIT_FAILED


def _run(config) -> int:
    from deepobs.runners.optimizers import resolve_optimizer
    from deepobs.runners.runner import StandardRunner

    StandardRunner.for_optimizer(resolve_optimizer(config.optimizer)).run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
