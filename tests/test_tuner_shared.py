"""Two drivers on one sweep: runs that another process holds are "running elsewhere"
(waited for, never failed), and the summary is computed from the files on disk."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from deepobs.runners.locking import RunLock, lock_path
from deepobs.tuner import GridSearch, SerialExecutor
from deepobs.tuner.progress import SweepProgress
from deepobs.tuner.runs import execute_run, objective, read_output
from deepobs.tuner.searches import Study, tune_studies

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    from deepobs.tuner import searches

    monkeypatch.setattr(searches, "ELSEWHERE_POLL_SECONDS", 0.05)


def _wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("other_finishes", [True, False], ids=["other-finishes", "other-dies"])
def test_a_run_held_by_another_process_is_waited_for_never_failed(tmp_path, other_finishes):
    study = Study("two_d_branin", GridSearch("sgd", {"lr": [0.01, 0.02]}),
                  run_options={"num_epochs": 1, "fake_data": 128, "output_dir": str(tmp_path / "res")})
    held = study.run_spec({"lr": 0.01}, 42)
    held.result_folder().mkdir(parents=True)
    lock = RunLock(lock_path(held.result_folder(), 42)).acquire()  # "another process" holds it
    assert held.held_elsewhere()
    stream = io.StringIO()
    progress = SweepProgress(stream=stream)
    results = []
    driver = threading.Thread(target=lambda: results.extend(tune_studies([study], SerialExecutor(), progress)))
    driver.start()
    try:
        _wait_for(lambda: "running elsewhere" in stream.getvalue())
        assert progress.failed == 0
        if other_finishes:  # the other process writes the result, then lets go
            other = execute_run(replace(held, output_dir=str(tmp_path / "other")))
            shutil.copy(other.path, held.result_folder() / Path(other.path).name)
    finally:
        lock.release()
        driver.join(timeout=60)
    assert not held.held_elsewhere()
    assert progress.done == 2 and progress.failed == 0 and progress.elsewhere == 1
    lines = stream.getvalue()
    assert "FAILED" not in lines and "failed 1" not in lines
    assert ("done elsewhere" in lines) == other_finishes
    (result,) = results
    assert sorted(trial.setting["lr"] for trial in result.trials if trial.score is not None) == [0.01, 0.02]


TWO_DRIVERS = textwrap.dedent("""\
    name: shared
    output_dir: {out}
    problems: [quadratic_deep]
    optimizers:
      sgd: {{lr: [0.001, 0.002, 0.004, 0.008, 0.016, 0.032]}}
    num_epochs: 10
    batch_size: 32
    fake_data: 256
    """)


@pytest.mark.slow
def test_two_drivers_on_one_sweep_share_the_runs_and_agree(tmp_path):
    out = tmp_path / "res"
    sweep = tmp_path / "shared.yaml"
    sweep.write_text(TWO_DRIVERS.format(out=out))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "deepobs.tuner.cli", str(sweep), "--workers", "1"]
    drivers = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [driver.communicate(timeout=600) for driver in drivers]
    for driver, (stdout, stderr) in zip(drivers, outputs):
        assert driver.returncode == 0, stdout + stderr
        assert "FAILED" not in stderr and "failed 0 |" in stderr.splitlines()[-1], stderr
        assert "6 runs done" in stdout and ", 0 failed" in stdout, stdout
        assert "no setting finished" not in stdout
    files = sorted(out.rglob("random_seed__*.json"))
    assert len(files) == 6 and len({f.parent for f in files}) == 6  # each run once
    # the best setting, from the files themselves; both drivers and summary.json name it
    scores = {read_output(f)["optimizer_hyperparams"]["lr"]: objective(read_output(f)) for f in files}
    best = max(scores, key=scores.get)
    for stdout, _ in outputs:
        (line,) = [line for line in stdout.splitlines() if " best " in line]
        assert f"best lr={best!r} " in line, (line, best)
    summary = json.loads((out / ".deepobs_tune" / "shared" / "summary.json").read_text())
    (study,) = summary["studies"]
    assert study["best_setting"] == {"lr": best}
    assert {t["setting"]["lr"]: t["score"] for t in study["trials"]} == scores
