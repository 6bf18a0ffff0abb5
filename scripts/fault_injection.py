"""Fault injection from outside: kill deepobs-run at random points, resume, compare bit for bit.

Drives ``python -m deepobs.run`` and ``python -m deepobs.tuner.cli`` as black boxes:

1. kill/resume: for each run, an uninterrupted reference; then the same command with
   ``--resume`` is killed again and again (SIGKILL at a random time during training,
   SIGKILL the moment a checkpoint or result is being written, SIGTERM at a random time)
   until it finishes. After every kill each file is checked (results parse, the
   checkpoint loads, finished results are unchanged); the final result must equal the
   reference in every key but the timing ones.
2. concurrency: several identical runs started at once must leave exactly one valid result.
3. garbage command lines and sweep files: each must end in a run (exit 0) or in a single
   ``error:`` line with exit status 2, never a traceback.
4. unwritable places: ``deepobs-plot --out`` and ``deepobs-tune --output_dir`` pointing to a
   file, below a file, to a read-only folder and to a full one (a 64 KiB tmpfs; read-only
   and full need root for ``mount``, else read-only is mode 0555 and full is skipped):
   each must end with exit status 1 or 2 and an ``error:`` line, never a traceback, with
   nothing written outside the target and the results already there intact.
5. two drivers: two ``deepobs-tune`` processes started at once on one sweep must run
   every setting once, count none as failed, and name the same best setting as the
   files on disk (and ``summary.json``).

Usage::

    python scripts/fault_injection.py                 # defaults: 2 runs x 6 kills, 300+300 inputs
    python scripts/fault_injection.py --runs 3 --kills 8 --garbage 1000 --report out.json
    python scripts/fault_injection.py --sections unwritable   # only part 4
    python scripts/fault_injection.py --sections drivers      # only part 5: two deepobs-tune drivers on one sweep

Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Where the deepobs package under test is imported from (a snapshot, see ``snapshot``).
SOURCE = {"path": REPO}
#: Keys that measure time, record the interruptions or name the source commit (which
#: other people's commits change between the reference and the resumed run).
VOLATILE = {"train_times", "eval_times", "wall_time", "resumed_at", "git_commit"}
EXIT_INTERRUPTED = 75


def base_command(output_dir, seed, epochs, batch_size, checkpoint_every):
    return [sys.executable, "-m", "deepobs.run", "quadratic_deep", "--optimizer", "momentum", "--lr", "0.01",
            "-N", str(epochs), "--bs", str(batch_size), "-r", str(seed), "-q", "--output_dir", str(output_dir),
            "--checkpoint_every", str(checkpoint_every)]


def snapshot(work: Path) -> Path:
    """Copy the package, so that edits to the working tree during the hour-long test do
    not change the code between a reference run and its resumed twin."""
    target = work / "source"
    if not target.exists():
        shutil.copytree(REPO / "deepobs", target / "deepobs", ignore=shutil.ignore_patterns("__pycache__"))
        if (REPO / "VERSION").exists():
            shutil.copy(REPO / "VERSION", target / "VERSION")
    return target


def environment():
    env = dict(os.environ, PYTHONPATH=str(SOURCE["path"]), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("DEEPOBS_DEBUG", None)
    return env


def result_files(folder):
    return sorted(Path(folder).rglob("random_seed__*.json"))


def numbers(path):
    data = json.loads(Path(path).read_text())
    return json.dumps({k: v for k, v in data.items() if k not in VOLATILE}, sort_keys=True)


# --------------------------------------------------------------------------- integrity
def check_files(folder, finished: dict) -> list:
    """Problems found in ``folder``: unreadable results or checkpoints, lost or changed
    finished results. ``finished`` maps result path -> content of results seen before."""
    import torch

    problems = []
    for path in result_files(folder):
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as error:
            problems.append(f"corrupt result {path}: {error}")
    for path in Path(folder).rglob("random_seed__*.checkpoint.pt"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            assert isinstance(state, dict) and "epoch" in state
        except Exception as error:  # noqa: BLE001 - any failure is a corrupt checkpoint
            problems.append(f"corrupt checkpoint {path}: {type(error).__name__}")
    for path, content in finished.items():
        if not Path(path).exists():
            problems.append(f"lost result {path}")
        elif Path(path).read_text() != content:
            problems.append(f"changed result {path}")
    return problems


# --------------------------------------------------------------------------- kill/resume
def checkpoint_stamps(folder) -> dict:
    stamps = {}
    for path in Path(folder).rglob("random_seed__*.checkpoint.pt"):
        try:
            stamps[path] = path.stat().st_mtime_ns
        except FileNotFoundError:
            pass
    return stamps


def wait_for_training(process, folder, before: dict, timeout=300.0):
    """Wait until this process has written a checkpoint (it is training, its signal
    handlers are installed); ``before`` holds the checkpoints' stamps at its start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        stamps = checkpoint_stamps(folder)
        if any(before.get(path) != stamp for path, stamp in stamps.items()):
            return True
        time.sleep(0.005)
    return False


