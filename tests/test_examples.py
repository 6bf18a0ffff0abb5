"""Every script in examples/ runs, on tiny settings, and produces what its docstring says.

The scripts are imported and their ``main(argv)`` called in this process (no new
interpreter, no second torch import), in a temporary folder.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(folder: Path) -> list:
    return sorted(folder.glob("*/*/*/random_seed__*.json"))


def test_every_example_is_tested():
    tested = {"custom_optimizer", "closure_optimizer", "local_sweep", "reproduce_baseline"}
    assert {path.stem for path in EXAMPLES.glob("*.py")} == tested


def test_custom_optimizer_on_two_problems_with_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _load("custom_optimizer").main(["-N", "1", "--seeds", "42", "--formats", "png"])
    files = _results(tmp_path / "results_custom")
    assert [path.parts[-4:-2] for path in files] == [("quadratic_deep", "SignMomentum"),
                                                     ("two_d_beale", "SignMomentum")]
    result = json.loads(files[0].read_text())
    assert result["optimizer_hyperparams"] == {"lr": 0.01, "momentum": 0.9}
    assert result["protocol"] == "1.1" and len(result["test_losses"]) == 2
    assert math.isclose(result["test_losses"][0], 353.4468, abs_tol=1e-3)  # published epoch-0 value
    html = (tmp_path / "report_custom" / "report.html").read_text()
    assert "SignMomentum" in html and "quadratic_deep" in html
    assert list((tmp_path / "report_custom").rglob("*.png"))
    assert "open report_custom/report.html" in capsys.readouterr().out


def test_closure_optimizer_lbfgs_learns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = _load("closure_optimizer").main(["-N", "1"])
    assert output["optimizer_name"] == "LBFGS"
    assert output["optimizer_hyperparams"] == {"lr": 0.5, "max_iter": 5, "history_size": 10}
    assert math.isclose(output["test_losses"][0], 353.4468, abs_tol=1e-3)
    assert output["test_losses"][1] < 150  # one epoch of L-BFGS; SGD's tuned run needs far more
    assert len(_results(tmp_path / "results_lbfgs")) == 1


def test_reproduce_baseline_runs_and_plots(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    summary = _load("reproduce_baseline").main(["-N", "2", "--seeds", "42", "43"])
    assert summary["seeds"] == 2
    assert 87.0 < summary["mean"] < 353.4  # learning, not yet converged after 2 epochs
    assert (tmp_path / "reproduce_momentum_quadratic_deep.png").stat().st_size > 10_000
    assert "published, 100 epochs, 10 seeds: 87.05 ± 0.02" in capsys.readouterr().out


def test_reproduce_baseline_reads_the_published_curve():
    curve = _load("reproduce_baseline").published_curve()
    assert len(curve["mean"]) == 101
    assert math.isclose(curve["mean"][-1], 87.05, abs_tol=0.1)  # stored to 4 digits of 353.4


def test_local_sweep_tunes_and_reruns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = _load("local_sweep").main(["-N", "1", "--grid_points", "2", "--rerun_seeds", "1",
                                        "--workers", "2"])
    assert status == 0
    files = _results(tmp_path / "results_sweep")
    # 2 optimizers x (2 grid points with seed 42 + the best one with seed 43)
    assert len(files) == 6
    assert {path.parts[-3] for path in files} == {"SGD", "Momentum"}
    records = tmp_path / "results_sweep" / ".deepobs_tune" / "lr_sweep"
    summary = json.loads((records / "summary.json").read_text())
    assert len(summary["studies"]) == 2
