"""The shipped deepobs-pytorch baselines: PyTorch reproduces DeepOBS's TensorFlow numbers on
quadratic_deep (the cross-check), every shipped cell holds 10 seeds of its chosen setting and
says where it came from, the sweep files are the protocol, and deepobs-plot draws this set
next to DeepOBS 1.1's."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from deepobs.analyzer.baselines import baseline_folder, load_baselines
from deepobs.analyzer.report import build_report
from deepobs.tuner.sweep import load_sweep

REPO = Path(__file__).resolve().parents[1]
PYTORCH = baseline_folder("deepobs-pytorch")
PUBLISHED = baseline_folder("deepobs-1.1")


def _protocol():
    """scripts/pytorch_baselines.py, where the protocol is written down."""
    spec = importlib.util.spec_from_file_location("pytorch_baselines", REPO / "scripts" / "pytorch_baselines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tuned(entry: dict) -> dict:
    return next(s for s in entry["settings"] if entry["setting_prefix"] + s["setting"] == entry["tuned_setting"])


def _finals(entry: dict, metric: str = "test_losses") -> np.ndarray:
    return np.array(_tuned(entry)["finals"][metric], dtype=float)


def test_pytorch_ends_inside_the_published_bands_on_quadratic_deep():
    """SGD, Momentum and Adam at DeepOBS's published tuned learning rates, protocol 1.1,
    seeds 42-51: the PyTorch mean final test loss lies inside the published mean ± std
    band and every seed inside mean ± 3 std."""
    published = json.loads((PUBLISHED / "quadratic_deep.compact.json").read_text())
    ours = json.loads((PYTORCH / "crosscheck" / "quadratic_deep.compact.json").read_text())
    assert ours["protocol"] == "1.1" and ours["num_epochs"] == published["num_epochs"] == 100
    for name in ("SGD", "Momentum", "Adam"):
        theirs_entry, our_entry = published["optimizers"][name], ours["optimizers"][name]
        lr = {**theirs_entry["hyperparams"], **_tuned(theirs_entry)["hyperparams"]}["lr"]
        assert {**our_entry["hyperparams"], **_tuned(our_entry)["hyperparams"]}["lr"] == pytest.approx(lr, rel=1e-9)
        theirs, mine = _finals(theirs_entry), _finals(our_entry)
        assert len(mine) == 10 and not _tuned(our_entry)["diverged_seeds"]
        mean, std = theirs.mean(), theirs.std()
        assert abs(mine.mean() - mean) <= std, (name, mine.mean(), mean, std)
        assert np.all(np.abs(mine - mean) <= 3 * std), (name, mine, mean, std)


def test_every_shipped_cell_has_ten_seeds_of_its_chosen_setting_and_its_origin():
    protocol = _protocol()
    expected_labels = {f"{resolve}{'' if s == 'constant' else '+' + s}"
                       for resolve in _names(protocol) for s in protocol.SCHEDULES}
    files = sorted(PYTORCH.glob("*.compact.json"))
    assert files, "no shipped cells"
    readme = (PYTORCH / "README.md").read_text()
    for path in files:
        data = json.loads(path.read_text())
        assert data["protocol"] == "1.2" and data["problem"] in protocol.PROBLEMS
        for label, entry in data["optimizers"].items():
            assert label in expected_labels, label
            tuned = _tuned(entry)
            assert sorted(tuned["seeds"] + tuned["diverged_seeds"]) == list(range(42, 52)), (path.name, label)
            if 42 in tuned["diverged_seeds"]:  # chosen although diverged: only when every setting diverged
                assert all(42 in s["diverged_seeds"] for s in entry["settings"]), (path.name, label)
            diverged = len(tuned["diverged_seeds"]) or ""
            assert f"| {data['problem']} | {label} | 10 | {diverged} |" in readme, (data["problem"], label)
            origin = entry["provenance"]
            for key in ("deepobs", "torch", "optimizer_package", "git_commit", "machine"):
                assert origin[key] and all(value not in ("None", "None None") for value in origin[key]), (label, key)
    assert len(load_baselines("deepobs-pytorch")) >= len(files)


def _names(protocol) -> list:
    from deepobs.runners.optimizers import resolve_optimizer

    return [resolve_optimizer(name).name for name in protocol.OPTIMIZERS]


def test_the_sweep_files_are_the_protocol():
    """One sweep file per piece and no other; together the pieces hold every applicable
    (problem, optimizer, schedule) cell exactly once."""
    protocol = _protocol()
    pieces = protocol.pieces()
    assert {protocol.sweep_path(piece) for piece in pieces} == set(protocol.SWEEPS.glob("*.yaml"))
    covered = sorted((p.problem, name, p.schedule) for p in pieces for name in p.optimizers)
    assert covered == sorted((problem, name, schedule) for problem in protocol.PROBLEMS
                             for name in protocol.OPTIMIZERS if not protocol.not_applicable(problem, name)
                             for schedule in protocol.SCHEDULES)
    assert ("mnist_logreg", ("soap",)) in {(p.problem, p.optimizers) for p in pieces}  # SOAP alone there
    for piece in pieces:
        path = protocol.sweep_path(piece)
        assert yaml.safe_load(path.read_text()) == protocol.sweep_document(piece), path.name
        sweep = load_sweep(path)
        grid = [s for s in sweep.searches.values() if s.planned_settings() == 36]
        assert len(grid) == len(sweep.searches) - ("prodigy" in piece.optimizers)  # Prodigy: learning-rate free
        assert sweep.seeds == (42,) and sweep.rerun_seeds == tuple(range(43, 52))
        if piece.schedule == "warmup_cosine":
            assert sweep.run_options["schedule_params"]["warmup_epochs"] == pytest.approx(
                0.05 * protocol.num_epochs(piece.problem))


def test_deepobs_plot_draws_both_baseline_sets(tmp_path):
    from deepobs.runners.optimizers import resolve_optimizer
    from deepobs.runners.run_config import RunConfig
    from deepobs.runners.runner import StandardRunner

    StandardRunner.for_optimizer(resolve_optimizer("sgd")).run(RunConfig("quadratic_deep", "sgd", {"lr": 0.01}, num_epochs=2, device="cpu",
                                       quiet=True, output_dir=str(tmp_path / "results")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = build_report(tmp_path / "results", tmp_path / "report", formats=("png",),
                              baselines=["deepobs-1.1", "deepobs-pytorch"])
    import pandas as pd

    table = pd.read_csv(tmp_path / "report" / "results.csv")
    assert {"deepobs-1.1", "deepobs-pytorch"} <= set(table["source"])
    pytorch = table[table["source"] == "deepobs-pytorch"]
    assert {"SGD", "SGD+warmup_cosine", "SOAP", "AdamWScheduleFree"} <= set(pytorch["optimizer"])
    assert "deepobs-1.1, deepobs-pytorch" in report.html_path.read_text()


def test_rerunning_a_chosen_setting_gives_the_shipped_numbers(tmp_path):
    """SGD's chosen setting on quadratic_deep (constant lr), seed 43, one thread, as the sweep
    ran it: the same final losses, bit for bit, on the machine kind that made the file."""
    from deepobs.runners.optimizers import resolve_optimizer
    from deepobs.runners.provenance import machine
    from deepobs.runners.run_config import RunConfig
    from deepobs.runners.runner import StandardRunner

    entry = json.loads((PYTORCH / "quadratic_deep.compact.json").read_text())["optimizers"]["SGD"]
    if json.dumps(machine(), sort_keys=True) not in entry["provenance"]["machine"]:
        pytest.skip(f"the shipped runs were made on {entry['provenance']['machine']}, this is {machine()}")
    tuned = _tuned(entry)
    lr = {**entry["hyperparams"], **tuned["hyperparams"]}["lr"]
    output = StandardRunner.for_optimizer(resolve_optimizer("sgd")).run(
        RunConfig("quadratic_deep", "sgd", {"lr": lr}, random_seed=43, device="cpu", threads=1, quiet=True,
                  no_logs=True, output_dir=str(tmp_path)))
    seed = tuned["seeds"].index(43)
    for metric in ("test_losses", "valid_losses", "train_losses"):
        assert output[metric][-1] == tuned["finals"][metric][seed], metric