def kill_when_writing(process, folder, timeout):
    """SIGKILL the moment a temporary checkpoint or result file exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for root, _, names in os.walk(folder):
            if any(name.endswith(".tmp") for name in names):
                process.kill()
                return True
        time.sleep(0.0005)
    return False


def kill_resume_run(work, seed, args, rng, log):
    """One run: reference, then kill/resume until finished. Returns a summary dict."""
    reference_dir, folder = work / f"reference_{seed}", work / f"killed_{seed}"
    command = base_command(reference_dir, seed, args.epochs, args.batch_size, args.checkpoint_every)
    started = time.monotonic()
    subprocess.run(command, check=True, env=environment(), stdout=subprocess.DEVNULL)
    (reference_path,) = result_files(reference_dir)
    reference = numbers(reference_path)
    train_seconds = json.loads(reference_path.read_text())["wall_time"]
    log(f"seed {seed}: reference in {time.monotonic() - started:.1f} s (training {train_seconds:.2f} s)")

    kinds = ["sigkill-random"] * max(args.kills - 2, 0) + ["sigkill-during-write", "sigterm-random"]
    kinds = kinds[: args.kills]
    rng.shuffle(kinds)
    summary = {"seed": seed, "kills": [], "problems": []}
    command = base_command(folder, seed, args.epochs, args.batch_size, args.checkpoint_every) + ["--resume"]
    attempts = 0
    while True:
        kind = kinds[len(summary["kills"])] if len(summary["kills"]) < len(kinds) else None
        before = checkpoint_stamps(folder)
        process = subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        attempts += 1
        landed = None
        if kind is not None and wait_for_training(process, folder, before):
            if kind == "sigkill-during-write":
                landed = "during write" if kill_when_writing(process, folder, timeout=120) else None
            else:
                time.sleep(rng.uniform(0.0, max(train_seconds / 2, 0.05)))
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM if kind == "sigterm-random" else signal.SIGKILL)
                    landed = "random time"
        _, stderr = process.communicate(timeout=600)
        code = process.returncode
        if landed is not None:
            expected = {EXIT_INTERRUPTED} if kind == "sigterm-random" else {-signal.SIGKILL}
            ok = code in expected or (kind == "sigterm-random" and code == 0)
            summary["kills"].append({"kind": kind, "exit": code, "ok": ok})
            if not ok:
                summary["problems"].append(f"{kind}: exit status {code}: {stderr.strip()[-300:]}")
            problems = check_files(folder, {})
            summary["problems"] += problems
            log(f"seed {seed}: {kind} ({landed}) -> exit {code}"
                + (f"; PROBLEMS {problems}" if problems else "; files intact"))
            continue
        if code != 0:
            summary["problems"].append(f"final run exit status {code}: {stderr.strip()[-300:]}")
        break
    finals = result_files(folder)
    if len(finals) != 1:
        summary["problems"].append(f"{len(finals)} result files instead of 1")
    elif numbers(finals[0]) != reference:
        summary["problems"].append("final result differs from the uninterrupted reference")
    else:
        summary["identical"] = True
        summary["resumed_at"] = json.loads(finals[0].read_text())["resumed_at"]
    leftovers = [p.name for p in Path(folder).rglob("*") if p.is_file()
                 and (p.name.endswith(".tmp") or p.name.endswith(".checkpoint.pt"))]
    if leftovers:
        summary["problems"].append(f"files left after completion: {leftovers}")
    summary["attempts"] = attempts
    log(f"seed {seed}: finished after {attempts} processes; identical to reference: "
        f"{summary.get('identical', False)}; resumed at {summary.get('resumed_at')}")
    return summary


def concurrency(work, args, log):
    folder = work / "concurrent"
    command = base_command(folder, 7, args.epochs, args.batch_size, 0)
    processes = [subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for _ in range(args.concurrent)]
    codes = [process.wait(timeout=600) for process in processes]
    results = result_files(folder)
    problems = []
    if len(results) != 1:
        problems.append(f"{len(results)} results from {args.concurrent} concurrent runs")
    problems += check_files(folder, {})
    if sorted(codes).count(0) != 1 or any(code not in (0, 2, 3) for code in codes):
        problems.append(f"exit statuses {codes}")
    log(f"concurrency: {args.concurrent} identical runs at once -> exit statuses {sorted(codes)}, "
        f"{len(results)} result file(s)")
    return {"exit_statuses": codes, "results": len(results), "problems": problems}


# --------------------------------------------------------------------------- garbage input
GOOD_TOKENS = ["quadratic_deep", "two_d_beale", "--optimizer", "sgd", "momentum", "adam", "--lr", "0.01",
               "-N", "0", "1", "--bs", "16", "-r", "3", "--fake_data", "256", "--protocol", "1.1",
               "--device", "cpu", "--wd", "--eval_batch_size", "--train_log_interval", "--momentum",
               "--nesterov", "--lr_sched_epochs", "--lr_sched_factors", "--optimizer_name", "--checkpoint_every",
               "--resume", "--overwrite", "--skip_if_exists", "--list", "--list-optimizers", "--beta1"]
BAD_TOKENS = ["nan", "inf", "-inf", "1e400", "-1", "-0", "0x1f", "", " ", "\n", "\x0c", "é", "../..", "/",
              "cuda:9", "banana", "4294967296", "9" * 40, "--", "-", "=", "--lr=nan", "--bs=0", "-N=-3",
              "--no-such-flag", "--optimizer=os.path", "torch.optim.NotThere", "a.b:c", "\u2028"]


def garbage_command_line(rng):
    words = []
    if rng.random() < 0.6:
        words += [rng.choice(["quadratic_deep", "two_d_beale", "nope"]), "--optimizer",
                  rng.choice(["sgd", "momentum", "adam", "bogus"])]
        if rng.random() < 0.8:
            words += ["--lr", rng.choice(["0.01", "0.1", "nan", "-1", "x"])]
    for _ in range(rng.randint(0, 6)):
        pool = GOOD_TOKENS if rng.random() < 0.5 else BAD_TOKENS
        word = rng.choice(pool)
        if rng.random() < 0.1:
            word = "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(1, 6)))
        words.append(word)
    return words


def garbage_sweep(rng):
    import yaml

    valid = {"problems": ["quadratic_deep"], "optimizers": {"sgd": {"lr": [0.01, 0.1]}}, "num_epochs": 1,
             "fake_data": 128}
    keys = ["problems", "optimizers", "search", "budget", "seeds", "num_epochs", "batch_size", "fake_data",
            "executor", "workers", "rerun_best", "weight_decay", "protocol", "name", "mode", "slurm", "bogus"]
    values = [None, True, -1, 0, 3, 1e400, float("nan"), "x", "", [], {}, ["quadratic_deep"], {"sgd": None},
              {"sgd": {"lr": {"log_uniform": [0, 1]}}}, {"adam": {"lr": [0.1], "beta9": 2}}, "random",
              "bayesian", 2 ** 80, [1, 1], {"name": "two_d_beale", "num_epochs": -2}]
    choice = rng.random()
    if choice < 0.6:
        data = dict(valid)
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(keys)
            if rng.random() < 0.2:
                data.pop(key, None)
            else:
                data[key] = rng.choice(values)
        text = yaml.safe_dump(data) if rng.random() < 0.5 else json.dumps(data)
    elif choice < 0.8:
        text = yaml.safe_dump(valid)
        cut = rng.randint(0, len(text))
        text = text[:cut] + rng.choice(["{", "]", ":", "\n  - ", "&a", "*a", "!!python/name:os.system", "\t", "'"]) \
            + text[cut:]
    else:
        text = "".join(chr(rng.randint(1, 0x7F)) for _ in range(rng.randint(0, 80)))
    return text


HARNESS = r"""
import contextlib, io, json, sys, traceback, warnings
from unittest import mock
from deepobs.runners import cli
from deepobs.runners.runner import StandardRunner, TrainingLog
warnings.simplefilter("ignore")

