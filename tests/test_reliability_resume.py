"""Fault injection: runs killed (SIGKILL, crashes, SIGTERM, SIGINT) and resumed give the
same numbers, bit for bit, as uninterrupted runs; concurrent runs never mix files.

Runs go through ``deepobs-run``'s ``main`` in forked children of the test process (the
torch import is paid once), which kill themselves at a chosen step or in the middle of
a checkpoint write. ``scripts/fault_injection.py`` does the same from outside, with
real processes killed at random times.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from deepobs.runners import checkpoint, cli
from deepobs.runners.locking import RunLock, lock_path
from deepobs.runners.optimizers import resolve_optimizer
from deepobs.runners.runner import StandardRunner

FORK = multiprocessing.get_context("fork")
#: Keys that measure time or record the interruptions themselves.
VOLATILE = {"train_times", "eval_times", "wall_time", "resumed_at", "git_commit"}
# quadratic_deep at batch size 128: 7 steps per epoch, 3 epochs = 21 steps.
STEPS_PER_EPOCH = 7


def argv(output_dir, *extra):
    return ["quadratic_deep", "--optimizer", "momentum", "--lr", "0.01", "-N", "3", "--bs", "128",
            "-q", "--output_dir", str(output_dir), *extra]


def _child(arguments, kill_at_step, kill_in_checkpoint_write, signal_at_step, step_sleep,
           signal_at_evaluation=None):
    torch.set_num_threads(1)
    if signal_at_evaluation:
        from deepobs.testproblems.base import TestProblem

        original_evaluate, evaluations = TestProblem.evaluate, [0]

        def evaluate(self, phase):
            evaluations[0] += 1
            if evaluations[0] == signal_at_evaluation:
                os.kill(os.getpid(), signal.SIGTERM)
            return original_evaluate(self, phase)

        TestProblem.evaluate = evaluate
    original_step = StandardRunner.training_step
    count = [0]

    def training_step(self, tproblem, optimizer):
        count[0] += 1
        if count[0] == kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if signal_at_step and count[0] == signal_at_step[1]:
            os.kill(os.getpid(), signal_at_step[0])
        if step_sleep:
            time.sleep(step_sleep)
        return original_step(self, tproblem, optimizer)

    StandardRunner.training_step = training_step
    if kill_in_checkpoint_write:
        real_save, saves = torch.save, [0]

        def half_written_save(state, stream, *args, **kwargs):
            saves[0] += 1
            if saves[0] == kill_in_checkpoint_write:
                buffer = io.BytesIO()
                real_save(state, buffer)
                stream.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                stream.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(state, stream, *args, **kwargs)

        torch.save = half_written_save
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # the one-line messages of interrupted runs
    os._exit(cli.main(arguments))


def run_child(arguments, kill_at_step=None, kill_in_checkpoint_write=None, signal_at_step=None,
              step_sleep=0.0, start=True, signal_at_evaluation=None):
    process = FORK.Process(target=_child, args=(arguments, kill_at_step, kill_in_checkpoint_write,
                                                signal_at_step, step_sleep, signal_at_evaluation))
    if start:
        process.start()
        process.join(120)
    return process


def result_files(output_dir):
    return sorted(Path(output_dir).rglob("random_seed__*.json"))


def numbers(path):
    """The result without its timing keys, as canonical JSON text (NaN-safe equality)."""
    data = json.loads(Path(path).read_text())
    return json.dumps({key: value for key, value in data.items() if key not in VOLATILE}, sort_keys=True)


@pytest.fixture(scope="module", autouse=True)
def warm_imports():
    """Build one optimizer so that torch's lazy imports happen before any fork."""
    spec = resolve_optimizer("momentum")
    spec.build([torch.zeros(1, requires_grad=True)], lr=0.1)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    process = run_child(argv(folder))
    assert process.exitcode == 0
    (path,) = result_files(folder)
    return numbers(path)


