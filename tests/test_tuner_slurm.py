"""deepobs-tune on a real SLURM cluster (submitit): a job array, preemption and requeue,
failures, resumed Bayesian search.

Marked ``slurm``: they run in the default ``make test`` when a SLURM controller answers
(``scripts/slurm_local.sh start`` makes one on this machine) and skip, saying why, when
none does; with ``CI=true`` they fail instead of skipping (CI starts the cluster).
Each test costs a few job starts (a Python process importing torch each); runs are
quadratic_deep with a couple of epochs.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deepobs.runners.checkpoint import checkpoint_path
from deepobs.tuner import RunSpec, SubmititExecutor
from deepobs.tuner.cli import main
from deepobs.tuner.runs import execute_run

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
#: Result fields that differ between two runs of the same configuration.
VOLATILE = {"train_times", "eval_times", "wall_time", "resumed_at", "git_commit", "num_threads"}


def _unreachable_reason():
    """Why no SLURM cluster can be used here (None: one answers, with a usable node)."""
    missing = [tool for tool in ("sbatch", "sinfo", "squeue", "scontrol") if shutil.which(tool) is None]
    if missing:
        return f"no SLURM client tools ({', '.join(missing)} missing)"
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"sinfo does not answer ({error})"
    if answer.returncode != 0:
        return f"no SLURM controller is reachable (sinfo: {answer.stderr.strip() or answer.returncode})"
    if not any(state.rstrip("*~#") in ("idle", "mix", "alloc") for state in answer.stdout.split()):
        return f"no SLURM node is up (sinfo states: {' '.join(answer.stdout.split()) or 'none'})"
    return None


@pytest.fixture(scope="module")
def slurm():
    """A reachable SLURM cluster; skips (fails under CI=true) when there is none."""
    reason = _unreachable_reason()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}; .ci/run starts one with scripts/slurm_local.sh start")
        pytest.skip(f"{reason}; start one on this machine with scripts/slurm_local.sh start")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process reference runs: tiny runs are fastest on one thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def docs_sweep() -> str:
    """The sweep file shown in docs/benchmarking.md (the test runs exactly that file)."""
    text = (REPO / "docs" / "benchmarking.md").read_text()
    match = re.search(r"```yaml\n(# file: slurm_ci\.yaml\n.*?)```", text, flags=re.DOTALL)
    assert match, "docs/benchmarking.md lost its slurm_ci.yaml block"
    return match.group(1)


def _result_files(folder: Path) -> list:
    return sorted(folder.rglob("random_seed__*.json"))


def _numbers(path) -> dict:
    data = json.loads(Path(path).read_text())
    return {key: value for key, value in data.items() if key not in VOLATILE}


def _job_folders(jobs: Path) -> list:
    """submitit's job folders, one per job (named by SLURM job id: ``<array>_<task>``, or
    the id of a lone job); submitit's extra folder named by an array's id is left out."""
    names = {p.name for p in jobs.iterdir() if p.is_dir()} if jobs.is_dir() else set()
    arrays = {name.partition("_")[0] for name in names if "_" in name}
    return sorted(name for name in names if name not in arrays)


def _array_ids(jobs: Path) -> dict:
    """{array job id: sorted task ids} of the job folders."""
    arrays: dict = {}
    for name in _job_folders(jobs):
        array, _, task = name.partition("_")
        if task:  # (submitit also makes a folder named by the array id alone)
            arrays.setdefault(array, []).append(int(task))
    return {array: sorted(tasks) for array, tasks in arrays.items()}


def test_grid_sweep_runs_as_one_job_array_and_matches_the_local_executor(slurm, tmp_path, capsys):
    sweep = tmp_path / "slurm_ci.yaml"
    sweep.write_text(docs_sweep())
    started = time.monotonic()
    assert main([str(sweep), "--output_dir", str(tmp_path / "slurm")]) == 0
    seconds = time.monotonic() - started
    out = capsys.readouterr().out
    assert "10 runs done (0 found finished), 0 failed" in out

    # the 8 grid points as one array (tasks 0-7), then the 2 reruns as a second one
    arrays = _array_ids(tmp_path / "slurm" / ".deepobs_tune" / "slurm_ci" / "jobs")
    assert sorted(arrays.values()) == [[0, 1], list(range(8))], arrays
    grid_array = next(array for array, tasks in arrays.items() if len(tasks) == 8)
    print(f"\nslurm sweep: 10 runs in {seconds:.1f} s; array {grid_array}: "
          f"{_array_wall_seconds(tmp_path / 'slurm', grid_array):.1f} s")

    # every result file valid, and the same numbers as the local executor (in this process)
    assert main([str(sweep), "--output_dir", str(tmp_path / "local"), "--executor", "serial", "-q"]) == 0
    on_slurm, local = _result_files(tmp_path / "slurm"), _result_files(tmp_path / "local")
    assert len(on_slurm) == len(local) == 10
    for slurm_file, local_file in zip(on_slurm, local):
        assert slurm_file.relative_to(tmp_path / "slurm").parent == local_file.relative_to(tmp_path / "local").parent
        data = json.loads(slurm_file.read_text())
        assert len(data["valid_losses"]) == len(data["test_losses"]) == 3  # 2 epochs + the start
        assert all(isinstance(v, float) for v in data["valid_losses"])
        assert _numbers(slurm_file) == _numbers(local_file)
    summaries = [json.loads((tmp_path / where / ".deepobs_tune" / "slurm_ci" / "summary.json").read_text())
                 for where in ("slurm", "local")]
    assert [s["best_setting"] for s in summaries[0]["studies"]] == [s["best_setting"] for s in summaries[1]["studies"]]
    assert summaries[0]["studies"][0]["reruns"]["mean"] == summaries[1]["studies"][0]["reruns"]["mean"]


def _array_wall_seconds(output: Path, array: str) -> float:
    """First job start to last job end of one array, from submitit's logs."""
    stamps = []
    for log in (output / ".deepobs_tune" / "slurm_ci" / "jobs").glob(f"{array}_*/*_log.*"):
        for line in log.read_text().splitlines():
            match = re.search(r"\((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\)", line)
            if match:
                stamps.append(time.mktime(time.strptime(match.group(1).split(",")[0], "%Y-%m-%d %H:%M:%S")))
    return max(stamps) - min(stamps) if stamps else math.nan


