"""The ``deepobs-run`` command: one problem, one optimizer, one seed.

Example::

    deepobs-run quadratic_deep --optimizer sgd --lr 0.01584893 --protocol 1.1 -N 100

Bad input ends in one line on stderr and exit status 2, before anything is written.

Exit statuses: 0 done (or skipped), 1 failed (e.g. disk full; earlier files intact),
2 bad input, 3 another process runs the same setting and seed, 75 interrupted by
SIGTERM/SIGINT after writing a checkpoint (resumable: run again with ``--resume``),
130 interrupted without a checkpoint. See :mod:`deepobs.runners.checkpoint`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from deepobs.config import PROTOCOLS
from deepobs.errors import ConfigurationError
from deepobs.registry import close_matches
from deepobs.runners.checkpoint import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_LOCKED, EXIT_NOT_RESUMABLE,
                                        RunInterrupted)
from deepobs.runners.locking import RunLockedError

#: Runner flags; an optimizer hyperparameter with one of these names gets the
#: prefix ``optimizer_`` on the command line (e.g. AdamW's --optimizer_weight_decay).
RUNNER_FLAGS = {
    "testproblem", "optimizer", "optimizer_name", "batch_size", "bs", "num_epochs",
    "random_seed", "data_dir", "output_dir", "weight_decay", "wd", "no_logs",
    "train_log_interval", "print_train_iter", "tb_log", "tb_log_dir", "skip_if_exists",
    "lr_sched_epochs", "lr_sched_factors", "protocol", "device", "quiet", "eval_batch_size",
    "list", "verbose", "list_optimizers", "help", "fake_data", "resume", "overwrite",
    "keep_checkpoints", "checkpoint_every", "amp", "compile", "compile_mode", "channels_last",
    "base_optimizer", "fallback_optimizer",
}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line: ``prog: error: message``."""

    def error(self, message):
        """Exit with status 2 and one line naming the bad argument (and close matches)."""
        if "unrecognized arguments" in message:
            message += self._suggestions(message)
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")

    def _suggestions(self, message: str) -> str:
        known = [option for action in self._actions for option in action.option_strings]
        wrong = [word for word in message.split(":", 1)[1].split() if word.startswith("-")]
        hints = [close_matches(word.split("=")[0], known) for word in wrong]
        return "".join(hint for hint in hints if hint)


def one_line(message) -> str:
    """``message`` with every line break and control character escaped (``\\n``, ``\\x0c``),
    so that an error naming a hostile argument still fits on one line."""
    return "".join(character if character.isprintable() else character.encode("unicode_escape").decode()
                   for character in str(message))


def _error(message) -> None:
    print(f"deepobs-run: error: {one_line(message)}", file=sys.stderr)


def hyperparameter_flag(name: str) -> str:
    """The command-line flag of an optimizer hyperparameter."""
    return f"--optimizer_{name}" if name in RUNNER_FLAGS else f"--{name}"


def _add_hyperparameters(parser, hyperparameter_names: dict, given: Optional[dict] = None,
                         prefix: str = "", title: str = "optimizer hyperparameters") -> None:
    from deepobs.runners.optimizers import parse_hyperparameter_value

    group = parser.add_argument_group(title)
    for name, spec in hyperparameter_names.items():
        value_type = spec.get("type", float)
        required = "default" not in spec and name not in (given or {})
        kwargs = dict(dest=f"{prefix or 'hp'}__{name}", required=required)
        if "default" in spec:
            kwargs["default"] = spec["default"]
            help_text = f"default {spec['default']!r}"
        else:
            help_text = "required" if required else "given in the script"
        if value_type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif value_type is tuple:  # --betas 0.9 0.99 or --betas "(0.9, 0.99)"  [optfam]
            kwargs.update(nargs="+", type=str, metavar=name.upper())
        else:  # [optfam] inf, None, literals: parse_hyperparameter_value
            kwargs["type"] = _value_parser(name, spec, parse_hyperparameter_value)
        flag = f"--{prefix}_{name}" if prefix else hyperparameter_flag(name)
        group.add_argument(flag, help=help_text, **kwargs)