def test_sigkill_at_several_steps_and_in_a_checkpoint_write_then_resume_is_bit_identical(tmp_path, reference):
    # Steps counted per process: epoch ends at 7, 14; --checkpoint_every 3 adds mid-epoch saves.
    kills = [dict(kill_at_step=5), dict(kill_at_step=2), dict(kill_in_checkpoint_write=3),
             dict(kill_at_step=9), dict(kill_in_checkpoint_write=2)]
    statuses = []
    for kill in kills:
        process = run_child(argv(tmp_path, "--resume", "--checkpoint_every", "3"), **kill)
        statuses.append(process.exitcode)
        assert not result_files(tmp_path)
        assert (not list(tmp_path.rglob("*.tmp"))) or kill.get("kill_in_checkpoint_write")
    assert statuses == [-signal.SIGKILL] * len(kills)
    final = run_child(argv(tmp_path, "--resume", "--checkpoint_every", "3"))
    assert final.exitcode == 0
    (path,) = result_files(tmp_path)
    assert numbers(path) == reference
    assert len(json.loads(path.read_text())["resumed_at"]) >= 3
    # Finished: no checkpoint, no temporary file left; only the result and the lock file.
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, ".random_seed__42.lock"])


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_after_the_step_with_a_checkpoint_and_status_75(tmp_path, reference, signal_number):
    process = run_child(argv(tmp_path), signal_at_step=(signal_number, 10))
    assert process.exitcode == checkpoint.EXIT_INTERRUPTED == 75
    (saved,) = tmp_path.rglob("random_seed__42.checkpoint.pt")
    state = checkpoint.load(saved)
    # Call 10 of training_step = step 1 of epoch 1 (epoch 0 took 7 steps and one call that
    # found the pass exhausted); it is finished before stopping, so 2 steps are done.
    assert (state["epoch"], state["step"]) == (1, 10 - (STEPS_PER_EPOCH + 1))
    assert not result_files(tmp_path)
    refused = run_child(argv(tmp_path))  # without --resume the checkpoint is not thrown away
    assert refused.exitcode == checkpoint.EXIT_BAD_INPUT
    resumed = run_child(argv(tmp_path, "--resume"))
    assert resumed.exitcode == 0
    (path,) = result_files(tmp_path)
    assert numbers(path) == reference
    assert json.loads(path.read_text())["resumed_at"] == [{"epoch": 1, "step": 2}]
    assert not list(tmp_path.rglob("*.checkpoint.pt"))


def test_crash_resume_in_process_with_schedule_and_keep_checkpoints(tmp_path):
    """An exception at any step (a crash) leaves the last checkpoint; resuming a
    LearningRateScheduleRunner run (scheduler state included) gives identical lists."""
    from deepobs.runners.runner import LearningRateScheduleRunner

    class Crash(BaseException):
        pass

    class CrashingRunner(LearningRateScheduleRunner):
        crash_at = None
        steps = 0

        def training_step(self, tproblem, optimizer):
            type(self).steps += 1
            if type(self).steps == self.crash_at:
                raise Crash
            return super().training_step(tproblem, optimizer)

    spec = resolve_optimizer("adam")
    settings = dict(testproblem="two_d_rosenbrock", hyperparams={"lr": 0.05}, num_epochs=3,
                    batch_size=1000, fake_data=4000, quiet=True, lr_sched_epochs=[1, 2],
                    lr_sched_factors=[0.5, 0.1], checkpoint_every=2)
    uninterrupted = CrashingRunner(spec.build, spec.hyperparameters, "Adam").run(
        output_dir=str(tmp_path / "a"), **settings)
    for crash_at in (3, 2, 4):
        CrashingRunner.steps, CrashingRunner.crash_at = 0, crash_at
        with pytest.raises(Crash):
            CrashingRunner(spec.build, spec.hyperparameters, "Adam").run(
                output_dir=str(tmp_path / "b"), resume=True, **settings)
    CrashingRunner.crash_at = None
    resumed = CrashingRunner(spec.build, spec.hyperparameters, "Adam").run(
        output_dir=str(tmp_path / "b"), resume=True, keep_checkpoints=True, **settings)
    for key in uninterrupted:
        if key not in VOLATILE:
            assert resumed[key] == uninterrupted[key], key
    assert len(resumed["test_losses"]) == 4
    assert len(list((tmp_path / "b").rglob("random_seed__42.checkpoint.pt"))) == 1  # kept