def empty_training(self, tproblem, *args, **kwargs):
    return TrainingLog(tproblem).output()

kind = sys.argv[1]
for line in sys.stdin:
    item = json.loads(line)
    err, out = io.StringIO(), io.StringIO()
    crashed = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            if kind == "cli":
                with mock.patch.object(StandardRunner, "training", empty_training):
                    code = cli.main(item + ["--no_logs"])
            else:
                from deepobs.errors import ConfigurationError
                from deepobs.tuner.sweep import load_sweep
                try:
                    load_sweep(item)
                    code = 0
                except ConfigurationError as error:
                    print(f"deepobs-tune: error: {error}", file=sys.stderr)
                    code = 2
        except SystemExit as exit_:
            code = exit_.code
        except BaseException:
            code, crashed = None, traceback.format_exc()
    print(json.dumps({"code": code, "stderr": err.getvalue(), "crash": crashed}), flush=True)
"""


def judge(kind, item, code, stderr, crash=None):
    """None if the outcome is acceptable, else a description of the problem."""
    if crash:
        return f"traceback for {item!r}: {crash.strip().splitlines()[-1]}"
    if code not in (0, 2):
        return f"exit status {code} for {item!r}: {stderr.strip()[-200:]}"
    if "Traceback" in stderr:
        return f"traceback printed for {item!r}"
    if code == 2:
        lines = [line for line in stderr.splitlines() if "Warning" not in line and "warnings.warn" not in line]
        if len(lines) != 1 or ": error: " not in lines[0]:
            return f"not one error line for {item!r}: {stderr!r}"
    return None


def garbage(work, args, rng, log):
    summary = {}
    for kind, count, make in (("cli", args.garbage, garbage_command_line), ("sweep", args.sweeps, garbage_sweep)):
        items = [make(rng) for _ in range(count)]
        harness = subprocess.run([sys.executable, "-c", HARNESS, kind], input="\n".join(json.dumps(i) for i in items),
                                 capture_output=True, text=True, env=environment(), cwd=work, timeout=3600)
        outcomes = [json.loads(line) for line in harness.stdout.splitlines() if line.startswith("{")]
        problems = [p for p in (judge(kind, item, o["code"], o["stderr"], o["crash"])
                                for item, o in zip(items, outcomes)) if p]
        if len(outcomes) != len(items):
            problems.append(f"{kind} harness stopped after {len(outcomes)} of {len(items)}: {harness.stderr[-500:]}")
        codes = [o["code"] for o in outcomes]
        summary[kind] = {"inputs": len(items), "ran": codes.count(0), "one_line_errors": codes.count(2),
                         "problems": problems}
        log(f"garbage {kind}: {len(items)} inputs in-process -> {codes.count(0)} ran/loaded, "
            f"{codes.count(2)} one-line errors, {len(problems)} problems")
    # A few real processes as well: the console entry points end to end.
    real_problems, real_codes = [], []
    for index in range(args.real_processes):
        if index % 2 == 0:
            words = garbage_command_line(rng) + ["--no_logs"]
            command = [sys.executable, "-m", "deepobs.run", *words]
            item = words
        else:
            sweep_file = work / f"garbage_sweep_{index}.yaml"
            sweep_file.write_text(garbage_sweep(rng))
            command = [sys.executable, "-m", "deepobs.tuner.cli", str(sweep_file), "--dry-run"]
            item = sweep_file.read_text()
        try:
            process = subprocess.run(command, capture_output=True, text=True, env=environment(), cwd=work,
                                     timeout=args.real_timeout)
            code, stderr = process.returncode, process.stderr
        except subprocess.TimeoutExpired:
            code, stderr = 0, ""  # still training after the timeout: a valid run
        real_codes.append(code)
        problem = judge("real", item, code, stderr)
        if problem:
            real_problems.append(problem)
    summary["real_processes"] = {"inputs": len(real_codes), "exit_statuses": real_codes, "problems": real_problems}
    log(f"garbage as real processes: {len(real_codes)} -> exit statuses {real_codes}, "
        f"{len(real_problems)} problems")
    return summary


# --------------------------------------------------------------------------- unwritable places
def _mount_tmpfs(folder: Path, options: str) -> bool:
    """Mount a tmpfs with ``options`` on ``folder`` (root only); True if it worked."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def _unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], capture_output=True)