def _value_parser(name: str, spec: dict, parse):
    """An argparse type reading one hyperparameter (its error names the expected type)."""
    def parse_value(text: str):
        try:
            return parse(text, spec)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid {getattr(spec.get('type'), '__name__', 'literal')} value: {text!r}") from None
    parse_value.__name__ = getattr(spec.get("type"), "__name__", "literal")
    return parse_value


def build_run_parser(hyperparameter_names: dict, optimizer_flag: bool = True,
                     lr_schedule: bool = True, given: Optional[dict] = None,
                     base=None, fallback=None) -> argparse.ArgumentParser:
    """The full ``deepobs-run`` parser, with one flag per optimizer hyperparameter."""
    parser = OneLineParser(
        prog="deepobs-run", allow_abbrev=False,
        description="Train one optimizer on one DeepOBS test problem and write a result file.",
        epilog="example: deepobs-run quadratic_deep --optimizer sgd --lr 0.0158 -N 100\n\n"
               "exit status: 0 done or skipped, 1 failed (e.g. disk full; earlier files intact), "
               "2 bad input, 3 the same setting and seed is running elsewhere, 75 stopped by "
               "SIGTERM/SIGINT with a checkpoint (rerun with --resume), 130 stopped without one",
    )
    parser.add_argument("testproblem", help="problem name (deepobs-run --list shows them)")
    if optimizer_flag:
        parser.add_argument("--optimizer", required=True,
                            help="deepobs name, torch.optim class or dotted path")
        parser.add_argument("--optimizer_name", help="name written to the results (default: the optimizer's)")
    parser.add_argument("--bs", "--batch_size", dest="batch_size", type=int,
                        help="mini-batch size (default: the problem's)")
    parser.add_argument("-N", "--num_epochs", type=int, help="epochs (default: the problem's)")
    parser.add_argument("-r", "--random_seed", type=int, default=42, help="run seed (default 42)")
    parser.add_argument("--data_dir", help="data folder (default $DEEPOBS_DATA_DIR or ./data_deepobs)")
    parser.add_argument("--output_dir", default="./results", help="results folder (default ./results)")
    parser.add_argument("--wd", "--weight_decay", dest="weight_decay", type=float,
                        help="L2 factor of the problem (default: the problem's)")
    parser.add_argument("--no_logs", action="store_true", help="write no result file")
    parser.add_argument("--train_log_interval", type=int, default=10,
                        help="log the mini-batch loss every k steps (default 10)")
    parser.add_argument("--print_train_iter", action="store_true", help="print the logged mini-batch losses")
    parser.add_argument("--tb_log", action="store_true", help="log to TensorBoard")
    parser.add_argument("--tb_log_dir", default="none", help="TensorBoard folder")
    parser.add_argument("--skip_if_exists", action="store_true",
                        help="do nothing if a result of this setting and seed exists")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="1.2",
                        help="1.2: held-out validation split (default); 1.1: the published baselines' setting")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--eval_batch_size", type=int,
                        help="batch size of evaluation passes (same results, faster)")
    parser.add_argument("--fake_data", type=int, metavar="N",
                        help="train on N random examples of the real shape (tests, benchmarks)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or log lines")
    speed = parser.add_argument_group("speed options (off by default; see docs/performance.md)")
    speed.add_argument("--amp", choices=["bf16"],
                       help="mixed precision (bfloat16 autocast); changes the numerics, recorded in the result")
    speed.add_argument("--compile", dest="compile_mode", nargs="?", const="default",
                       choices=["default", "reduce-overhead", "max-autotune"],
                       help="torch.compile the model (mode default; reduce-overhead uses CUDA graphs)")
    speed.add_argument("--channels_last", action="store_true", help="channels-last memory layout (conv nets)")
    faults = parser.add_argument_group("interruption and resumption")
    faults.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its checkpoint")
    faults.add_argument("--overwrite", action="store_true",
                        help="start again even if a checkpoint or a result of this seed exists; "
                             "the old result is replaced once the new one is written")
    faults.add_argument("--keep_checkpoints", action="store_true",
                        help="keep the checkpoint after the run has finished")
    faults.add_argument("--checkpoint_every", type=int, default=0, metavar="K",
                        help="also checkpoint every K training steps (default 0: after every epoch only)")
    if lr_schedule:
        parser.add_argument("--lr_sched_epochs", type=int, nargs="+",
                            help="epochs at which the learning rate changes")
        parser.add_argument("--lr_sched_factors", type=float, nargs="+",
                            help="factors of the base learning rate from those epochs on")
    _add_hyperparameters(parser, hyperparameter_names, given)
    # [optfam] a wrapper's base optimizer and a matrix optimizer's fallback, with their flags
    parser.add_argument("--base_optimizer", help="optimizer a wrapper (SAM, Lookahead ...) wraps (default sgd)")
    parser.add_argument("--fallback_optimizer",
                        help="optimizer of the parameters a matrix optimizer (Muon ...) does not take (default adamw)")
    for prefix, spec in (("base", base), ("fallback", fallback)):
        if spec is not None:
            _add_hyperparameters(parser, spec.hyperparameters, prefix=prefix,
                                 title=f"{prefix} optimizer ({spec.name}) hyperparameters")
    return parser


