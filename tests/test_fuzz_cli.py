"""Hypothesis fuzzing of ``deepobs-run``'s argument handling: every input ends either in a
run (exit 0) or in exactly one line ``deepobs-run: error: ...`` with exit status 2, never
in a traceback.

The parse and validate stages run for real (problem set-up and batch-count checks
included); the training loop is replaced by an empty one and ``--no_logs`` is always
given, so that garbage like ``-N 10**9`` or ``--output_dir /`` costs nothing and
writes nothing.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from unittest import mock

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from deepobs.runners import cli
from deepobs.runners.optimizers import resolve_optimizer
from deepobs.runners.runner import StandardRunner, TrainingLog

PROBLEMS = ["quadratic_deep", "two_d_beale", "two_d_rosenbrock", "two_d_branin", "nope", "",
            "quadratic_*", "QUADRATIC_DEEP", "-", "--"]
OPTIMIZERS = ["sgd", "momentum", "adam", "nesterov", "SGD", "torch.optim.AdamW", "adagrad",
              "nope", "os.path", "deepobs.nothing.Here", "", ".", "a.b.c:d", "rmsprop", "../..", "a..b",
              ".x", "x.", "torch.optim.", "1.2"]
#: Every option of the full parser (Adam's hyperparameters included), except the ones
#: that list (and build) every registered model.
_PARSER = cli.build_run_parser(resolve_optimizer("adam").hyperparameters)
FLAGS = sorted({option for action in _PARSER._actions for option in action.option_strings}
               - {"-v", "--verbose", "-h", "--help"})
FLAGS += ["--lr", "--momentum", "--nesterov", "--no-nesterov", "--list", "--list-optimizers",
          "--beta1", "--optimizer", "--resume", "--overwrite", "--checkpoint_every", "--weight_decay"]
NASTY_VALUES = ["nan", "-nan", "inf", "-inf", "1e400", "-1", "0", "-0", "0x10", "1_000", "3.5",
                "9" * 30, "-" * 3, "", " ", "\t", "é", "../..", "/", "/dev/null", "cuda", "cuda:7",
                "cpu", "mps", "meta", "1.1", "1.2", "2.0", "true", "None", "[1, 2]", "--", "=",
                "4294967296", "4294967295", "18446744073709551616", "-N", "--bs=0", "--lr=nan"]

values = st.one_of(
    st.sampled_from(NASTY_VALUES),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12).filter(lambda text: "\x00" not in text),
)
option = st.tuples(st.sampled_from(FLAGS), st.lists(values, max_size=2)).map(lambda t: [t[0], *t[1]])
tokens = st.lists(st.one_of(option, values.map(lambda v: [v])), max_size=8).map(
    lambda groups: [token for group in groups for token in group])

command_lines = st.one_of(
    # A mostly valid command with garbage mixed in.
    st.builds(lambda problem, optimizer, rest: [problem, "--optimizer", optimizer, "--lr", "0.01", *rest],
              st.sampled_from(PROBLEMS), st.sampled_from(OPTIMIZERS), tokens),
    # Pure garbage.
    tokens,
)


def empty_training(self, tproblem, hyperparams, num_epochs, *args, **kwargs):
    """The training loop replaced: what the runner returns for a run of zero steps."""
    log = TrainingLog(tproblem)
    return log.output()


def run_cli(arguments):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), warnings.catch_warnings(), \
            mock.patch.object(StandardRunner, "training", empty_training):
        warnings.simplefilter("ignore")  # "weight_decay is ignored" for unregularized problems
        try:
            code = cli.main(arguments)
        except SystemExit as exit_:  # argparse's own errors and --help
            code = exit_.code
    return code, stdout.getvalue(), stderr.getvalue()


def check_outcome(arguments, code, stderr):
    event(f"exit status {code}")
    assert code in (0, 2), f"exit status {code} for {arguments!r}: {stderr}"
    if code == 2:
        lines = stderr.splitlines()
        assert len(lines) == 1, f"{arguments!r} gave {len(lines)} lines: {stderr!r}"
        assert lines[0].startswith("deepobs-run: error: "), lines[0]
    assert "Traceback" not in stderr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command_lines)
def test_every_command_line_runs_or_fails_in_one_line_with_status_2(arguments):
    arguments = [*arguments, "--no_logs", "-q"]
    code, _, stderr = run_cli(arguments)
    check_outcome(arguments, code, stderr)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=st.sampled_from(["quadratic_deep", "two_d_beale"]),
       flag=st.sampled_from(["-N", "--bs", "-r", "--train_log_interval", "--eval_batch_size",
                             "--fake_data", "--checkpoint_every", "--lr", "--wd", "--device",
                             "--lr_sched_epochs", "--lr_sched_factors", "--protocol"]),
       value=values)
def test_every_value_of_a_numeric_flag_is_validated(problem, flag, value):
    arguments = [problem, "--optimizer", "momentum", "--lr", "0.01", "--fake_data", "1024",
                 flag, value, "--no_logs", "-q"]
    code, _, stderr = run_cli(arguments)
    check_outcome(arguments, code, stderr)


def test_known_hostile_values_are_refused_with_their_names():
    cases = {
        ("--lr", "nan"): "finite", ("--lr", "inf"): "finite", ("-r", "4294967296"): "random_seed",
        ("-r", "-1"): "random_seed", ("--bs", "0"): "batch_size", ("--bs", "5000"): "larger than",
        ("-N", "-1"): "num_epochs", ("--device", "cuda:7"): "cuda", ("--device", "banana"): "device",
        ("--train_log_interval", "0"): "train_log_interval", ("--fake_data", "0"): "fake_data",
        ("--optimizer_name", "../../x"): "optimizer_name", ("--checkpoint_every", "-3"): "checkpoint_every",
        ("--wd", "nan"): "weight_decay", ("--optimizer", "../.."): "unknown optimizer",
        ("--optimizer", "a..b"): "unknown optimizer",
    }
    for (flag, value), expected in cases.items():
        if flag == "--device" and value.startswith("cuda"):
            import torch
            if torch.cuda.is_available():
                continue
        arguments = ["quadratic_deep", "--optimizer", "sgd", "--lr", "0.01", flag, value, "--no_logs", "-q"]
        if flag in ("--lr", "--optimizer"):
            arguments = ["quadratic_deep", "--optimizer", "sgd", "--lr", "0.01", "--no_logs", "-q"]
            arguments[arguments.index(flag) + 1] = value
        code, _, stderr = run_cli(arguments)
        assert code == 2, (flag, value, stderr)
        assert stderr.count("\n") == 1 and expected in stderr, (flag, value, stderr)