def _tree_snapshot(folder: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def unwritable(work, args, log):
    """deepobs-plot and deepobs-tune writing to a file, below a file, a read-only folder
    and a full one: exit 1 or 2 with an error line, no traceback, nothing written elsewhere."""
    base = work / "unwritable"
    base.mkdir(parents=True, exist_ok=True)
    results = base / "results"
    if not result_files(results):
        subprocess.run(base_command(results, 1, 1, args.batch_size, 0), check=True, env=environment(),
                       stdout=subprocess.DEVNULL)
    sweep = base / "sweep.yaml"
    sweep.write_text("name: faults\nproblems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.01, 0.1]}}\n"
                     f"num_epochs: 1\nbatch_size: {args.batch_size}\n")
    (base / "a_file").write_text("not a folder\n")
    outcomes, problems, skipped = [], [], []
    tools = {"deepobs-plot": lambda target: [sys.executable, "-m", "deepobs.analyzer.cli", str(results),
                                             "--out", str(target), "--formats", "png"],
             "deepobs-tune": lambda target: [sys.executable, "-m", "deepobs.tuner.cli", str(sweep),
                                             "--output_dir", str(target), "-q"]}
    for tool, command in tools.items():
        for kind in ("file", "below_a_file", "read_only", "full"):
            target = {"file": base / "a_file", "below_a_file": base / "a_file" / "sub"}.get(
                kind, base / f"{tool}_{kind}")
            mounted = False
            if kind == "read_only":
                mounted = _mount_tmpfs(target, "ro,size=64k")
                if not mounted:
                    target.mkdir(exist_ok=True)
                    target.chmod(0o555)
            elif kind == "full":
                mounted = _mount_tmpfs(target, "size=64k")
                if not mounted:
                    skipped.append(f"{tool} {kind}: needs root to mount a tmpfs")
                    continue
                # Earlier results already in the folder must survive the full disk.
                shutil.copytree(results, target, dirs_exist_ok=True)
            before_outside = _tree_snapshot(base / "results")
            before_inside = _tree_snapshot(target) if target.is_dir() else {}
            try:
                process = subprocess.run(command(target), capture_output=True, text=True, env=environment(),
                                         cwd=base, timeout=600)
                after_inside = _tree_snapshot(target) if target.is_dir() else {}
            finally:
                if mounted:
                    _unmount(target)
                elif kind == "read_only":
                    target.chmod(0o755)
            code, stderr = process.returncode, process.stderr
            error_lines = [line for line in stderr.splitlines() if ": error: " in line]
            problem = None
            if "Traceback" in stderr:
                problem = f"traceback: {stderr.strip().splitlines()[-1]}"
            elif code not in (1, 2):
                problem = f"exit status {code}"
            elif tool == "deepobs-plot" and (len(stderr.strip().splitlines()) != 1 or not error_lines):
                problem = f"not one error line: {stderr!r}"
            elif tool == "deepobs-tune" and not (error_lines or "failed" in stderr + process.stdout):
                problem = f"no error line: {stderr!r}"
            elif _tree_snapshot(base / "results") != before_outside:
                problem = "the results tree outside the target changed"
            elif any(after_inside.get(path) != content for path, content in before_inside.items()
                     if "random_seed__" in path):
                problem = "a result already in the target was lost or changed"
            last = (error_lines or stderr.strip().splitlines() or [""])[-1]
            outcomes.append({"tool": tool, "kind": kind, "exit": code, "line": last[:200], "ok": problem is None})
            if problem:
                problems.append(f"{tool} --out {kind}: {problem}")
            log(f"unwritable: {tool} -> {kind}: exit {code}; {last[:160]}" + (f"; PROBLEM {problem}" if problem else ""))
    log(f"unwritable: {len(outcomes)} cases -> {sum(o['ok'] for o in outcomes)} one-line refusals, "
        f"{len(problems)} problems" + (f"; skipped: {'; '.join(skipped)}" if skipped else ""))
    return {"cases": outcomes, "skipped": skipped, "problems": problems}


# --------------------------------------------------------------------------- two drivers
DRIVERS_SWEEP = """\
problems: [quadratic_deep]
optimizers:
  sgd: {{lr: [0.001, 0.002, 0.004, 0.008, 0.016, 0.032]}}
num_epochs: {epochs}
batch_size: {batch_size}
fake_data: 256
output_dir: {out}
"""


def two_drivers(work, args, log):
    """Two deepobs-tune drivers started at once on one sweep (a second terminal, a
    requeued job): every run once, no run counted as failed, both drivers and
    summary.json name the best setting of the files on disk."""
    folder = work / "drivers"
    sweep = folder / "shared.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    sweep.write_text(DRIVERS_SWEEP.format(epochs=args.epochs, batch_size=args.batch_size, out=folder / "res"))
    command = [sys.executable, "-m", "deepobs.tuner.cli", str(sweep), "--workers", "1"]
    drivers = [subprocess.Popen(command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=work) for _ in range(2)]
    outputs = [driver.communicate(timeout=900) for driver in drivers]
    codes = [driver.returncode for driver in drivers]
    files = result_files(folder / "res")
    problems = check_files(folder / "res", {})
    if len(files) != 6 or len({path.parent for path in files}) != 6:
        problems.append(f"two drivers: {len(files)} result files in {len({p.parent for p in files})} settings, "
                        "expected 6 in 6")
    if codes != [0, 0]:
        problems.append(f"two drivers: exit statuses {codes}")
    best_lines = [next((line for line in out.splitlines() if " best " in line), "") for out, _ in outputs]
    failed = [line for _, err in outputs for line in err.splitlines() if "FAILED" in line]
    problems += [f"two drivers: a run counted as failed: {line}" for line in failed]
    summary_path = folder / "res" / ".deepobs_tune" / "shared" / "summary.json"
    summary_best = None
    if summary_path.is_file():
        (study,) = json.loads(summary_path.read_text())["studies"]
        summary_best = study.get("best_setting")
    else:
        problems.append("two drivers: no summary.json")
    scores = {}
    for path in files:
        data = json.loads(path.read_text())
        scores[data["optimizer_hyperparams"]["lr"]] = data["valid_losses"][-1]
    best = min(scores, key=scores.get) if scores else None
    if summary_best != {"lr": best}:
        problems.append(f"two drivers: summary.json names {summary_best}, the files' best is lr {best}")
    if len(set(best_lines)) != 1:
        problems.append(f"two drivers disagree: {best_lines}")
    log(f"two drivers: exit statuses {codes}, {len(files)} result files, runs counted failed {len(failed)}, "
        f"best lr {best} (summary {summary_best}); drivers said: {best_lines[0].strip()!r}")
    return {"exit_statuses": codes, "results": len(files), "failed_lines": len(failed), "best": best,
            "problems": problems}


SECTIONS = ("kills", "concurrency", "garbage", "unwritable", "drivers")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs (seeds) to kill and resume")
    parser.add_argument("--kills", type=int, default=6, help="kills per run")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--checkpoint_every", type=int, default=5, help="steps between mid-epoch checkpoints")
    parser.add_argument("--concurrent", type=int, default=3, help="identical runs started at once")
    parser.add_argument("--garbage", type=int, default=300, help="garbage command lines (in one process)")
    parser.add_argument("--sweeps", type=int, default=300, help="garbage sweep files (in one process)")
    parser.add_argument("--real_processes", type=int, default=6, help="garbage inputs run as real processes")
    parser.add_argument("--real_timeout", type=float, default=120)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times and garbage")
    parser.add_argument("--workdir", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--report", help="write the summary as JSON here")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated parts to run (default all: {','.join(SECTIONS)})")
    parser.add_argument("--live", action="store_true",
                        help="import deepobs from the working tree instead of a snapshot copy of it")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepobs-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.live:
        SOURCE["path"] = snapshot(work)

    def log(message):
        print(message, flush=True)

    imported = subprocess.run([sys.executable, "-c", "import deepobs; print(deepobs.__file__)"], env=environment(),
                              capture_output=True, text=True, cwd=work).stdout.strip()
    log(f"testing deepobs from {imported}")
    started = time.monotonic()
    sections = set(args.sections.split(","))
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; allowed: {', '.join(SECTIONS)}")
    runs = [kill_resume_run(work, 100 + index, args, rng, log) for index in range(args.runs)] \
        if "kills" in sections else []
    concurrent = concurrency(work, args, log) if "concurrency" in sections else {"results": None, "problems": []}
    inputs = garbage(work, args, rng, log) if "garbage" in sections else {}
    places = unwritable(work, args, log) if "unwritable" in sections else {"cases": [], "problems": []}
    drivers = two_drivers(work, args, log) if "drivers" in sections else {"problems": []}
    kills = [kill for run in runs for kill in run["kills"]]
    files_lost = sum(1 for run in runs for p in run["problems"] if "lost" in p or "corrupt" in p or "changed" in p)
    problems = [p for run in runs for p in run["problems"]] + concurrent["problems"] + \
        [p for part in inputs.values() for p in part["problems"]] + places["problems"] + drivers["problems"]
    report = {
        # A kill is survived when the process died as expected and its run, resumed, gave
        # the reference numbers.
        "kills": len(kills), "kills_survived": sum(k["ok"] for r in runs if r.get("identical") for k in r["kills"]),
        "runs_identical_to_reference": sum(bool(r.get("identical")) for r in runs), "runs": len(runs),
        "files_lost": files_lost, "concurrency": concurrent,
        "inputs_tried": sum(part["inputs"] for part in inputs.values()), "inputs": inputs,
        "unwritable": places, "drivers": drivers,
        "problems": problems, "seconds": round(time.monotonic() - started, 1), "workdir": str(work),
        "details": runs,
    }
    print(f"\nSUMMARY: kills {report['kills']}, survived {report['kills_survived']}; runs identical to the "
          f"uninterrupted reference {report['runs_identical_to_reference']}/{len(runs)}; files lost "
          f"{files_lost}; concurrent runs -> {concurrent['results']} result; inputs tried "
          f"{report['inputs_tried']}; unwritable outputs {sum(c['ok'] for c in places['cases'])}/"
          f"{len(places['cases'])} refused in one line; problems {len(problems)}; {report['seconds']} s")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