@pytest.mark.parametrize("preempt", ["scancel --signal=TERM", "scontrol requeue"])
def test_preempted_job_checkpoints_is_requeued_and_ends_bit_identical(slurm, tmp_path, preempt):
    def spec(folder):
        return RunSpec("quadratic_deep", "sgd", {"lr": 0.01}, 42, output_dir=str(tmp_path / folder),
                       num_epochs=300, batch_size=32, fake_data=256)

    # 300 epochs (a few seconds): the signal arrives long before the run would end
    run, jobs = spec("slurm"), tmp_path / "jobs"
    executor = SubmititExecutor(jobs, cluster="slurm", poll_seconds=0.5,
                                parameters={"timeout_min": 10, "cpus_per_task": 1})
    signalled = []

    def preempt_when_training():
        checkpoint = checkpoint_path(run.result_folder(), run.random_seed)
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and time.monotonic() < deadline:  # the first epoch is done
            time.sleep(0.02)
        (job,) = _job_folders(jobs)
        command = preempt.split() + [job]
        signalled.append(subprocess.run(command, capture_output=True, text=True, timeout=60))

    thread = threading.Thread(target=preempt_when_training, daemon=True)
    thread.start()
    (outcome,) = list(executor.run([run]))
    thread.join(timeout=60)
    assert signalled and signalled[0].returncode == 0, signalled
    assert outcome.status == "done", outcome.error
    # the same job, requeued by SLURM (no second submission), resumed from its checkpoint
    assert _job_folders(jobs) == [outcome.extra["job_id"]]
    result = json.loads(Path(outcome.path).read_text())
    assert len(result["resumed_at"]) == 1 and result["resumed_at"][0]["epoch"] >= 1, result["resumed_at"]
    assert not checkpoint_path(run.result_folder(), 42).exists()
    reference = execute_run(spec("reference"))  # uninterrupted, in this process
    assert reference.status == "done"
    assert _numbers(outcome.path) == _numbers(reference.path)


def test_failed_job_is_recorded_and_a_rerun_submits_only_what_is_missing(slurm, tmp_path, capsys):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(f"name: bad\noutput_dir: {tmp_path / 'res'}\nproblems: [quadratic_deep]\n"
                     "optimizers: {sgd: {lr: [-0.5, 0.01, 0.02]}}\nnum_epochs: 1\nbatch_size: 32\n"
                     "fake_data: 128\nexecutor: slurm\n"
                     "slurm: {timeout_min: 10, cpus_per_task: 1, poll_seconds: 0.5}\n")
    state, jobs = tmp_path / "res" / ".deepobs_tune" / "bad", tmp_path / "res" / ".deepobs_tune" / "bad" / "jobs"
    assert main([str(sweep)]) == 1
    captured = capsys.readouterr()
    assert "2 runs done (0 found finished), 1 failed" in captured.out
    assert "failed 1" in captured.err and "FAILED: " in captured.err
    (failure,) = (state / "failures").glob("*.json")
    record = json.loads(failure.read_text())
    assert record["run"]["hyperparams"] == {"lr": -0.5}
    assert "\n" not in record["error"] and "learning rate" in record["error"].lower(), record["error"]
    assert record["job_id"] in _job_folders(jobs)
    summary = json.loads((state / "summary.json").read_text())
    (trial,) = [t for t in summary["studies"][0]["trials"] if t["setting"]["lr"] == -0.5]
    assert trial["score"] is None and trial["errors"] == {"42": record["error"]}
    assert summary["progress"]["failed"] == 1 and summary["progress"]["done"] == 2
    first_jobs = _job_folders(jobs)
    assert len(first_jobs) == 3

    assert main([str(sweep)]) == 1  # again: only the failed run is submitted
    captured = capsys.readouterr()
    assert "2 runs done (2 found finished), 1 failed" in captured.out
    new_jobs = sorted(set(_job_folders(jobs)) - set(first_jobs))
    assert len(new_jobs) == 1
    assert json.loads(next((state / "failures").glob("*.json")).read_text())["job_id"] == new_jobs[0]


