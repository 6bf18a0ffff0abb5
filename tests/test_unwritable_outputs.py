"""deepobs-plot and deepobs-tune facing a read-only, full or impossible output folder: one
line and a non-zero exit status, never a traceback. Files written through a temporary
file get the umask's mode, like any other file."""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import shutil
import stat
import subprocess
import warnings
from pathlib import Path

import pytest

from analyzer_fixtures import run_dict, write_run

SWEEP = "problems: [quadratic_deep]\noptimizers: {sgd: {lr: [0.01]}}\nnum_epochs: 1\nfake_data: 64\nbatch_size: 16\n"


@contextlib.contextmanager
def read_only_folder(path: Path):
    """A folder nothing can be written into: a read-only tmpfs for root (whom file modes do
    not stop), mode 0555 for anyone else."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        if shutil.which("mount") is None or subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True).returncode:
            pytest.skip("root without mount: cannot make a read-only folder")
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], capture_output=True)
    else:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    write_run(root, run_dict("toy", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6]))
    return root


def _one_error_line(text: str, program: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), text
    assert "Traceback" not in text
    return lines[0]


# ------------------------------------------------------------------ deepobs-plot
@pytest.mark.parametrize("kind", ["file", "below_a_file", "read_only"])
def test_plot_refuses_an_unwritable_out_in_one_line(tmp_path, results, capsys, kind):
    from deepobs.analyzer.cli import main

    (tmp_path / "file").write_text("x")
    target = {"file": tmp_path / "file", "below_a_file": tmp_path / "file" / "report",
              "read_only": tmp_path / "ro"}[kind]
    with read_only_folder(target) if kind == "read_only" else contextlib.nullcontext():
        code = main([str(results), "--out", str(target), "--formats", "png"])
    line = _one_error_line(capsys.readouterr().err, "deepobs-plot")
    assert code == 2 and "not writable" in line and str(target) in line


def test_plot_disk_full_while_writing_is_one_line(tmp_path, results, capsys, monkeypatch):
    from deepobs.analyzer import plots
    from deepobs.analyzer.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "report" / "figures" / "x.png"))

    monkeypatch.setattr(plots, "save_figure", full)
    assert main([str(results), "--out", str(tmp_path / "report"), "--formats", "png"]) == 1
    line = _one_error_line(capsys.readouterr().err, "deepobs-plot")
    assert "No space left on device" in line and "incomplete" in line


def test_plot_refuses_a_newline_in_out_and_an_unknown_format(tmp_path, results, capsys):
    from deepobs.analyzer.cli import main

    assert main([str(results), "--out", str(tmp_path / "a\nb")]) == 2
    assert "control" in _one_error_line(capsys.readouterr().err, "deepobs-plot")
    assert main([str(results), "--out", str(tmp_path / "r"), "--formats", "../../x"]) == 2
    assert "figure format" in _one_error_line(capsys.readouterr().err, "deepobs-plot")
    assert not (tmp_path / "a\nb").exists()


# ------------------------------------------------------------------ deepobs-tune
@pytest.mark.parametrize("kind", ["file", "below_a_file", "read_only"])
def test_tune_refuses_an_unwritable_output_dir_in_one_line(tmp_path, capsys, kind):
    from deepobs.tuner.cli import main

    (tmp_path / "sweep.yaml").write_text(SWEEP)
    (tmp_path / "file").write_text("x")
    target = {"file": tmp_path / "file", "below_a_file": tmp_path / "file" / "results",
              "read_only": tmp_path / "ro"}[kind]
    with read_only_folder(target) if kind == "read_only" else contextlib.nullcontext():
        code = main([str(tmp_path / "sweep.yaml"), "--output_dir", str(target), "-q"])
    line = _one_error_line(capsys.readouterr().err, "deepobs-tune")
    assert code == 2 and "not writable" in line


def test_tune_disk_full_during_the_sweep_is_one_line(tmp_path, capsys, monkeypatch):
    from deepobs.tuner import cli, searches

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "results" / "summary.json"))

    monkeypatch.setattr(searches, "tune_studies", full)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    assert cli.main([str(tmp_path / "sweep.yaml"), "--output_dir", str(tmp_path / "results"), "-q"]) == 1
    line = _one_error_line(capsys.readouterr().err, "deepobs-tune")
    assert "No space left on device" in line and "run the same command again" in line


def test_tune_refuses_a_newline_in_output_dir(tmp_path, capsys):
    from deepobs.tuner.cli import main

    (tmp_path / "sweep.yaml").write_text(SWEEP)
    assert main([str(tmp_path / "sweep.yaml"), "--output_dir", str(tmp_path / "a\nb"), "-q"]) == 2
    assert "control" in _one_error_line(capsys.readouterr().err, "deepobs-tune")


# ------------------------------------------------------------------ file modes
@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_result_files_follow_the_umask(tmp_path, umask):
    from deepobs.runners.results import write_json_atomic

    path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_checkpoints_follow_the_umask(tmp_path, umask):
    from deepobs.runners.checkpoint import save_atomic

    path = save_atomic(tmp_path / "c.pt", {"a": 1}, durable=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_foreign_pickle_is_refused_without_a_torch_warning(tmp_path):
    from deepobs.runners.checkpoint import CheckpointError, load

    path = tmp_path / "random_seed__42.checkpoint.pt"
    path.write_bytes(pickle.dumps({"format": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="unreadable"):
            load(path)
    assert [str(w.message) for w in caught] == []
