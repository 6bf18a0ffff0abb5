"""Executors: the local pool (kill a sweep half way, resume it), submitit, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from deepobs.tuner import GridSearch, LocalExecutor, RunSpec, SubmititExecutor
from deepobs.tuner.cli import main
from deepobs.tuner.progress import SweepProgress
from deepobs.tuner.searches import Study, tune_studies

REPO = Path(__file__).resolve().parents[1]

#: 6 runs of about a second each: 3 learning rates x 2 problems.
SIX_RUNS = textwrap.dedent("""\
    name: six
    output_dir: {out}
    problems: [quadratic_deep, two_d_rosenbrock]
    optimizers:
      sgd: {{lr: [0.001, 0.002, 0.003]}}
    num_epochs: {epochs}
    fake_data: 256
    batch_size: 16
    workers: 2
    """)


def _result_files(folder: Path) -> list:
    return sorted(folder.rglob("random_seed__*.json"))


def _check_complete(folder: Path, runs: int, epochs: int) -> None:
    files = _result_files(folder)
    assert len(files) == runs
    # one file per setting and seed, and every file whole
    assert Counter((f.parent, f.name.split("__")[1]) for f in files).most_common(1)[0][1] == 1
    for path in files:
        data = json.loads(path.read_text())
        assert len(data["valid_losses"]) == epochs + 1 and len(data["test_losses"]) == epochs + 1


def test_local_pool_sweep_killed_half_way_resumes_every_run_exactly_once(tmp_path, capsys):
    out, epochs = tmp_path / "res", 40
    sweep = tmp_path / "six.yaml"
    sweep.write_text(SIX_RUNS.format(out=out, epochs=epochs))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "deepobs.tuner.cli", str(sweep), "--workers", "2"],
                                   cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while len(_result_files(out)) < 2 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            os.killpg(process.pid, signal.SIGKILL)  # the sweep and its workers, as a crash would
            process.wait()
    before = len(_result_files(out))
    assert 2 <= before < 6, (tmp_path / "log.txt").read_text()

    assert main([str(sweep), "--workers", "2"]) == 0
    captured = capsys.readouterr()
    assert f"6 runs done ({before} found finished), 0 failed" in captured.out
    assert captured.err.count("already done") == before
    _check_complete(out, 6, epochs)
    summary = json.loads((out / ".deepobs_tune" / "six" / "summary.json").read_text())
    assert [s["testproblem"] for s in summary["studies"]] == ["quadratic_deep", "two_d_rosenbrock"]
    assert all(s["best_setting"]["lr"] in (0.001, 0.002, 0.003) for s in summary["studies"])


def test_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("problems: [two_d_beale]\noptimizers: {sgd: {lr: [-0.5, 0.001]}}\n"
                     f"output_dir: {tmp_path / 'res'}\nnum_epochs: 1\nfake_data: 128\n")
    assert main([str(sweep), "--executor", "serial"]) == 1
    assert len(_result_files(tmp_path / "res")) == 1
    (failure,) = (tmp_path / "res" / ".deepobs_tune" / "bad" / "failures").glob("*.json")
    record = json.loads(failure.read_text())
    assert record["run"]["hyperparams"] == {"lr": -0.5} and "lr" in record["error"]
    assert record["command"].startswith("deepobs-run two_d_beale --optimizer sgd --lr -0.5")
    assert "failed 1" in capsys.readouterr().err


def test_local_executor_splits_threads_and_reports_progress(tmp_path):
    executor = LocalExecutor(workers=2, devices=[])
    assert executor.threads == max(1, len(os.sched_getaffinity(0)) // 2)
    studies = [Study("two_d_branin", GridSearch("sgd", {"lr": [0.01, 0.02]}),
                     run_options={"num_epochs": 1, "fake_data": 128, "output_dir": str(tmp_path)})]
    progress = SweepProgress(stream=None)
    with executor:
        (result,) = tune_studies(studies, executor, progress)
    assert progress.done == 2 and progress.failed == 0 and progress.remaining == 0
    assert progress.eta_seconds() == 0.0
    assert len(result.trials) == 2 and result.best is not None


@pytest.mark.slow
def test_submitit_local_executor_runs_a_sweep_end_to_end(tmp_path):
    runs = [RunSpec("two_d_branin", "sgd", {"lr": lr}, 42, output_dir=str(tmp_path / "res"),
                    num_epochs=1, fake_data=128) for lr in (0.01, 0.02, 0.03)]
    executor = SubmititExecutor(tmp_path / "jobs", cluster="local", parameters={"timeout_min": 10},
                                poll_seconds=0.5)
    outcomes = list(executor.run(runs))
    assert sorted(o.status for o in outcomes) == ["done"] * 3
    assert {o.path for o in outcomes} == {str(run.find_result()) for run in runs}
    # every job ran in its own process, logged by submitit
    assert len(list((tmp_path / "jobs").rglob("*_log.out"))) == 3
    assert all(o.extra["job_id"] for o in outcomes)


@pytest.mark.slow
def test_deepobs_tune_with_submitit_local_executor(tmp_path, capsys):
    sweep = tmp_path / "sub.yaml"
    sweep.write_text("problems: [two_d_beale, two_d_branin]\noptimizers: {sgd: {lr: [0.001, 0.002]}}\n"
                     f"output_dir: {tmp_path / 'res'}\nnum_epochs: 1\nfake_data: 128\n"
                     "slurm: {timeout_min: 5}\n")
    assert main([str(sweep), "--executor", "submitit-local"]) == 0
    assert len(_result_files(tmp_path / "res")) == 4
    assert "4 runs done (0 found finished), 0 failed" in capsys.readouterr().out


# A real SLURM cluster: tests/test_tuner_slurm.py (marker slurm).