def split_hyperparameters(namespace: dict, prefix: str = "hp") -> tuple[dict, dict]:
    """Separate the optimizer's hyperparameters (``hp__`` destinations; ``base__``,
    ``fallback__`` for the base and fallback optimizers) from run flags."""
    start = f"{prefix}__"
    hyperparams = {key[len(start):]: value for key, value in namespace.items() if key.startswith(start)}
    rest = {key: value for key, value in namespace.items() if not key.startswith(start)}
    for name, value in hyperparams.items():
        if isinstance(value, list):  # tuple flags: --betas 0.9 0.99 or --betas "(0.9, 0.99)"
            from deepobs.runners.optimizers import parse_hyperparameter_value

            try:
                hyperparams[name] = parse_hyperparameter_value(" ".join(value), {"type": tuple})
            except ValueError as error:
                raise ConfigurationError(f"--{name}: {error}") from None
    return {k: v for k, v in hyperparams.items() if v is not None}, rest


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
    """Entry point of ``deepobs-run``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = OneLineParser(prog="deepobs-run", add_help=False, allow_abbrev=False)
    pre.add_argument("testproblem", nargs="?")
    pre.add_argument("--optimizer")
    pre.add_argument("--base_optimizer")
    pre.add_argument("--fallback_optimizer")
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
        from deepobs.runners.optimizers import resolve_optimizer

        spec = resolve_optimizer(known.optimizer) if known.optimizer else None
        base = resolve_optimizer(known.base_optimizer) if known.base_optimizer else None
        fallback = resolve_optimizer(known.fallback_optimizer) if known.fallback_optimizer else None
        parser = build_run_parser(spec.hyperparameters if spec else {}, base=base, fallback=fallback)
        if known.help or spec is None:
            parser.parse_args(argv)  # prints help, or the one-line error for --optimizer
        namespace = vars(parser.parse_args(argv))
        hyperparams, args = split_hyperparameters(namespace)
        base_hyperparams, args = split_hyperparameters(args, "base")
        fallback_hyperparams, args = split_hyperparameters(args, "fallback")
        args.pop("base_optimizer"), args.pop("fallback_optimizer")
        args["base"] = (base, base_hyperparams) if base is not None else None
        args["fallback"] = (fallback, fallback_hyperparams) if fallback is not None else None
        return _run(spec, hyperparams, args)
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
    except OSError as error:  # disk full, folder removed or made read-only during the run
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        _error(f"could not write{where}: {error.strerror or error}; files written "
               "before are intact (the last checkpoint too: rerun with --resume)")
        return EXIT_FAILED


def _run(spec, hyperparams: dict, args: dict) -> int:
    from deepobs.runners.runner import LearningRateScheduleRunner, StandardRunner

    args.pop("optimizer")
    optimizer_name = args.pop("optimizer_name") or spec.name
    schedule = {"lr_sched_epochs": args.pop("lr_sched_epochs"),
                "lr_sched_factors": args.pop("lr_sched_factors")}
    runner_class = LearningRateScheduleRunner if any(v is not None for v in schedule.values()) else StandardRunner
    runner = runner_class(spec.build, spec.hyperparameters, optimizer_name=optimizer_name,
                          base=args.pop("base"), fallback=args.pop("fallback"))
    if runner_class is StandardRunner:
        schedule = {}
    runner.run(hyperparams=hyperparams, **args, **schedule)
    return 0


if __name__ == "__main__":
    sys.exit(main())
