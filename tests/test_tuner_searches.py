"""Search spaces and grid / random / Bayesian search on tiny fake-data runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats

from deepobs.errors import ConfigurationError
from deepobs.tuner import (BayesianSearch, GridSearch, RandomSearch, RunSpec, int_uniform, log_grid,
                           log_uniform, objective, uniform)
from deepobs.tuner import spaces
from deepobs.tuner.searches import Study, tune_studies

TINY = dict(num_epochs=1, fake_data=256, batch_size=64)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny runs are fastest on one thread, and the test machine's cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------ spaces
def test_grid_is_the_cartesian_product_with_fixed_values():
    points = spaces.grid_points({"lr": [0.1, 0.01, 0.001], "momentum": [0.5, 0.9], "nesterov": True})
    assert len(points) == 6
    assert points[0] == {"lr": 0.1, "momentum": 0.5, "nesterov": True}
    assert {(p["lr"], p["momentum"]) for p in points} == {(a, b) for a in (0.1, 0.01, 0.001) for b in (0.5, 0.9)}


def test_log_grid_is_the_published_36_point_grid():
    grid = log_grid(1e-5, 1e2, 36)
    assert len(grid) == 36
    assert grid[0] == pytest.approx(1e-5) and grid[-1] == pytest.approx(1e2)
    ratios = np.diff(np.log10(grid))
    assert np.allclose(ratios, 7 / 35)


def test_random_draws_are_reproducible_and_in_range():
    space = {"lr": log_uniform(1e-4, 1.0), "momentum": uniform(0.5, 0.99),
             "steps": int_uniform(1, 3), "beta": scipy.stats.norm(0, 1), "choice": ["a", "b"]}
    first = spaces.random_points(space, 50, seed=7)
    assert first == spaces.random_points(space, 50, seed=7)
    assert first != spaces.random_points(space, 50, seed=8)
    lrs = [p["lr"] for p in first]
    assert all(1e-4 <= lr < 1.0 for lr in lrs)
    # log-uniform: about as many draws below 1e-2 as above
    assert 15 <= sum(lr < 1e-2 for lr in lrs) <= 35
    assert {p["steps"] for p in first} == {1, 2, 3}
    assert {p["choice"] for p in first} == {"a", "b"}
    assert all(isinstance(p["beta"], float) for p in first)


@pytest.mark.parametrize("make", [lambda: log_uniform(0.0, 1.0), lambda: uniform(1.0, 1.0),
                                  lambda: log_grid(1e-3, 1.0, 1), lambda: int_uniform(1.5, 3)])
def test_bad_spaces_are_rejected(make):
    with pytest.raises(ConfigurationError):
        make()


def test_grid_search_rejects_distributions_and_oversized_grids():
    with pytest.raises(ConfigurationError, match="grid search needs a list"):
        GridSearch("sgd", {"lr": log_uniform(1e-3, 1.0)})
    with pytest.raises(ConfigurationError, match="more than the budget 2"):
        GridSearch("sgd", {"lr": [0.1, 0.01, 0.001]}, budget=2)
    with pytest.raises(ConfigurationError, match="unknown hyperparameter"):
        GridSearch("sgd", {"lr": [0.1], "beta": [1.0]})
    with pytest.raises(ConfigurationError, match="bayesian search cannot use"):
        BayesianSearch("sgd", {"lr": scipy.stats.norm(0, 1)}, budget=2)


# --------------------------------------------------------------------- objective
def _output(valid, test, key="losses", diverged=False):
    return {f"valid_{key}": valid, f"test_{key}": test, "diverged": diverged}


def test_objective_uses_validation_never_test():
    # By test loss the first run is better; by validation loss the second one is.
    first, second = _output([3.0, 2.0], [3.0, 0.1]), _output([3.0, 1.0], [3.0, 5.0])
    assert objective(second) > objective(first)
    assert objective(first) == -2.0
    assert objective(_output([3.0, 0.5, 2.0], [0, 0, 0]), mode="best") == -0.5
    assert objective(_output([0.2, 0.9, 0.8], [1, 1, 1], key="accuracies"), mode="best") == 0.9
    assert objective(_output([0.2, 0.9, 0.8], [1, 1, 1], key="accuracies")) == 0.8
    assert objective(_output([3.0, 3.0], [3.0, 3.0], diverged=True)) == -math.inf
    assert objective(_output([3.0, float("nan")], [0, 0])) == -math.inf
    with pytest.raises(ConfigurationError, match="no validation split"):
        objective({"test_losses": [1.0], "train_losses": [1.0]})


# ---------------------------------------------------------------------- searches
def _valid_loss(path):
    with open(path) as stream:
        return json.load(stream)["valid_losses"][-1]


def test_grid_search_on_quadratic_runs_every_point_and_selects_on_validation(tmp_path):
    search = GridSearch("sgd", {"lr": [0.3, 0.03, 0.003]})
    result = search.tune("quadratic_deep", output_dir=str(tmp_path), **TINY)
    files = sorted(tmp_path.rglob("random_seed__42__*.json"))
    assert len(files) == 3 and len(result.trials) == 3
    losses = {trial.setting["lr"]: _valid_loss(trial.paths[42]) for trial in result.trials}
    assert result.metric == "valid_losses"
    assert result.best.setting["lr"] == min(losses, key=losses.get)
    assert result.best.score == -min(losses.values())
    assert result.reruns is None


def test_random_search_on_two_d_draws_budget_reproducible_settings(tmp_path):
    space = {"lr": log_uniform(1e-3, 1e-1), "momentum": 0.5}
    first = RandomSearch("momentum", space, budget=3, seed=3)
    assert first.settings == RandomSearch("momentum", space, budget=3, seed=3).settings
    assert first.settings != RandomSearch("momentum", space, budget=3, seed=4).settings
    assert all(setting["momentum"] == 0.5 for setting in first.settings)
    result = first.tune("two_d_branin", output_dir=str(tmp_path), **TINY)
    assert len(list(tmp_path.rglob("random_seed__42__*.json"))) == 3
    assert [trial.setting for trial in result.trials] == first.settings
    best = max(result.trials, key=lambda trial: trial.score)
    assert result.best is best and best.score == -_valid_loss(best.paths[42])


def test_bayesian_search_is_reproducible_and_resumes_from_files(tmp_path):
    def search():
        return BayesianSearch("sgd", {"lr": log_uniform(1e-3, 0.5)}, budget=4, seed=1, startup_trials=2)

    first = search().tune("quadratic_deep", output_dir=str(tmp_path / "a"), **TINY)
    second = search().tune("quadratic_deep", output_dir=str(tmp_path / "b"), **TINY)
    settings = [trial.setting for trial in first.trials]
    assert len(settings) == 4 and len({s["lr"] for s in settings}) == 4
    assert settings == [trial.setting for trial in second.trials]
    assert len(list((tmp_path / "a").rglob("random_seed__*.json"))) == 4
    # Again into the same folder: the same proposals, all found on disk, nothing run.
    from deepobs.tuner.progress import SweepProgress

    progress = SweepProgress(stream=None)
    again = search().tune("quadratic_deep", output_dir=str(tmp_path / "a"), progress=progress, **TINY)
    assert [trial.setting for trial in again.trials] == settings
    assert progress.existed == 4 and progress.executed == 0
    assert again.best.setting == first.best.setting


def test_deepobs_protocol_reruns_best_setting_with_seeds_43_to_51(tmp_path):
    search = GridSearch("sgd", {"lr": [0.05, 0.005]})
    result = search.tune("two_d_branin", output_dir=str(tmp_path), rerun_best_setting=True, **TINY)
    best_folder = {RunSpec("two_d_branin", "sgd", result.best.setting, output_dir=str(tmp_path), **TINY)
                   .result_folder()}
    assert sorted(result.reruns.paths) == list(range(42, 52))
    seeds = sorted(int(p.name.split("__")[1]) for folder in best_folder for p in folder.glob("*.json"))
    assert seeds == list(range(42, 52))
    other = [f for f in tmp_path.rglob("random_seed__*.json") if f.parent not in best_folder]
    assert len(other) == 1  # the other setting ran with seed 42 only
    assert result.to_dict()["reruns"]["mean"] == pytest.approx(np.mean(list(result.reruns.scores.values())))


def test_failed_runs_are_recorded_and_do_not_stop_the_study(tmp_path):
    from deepobs.tuner.records import SweepRecords

    records = SweepRecords(tmp_path / "state")
    result = GridSearch("sgd", {"lr": [-1.0, 0.01]}).tune(
        "quadratic_deep", output_dir=str(tmp_path), records=records, **TINY)
    failed = [trial for trial in result.trials if trial.errors]
    assert len(failed) == 1 and failed[0].setting["lr"] == -1.0 and "lr" in failed[0].errors[42]
    assert result.best.setting["lr"] == 0.01
    (record,) = records.failures()
    assert record["run"]["hyperparams"] == {"lr": -1.0} and "ConfigurationError" in record["error"]


def test_run_spec_folder_and_command_match_what_deepobs_run_writes(tmp_path):
    from deepobs.runners.cli import main

    spec = RunSpec("quadratic_deep", "momentum", {"lr": 0.01, "nesterov": True}, 43,
                   output_dir=str(tmp_path), **TINY)
    import shlex

    assert main(shlex.split(spec.command())[1:]) == 0
    (written,) = tmp_path.rglob("random_seed__43__*.json")
    assert written.parent == spec.result_folder() and spec.find_result() == written
    assert "--nesterov" in spec.command()


def test_studies_share_one_executor_batch(tmp_path):
    studies = [Study(problem, GridSearch("sgd", {"lr": [0.01, 0.02]}), run_options={**TINY, "output_dir": str(tmp_path)})
               for problem in ("two_d_beale", "two_d_rosenbrock")]
    calls = []

    class Recording:
        workers = 4

        def run(self, runs):
            from deepobs.tuner.runs import execute_run

            calls.append(len(runs))
            for spec in runs:
                yield execute_run(spec)

    results = tune_studies(studies, Recording())
    assert calls == [4] and [len(r.trials) for r in results] == [2, 2]