BAYESIAN = """\
name: bayes
output_dir: {out}
problems: [quadratic_deep]
optimizers:
  sgd: {{lr: {{log_uniform: [1.0e-3, 1.0e-1]}}}}
search: bayesian
budget: 6
parallel_trials: 3
startup_trials: 3
search_seed: 7
num_epochs: 1
batch_size: 32
fake_data: 128
executor: slurm
slurm: {{timeout_min: 10, cpus_per_task: 1, poll_seconds: 0.5}}
"""


def test_bayesian_search_on_slurm_runs_trials_in_parallel_is_reproducible_and_resumes(slurm, tmp_path, capsys):
    sweep = tmp_path / "bayes.yaml"
    sweep.write_text(BAYESIAN.format(out=tmp_path / "res"))
    jobs = tmp_path / "res" / ".deepobs_tune" / "bayes" / "jobs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "deepobs.tuner.cli", str(sweep)], cwd=REPO, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not _result_files(tmp_path / "res") and driver.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver dies; its jobs go on
            driver.wait()
    assert driver.returncode == -signal.SIGKILL, (tmp_path / "driver.log").read_text()
    # three trials in flight at once: the first batch is one array of three tasks
    assert list(_array_ids(jobs).values()) == [[0, 1, 2]]

    assert main([str(sweep)]) == 0  # resumed: finds or waits for the killed driver's runs
    assert "6 runs done" in capsys.readouterr().out
    assert len(_result_files(tmp_path / "res")) == 6
    # the same seed gives the same trials in this process, without SLURM and without a kill
    assert main([str(sweep), "--executor", "serial", "--output_dir", str(tmp_path / "reference"), "-q"]) == 0
    resumed, reference = (
        json.loads((tmp_path / where / ".deepobs_tune" / "bayes" / "summary.json").read_text())["studies"][0]
        for where in ("res", "reference"))
    assert [t["setting"] for t in resumed["trials"]] == [t["setting"] for t in reference["trials"]]
    assert [t["score"] for t in resumed["trials"]] == [t["score"] for t in reference["trials"]]
    assert resumed["best_setting"] == reference["best_setting"]


def _kill_job_python(job_id: str) -> None:
    """SIGKILL the job's Python process, as the out-of-memory killer would (this node)."""
    listing = subprocess.run(["scontrol", "listpids", job_id], capture_output=True, text=True).stdout
    for line in listing.splitlines()[1:]:
        pid = int(line.split()[0])
        try:
            if b"submitit" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.mark.parametrize("stop", ["scancel", "kill -9"])
def test_a_cancelled_or_killed_job_is_failed_not_requeued(slurm, tmp_path, stop):
    """A plain scancel stays a cancel (the run keeps its checkpoint, nothing reruns it);
    a job killed without a result is found ended through squeue (no sacct here)."""
    run = RunSpec("quadratic_deep", "sgd", {"lr": 0.01}, 42, output_dir=str(tmp_path / "res"),
                  num_epochs=300, batch_size=32, fake_data=256)
    jobs = tmp_path / "jobs"
    executor = SubmititExecutor(jobs, cluster="slurm", poll_seconds=0.5,
                                parameters={"timeout_min": 10, "cpus_per_task": 1})
    checkpoint = checkpoint_path(run.result_folder(), run.random_seed)

    def stop_when_training():
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if stop == "scancel":
            subprocess.run(["scancel", *_job_folders(jobs)], capture_output=True, timeout=60)
        else:
            _kill_job_python(*_job_folders(jobs))

    thread = threading.Thread(target=stop_when_training, daemon=True)
    thread.start()
    (outcome,) = list(executor.run([run]))
    thread.join(timeout=60)
    assert outcome.status == "failed" and run.find_result() is None
    assert _job_folders(jobs) == [outcome.extra["job_id"]]  # not submitted again
    if stop == "scancel":
        assert outcome.error.startswith("stopped by SLURM (job state COMPLETING"), outcome.error
        assert outcome.extra["cancelled"] and checkpoint.exists()
    else:
        assert outcome.error.startswith(f"job {outcome.extra['job_id']}: "), outcome.error
    deadline, state = time.monotonic() + 60, "COMPLETING"
    while state == "COMPLETING" and time.monotonic() < deadline:  # SLURM cleans up, then: not requeued
        time.sleep(0.5)
        state = subprocess.run(["squeue", "-h", "-j", outcome.extra["job_id"], "-o", "%T"], capture_output=True,
                               text=True).stdout.strip()
    assert state in ("", "CANCELLED", "FAILED", "COMPLETED"), state