def test_two_concurrent_runs_of_one_setting_give_exactly_one_valid_result(tmp_path):
    first = run_child(argv(tmp_path), step_sleep=0.02, start=False)
    second = run_child(argv(tmp_path), step_sleep=0.02, start=False)
    first.start()
    second.start()
    first.join(120)
    second.join(120)
    assert sorted([first.exitcode, second.exitcode]) in ([0, checkpoint.EXIT_LOCKED], [0, checkpoint.EXIT_BAD_INPUT])
    (path,) = result_files(tmp_path)
    assert json.loads(path.read_text())["test_losses"][0] > 0
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_held_lock_refuses_the_run_with_status_3(tmp_path, capsys):
    folder = tmp_path / "quadratic_deep" / "Momentum" / \
        "num_epochs__3__batch_size__128__lr__1.e-02__momentum__9.9e-01__nesterov__False"
    folder.mkdir(parents=True)
    with RunLock(lock_path(folder, 42)):
        assert cli.main(argv(tmp_path)) == checkpoint.EXIT_LOCKED
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "another process" in error and f"pid {os.getpid()}" in error
    assert not result_files(tmp_path)


def test_finished_results_are_never_overwritten_unless_asked(tmp_path, capsys):
    fast = ["-N", "1"]
    assert cli.main(argv(tmp_path, *fast)) == 0
    (first,) = result_files(tmp_path)
    content = first.read_text()
    assert cli.main(argv(tmp_path, *fast)) == 0  # reused, like a cache entry
    assert cli.main(argv(tmp_path, *fast, "--skip_if_exists")) == 0
    assert cli.main(argv(tmp_path, *fast, "--resume")) == 0  # finished: nothing to resume
    assert result_files(tmp_path) == [first] and first.read_text() == content
    time.sleep(1.1)  # a new time stamp in the file name
    assert cli.main(argv(tmp_path, *fast, "--overwrite")) == 0
    (replaced,) = result_files(tmp_path)
    assert replaced != first
    assert numbers(replaced) == numbers_text(content)


def numbers_text(text):
    data = json.loads(text)
    return json.dumps({key: value for key, value in data.items() if key not in VOLATILE}, sort_keys=True)


def test_results_record_config_hash_and_provenance(tmp_path):
    spec = resolve_optimizer("sgd")
    runs = {}
    for seed, lr in ((1, 0.01), (2, 0.01), (1, 0.02)):
        runs[seed, lr] = StandardRunner(spec.build, spec.hyperparameters, "SGD").run(
            "quadratic_deep", {"lr": lr}, num_epochs=0, random_seed=seed, output_dir=str(tmp_path), quiet=True)
    assert runs[1, 0.01]["config_hash"] == runs[2, 0.01]["config_hash"]  # seeds share a setting
    assert runs[1, 0.01]["config_hash"] != runs[1, 0.02]["config_hash"]
    assert len(runs[1, 0.01]["config_hash"]) == 16
    assert runs[1, 0.01]["deepobs_version"]
    commit = runs[1, 0.01]["git_commit"]
    assert commit is None or len(commit.split("+")[0]) == 40
    on_disk = json.loads(result_files(tmp_path / "quadratic_deep" / "SGD" /
                                      "num_epochs__0__batch_size__128__lr__1.e-02")[0].read_text())
    assert on_disk["config_hash"] == runs[1, 0.01]["config_hash"]


