"""Speed, time-to-target, performance profiles and their score, by hand; runtime ratio."""

import math

import numpy as np
import pandas as pd
import pytest

from analyzer_fixtures import build_tree
from deepobs.analyzer.aggregate import aggregate
from deepobs.analyzer.loading import load_results
from deepobs.analyzer.measures import (
    epochs_to_threshold, estimate_runtime, performance_profile, performance_ratios, profile_score,
    speed, time_to_target, time_to_target_table,
)

INF = math.inf


def test_epochs_to_threshold_counts_epoch_zero_and_misses():
    assert epochs_to_threshold(np.array([.1, .5, .9]), .5, "test_accuracies") == 1
    assert epochs_to_threshold(np.array([3.0, 2.0, 1.0]), 1.5, "test_losses") == 2
    assert epochs_to_threshold(np.array([3.0, np.nan, 2.0]), 1.0, "test_losses") == 3  # never: len
    assert epochs_to_threshold(np.array([np.nan, np.nan]), 0.0, "test_accuracies") == 2


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = build_tree(tmp_path_factory.mktemp("tree") / "results", corrupt=False)
    return aggregate(load_results(root))


def test_speed_and_time_to_target_of_a_setting(settings):
    adam = settings[settings["optimizer"] == "Adam"].iloc[0]
    # test acc per seed [.1 .5 .7], [.1 .5 .8], [.1 .5 .9]; threshold .75 -> 3, 2, 2 epochs
    assert speed(adam, .75) == pytest.approx(7 / 3)
    assert time_to_target(adam, .75, "test_accuracies") == 2.0  # median
    assert time_to_target(adam, .75, "test_accuracies", unit="seconds") == 1.0  # 2 epochs x 0.5 s
    assert time_to_target(adam, .95, "test_accuracies") == INF


def test_time_to_target_table_takes_the_fastest_setting(settings):
    table = time_to_target_table(settings[settings["problem"] == "toy_class"], {"toy_class": .85})
    # SGD: lr .01 reaches .9 at epoch 2 (lr .1 never: .6); Adam: median seed misses .85 -> inf
    assert table.loc["toy_class", "SGD"] == 2.0 and table.loc["toy_class", "Adam"] == INF


def test_performance_profile_and_score_by_hand():
    times = pd.DataFrame({"A": [1.0, 4.0, INF], "B": [2.0, 2.0, 5.0]}, index=["p1", "p2", "p3"])
    ratios = performance_ratios(times)
    assert ratios.to_dict() == {"A": {"p1": 1.0, "p2": 2.0, "p3": INF}, "B": {"p1": 2.0, "p2": 1.0, "p3": 1.0}}
    profile = performance_profile(ratios, taus=[1.0, 1.5, 2.0, 4.0])
    assert profile["A"].tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert profile["B"].tolist() == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    scores = profile_score(ratios)
    # A: (3 + 2 + 0) / 3 / 3; B: (2 + 3 + 3) / 3 / 3
    assert scores["A"] == pytest.approx(5 / 9) and scores["B"] == pytest.approx(8 / 9)
    # The exact integral equals a fine trapezoid of the profile.
    fine = performance_profile(ratios, taus=np.linspace(1, 4, 30001))
    assert np.trapezoid(fine["A"], fine.index) / 3 == pytest.approx(5 / 9, abs=1e-3)


def test_ratios_beyond_r_max_are_unsolved():
    ratios = performance_ratios(pd.DataFrame({"A": [1.0], "B": [4.5]}))
    assert ratios["B"].iloc[0] == INF and profile_score(ratios)["B"] == 0.0


@pytest.mark.slow
def test_estimate_runtime_runs_both_optimizers():
    result = estimate_runtime("adam", {"lr": 0.01}, "quadratic_deep", n_runs=1, num_epochs=1)
    assert len(result["sgd_times"]) == 1 and result["ratio_mean"] > 0
    assert result["summary"].startswith("quadratic_deep, 1 epochs, 1 runs: SGD")


def test_table_gives_small_losses_significant_digits():
    """A loss mean below 0.01 keeps 3 significant digits (not 0.000 ± 0.000); others as
    DeepOBS prints them, accuracies in percent."""
    from deepobs.analyzer.tables import _pm

    assert _pm(9.63e-4, 2.1e-5, 3) == "9.63e-04 ± 2.10e-05"
    assert _pm(87.123, 0.031, 2) == "87.12 ± 0.03"
    assert _pm(0.5, 0.01, 2, 100.0, " %") == "50.00 ± 1.00 %"
    assert _pm(-0.0214, 0.0001, 3) == "-0.021 ± 0.000"  # at or above 0.01: 3 decimals