def test_foreign_corrupt_or_mismatched_checkpoints_are_refused_with_one_line(tmp_path, capsys):
    assert cli.main(argv(tmp_path, "-N", "1", "--keep_checkpoints")) == 0
    (saved,) = tmp_path.rglob("random_seed__42.checkpoint.pt")
    (result,) = result_files(tmp_path)
    result.unlink()  # as if the run had been killed before writing its result
    state = checkpoint.load(saved)
    state["config"] = {**state["config"], "fake_data": 7}
    state["config_hash"] = checkpoint.config_hash(state["config"])
    torch.save(state, saved)
    assert cli.main(argv(tmp_path, "-N", "1", "--resume")) == checkpoint.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "another configuration" in error and "fake_data" in error
    saved.write_bytes(b"not a checkpoint")
    assert cli.main(argv(tmp_path, "-N", "1", "--resume")) == checkpoint.EXIT_BAD_INPUT
    assert "unreadable" in capsys.readouterr().err
    assert cli.main(argv(tmp_path, "-N", "1", "--overwrite")) == 0  # starts again
    assert len(result_files(tmp_path)) == 1 and not saved.exists()


def test_signal_without_result_files_exits_130_and_writes_nothing(tmp_path):
    process = run_child(argv(tmp_path, "--no_logs"), signal_at_step=(signal.SIGTERM, 3))
    assert process.exitcode == checkpoint.EXIT_NOT_RESUMABLE == 130
    assert not list(tmp_path.rglob("*"))


def test_signal_during_an_evaluation_abandons_it_and_resume_redoes_it(tmp_path, reference):
    # Evaluations: train_eval, valid, test per epoch; call 5 is epoch 1's valid pass.
    process = run_child(argv(tmp_path), signal_at_evaluation=5)
    assert process.exitcode == checkpoint.EXIT_INTERRUPTED
    (saved,) = tmp_path.rglob("random_seed__42.checkpoint.pt")
    state = checkpoint.load(saved)
    assert (state["epoch"], state["step"], state["evaluated"]) == (1, 0, False)
    assert [len(values) for values in state["log"]["losses"].values()] == [1, 1, 1]
    assert run_child(argv(tmp_path, "--resume")).exitcode == 0
    (path,) = result_files(tmp_path)
    assert numbers(path) == reference


@pytest.mark.slow
def test_char_rnn_resumes_mid_epoch_with_its_lstm_state(tmp_path):
    """The LSTM state carried from batch to batch is part of the checkpoint
    (TestProblem.state_dict): a run crashed mid-epoch resumes to identical numbers."""

    class Crash(BaseException):
        pass

    class CrashingRunner(StandardRunner):
        crash_at, steps = None, 0

        def training_step(self, tproblem, optimizer):
            type(self).steps += 1
            if type(self).steps == self.crash_at:
                raise Crash
            return super().training_step(tproblem, optimizer)

    spec = resolve_optimizer("adam")
    settings = dict(testproblem="tolstoi_char_rnn", hyperparams={"lr": 0.002}, num_epochs=1, batch_size=4,
                    fake_data=40, quiet=True, checkpoint_every=2, device="cpu")
    reference = CrashingRunner(spec.build, spec.hyperparameters, "Adam").run(output_dir=str(tmp_path / "a"),
                                                                              **settings)
    CrashingRunner.steps, CrashingRunner.crash_at = 0, 4
    with pytest.raises(Crash):
        CrashingRunner(spec.build, spec.hyperparameters, "Adam").run(output_dir=str(tmp_path / "b"),
                                                                     resume=True, **settings)
    CrashingRunner.crash_at = None
    resumed = CrashingRunner(spec.build, spec.hyperparameters, "Adam").run(output_dir=str(tmp_path / "b"),
                                                                            resume=True, **settings)
    assert resumed["resumed_at"] == [{"epoch": 0, "step": 2}]
    for key in reference:
        if key not in VOLATILE:
            assert resumed[key] == reference[key], key


def test_a_checkpoint_that_does_not_fit_the_model_is_a_one_line_error(tmp_path, capsys):
    assert cli.main(argv(tmp_path, "-N", "1", "--keep_checkpoints")) == 0
    (saved,) = tmp_path.rglob("random_seed__42.checkpoint.pt")
    result_files(tmp_path)[0].unlink()
    state = checkpoint.load(saved)
    state["model"] = {name: torch.zeros(3) for name in state["model"]}  # same config, wrong shapes
    torch.save(state, saved)
    assert cli.main(argv(tmp_path, "-N", "1", "--resume")) == checkpoint.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "does not fit" in error
