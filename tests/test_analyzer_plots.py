"""Every plot function draws the expected axes and lines and writes non-empty PNG and PDF."""

import numpy as np
import pandas as pd
import pytest

from analyzer_fixtures import build_tree
from deepobs.analyzer import plots
from deepobs.analyzer.aggregate import aggregate, select_best
from deepobs.analyzer.baselines import load_baselines
from deepobs.analyzer.loading import load_results
from deepobs.analyzer.measures import performance_profile, performance_ratios, profile_score
from deepobs.errors import ConfigurationError


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = build_tree(tmp_path_factory.mktemp("tree") / "results", corrupt=False)
    return aggregate(load_results(root))


@pytest.fixture(scope="module")
def selected(settings):
    return select_best(settings, "final", "valid_accuracies")


def saved(fig, tmp_path, name="figure"):
    paths = plots.save_figure(fig, tmp_path / name)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    return paths


def labels(ax):
    return [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]


def test_performance_plot_has_four_labelled_panels(selected, tmp_path):
    fig = plots.plot_optimizer_performance(selected, "toy_class", thresholds={"toy_class": .85})
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["Test Loss", "Train Loss", "Test Accuracy", "Train Accuracy"]
    assert axes[-1].get_xlabel() == "epoch" and axes[0].get_ylabel() == "Test Loss"
    assert labels(axes[0]) == ["Adam", "SGD"]
    assert "convergence threshold" in labels(axes[2])
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert legend == ["Adam", "SGD"]
    saved(fig, tmp_path)


def test_diverged_runs_are_drawn_apart(settings, tmp_path):
    sgd = settings[(settings["optimizer"] == "SGD") & (settings["lr"] == 1.0)].assign(
        metric_used="valid_accuracies", selection_note="")
    fig = plots.plot_optimizer_performance(sgd, "toy_class")
    ax = fig.get_axes()[0]
    markers = [line.get_marker() for line in ax.get_lines()]
    assert "x" in markers  # the divergence point
    assert "diverged run" in [t.get_text() for t in ax.get_legend().get_texts()]
    saved(fig, tmp_path)


def test_baselines_are_dashed_with_the_same_colour(selected, tmp_path):
    baselines = select_best(load_baselines("deepobs-1.1"), "most")
    both = pd.concat([selected[selected["problem"] == "quadratic_deep"],
                      baselines[baselines["problem"] == "quadratic_deep"]], ignore_index=True)
    fig = plots.plot_optimizer_performance(both, "quadratic_deep")
    lines = {line.get_label(): line for line in fig.get_axes()[0].get_lines()}
    assert lines["SGD (deepobs-1.1)"].get_linestyle() == "--"
    assert lines["SGD (deepobs-1.1)"].get_color() == plots.optimizer_color("SGD")
    assert {"Adam (deepobs-1.1)", "Momentum (deepobs-1.1)"} <= set(lines)
    assert [ax.get_title() for ax in fig.get_axes()] == ["Test Loss", "Train Loss"]  # no accuracy


def test_testset_grid_is_four_by_problems(selected, tmp_path):
    fig = plots.plot_testset_performances(selected)
    assert len(fig.get_axes()) == 4 * 2
    assert fig.get_axes()[0].get_title() == "quadratic_deep\nTest Loss"
    saved(fig, tmp_path)


def test_sensitivity_1d_marks_diverged_settings(settings, tmp_path):
    fig = plots.plot_hyperparameter_sensitivity(settings, "toy_class", "lr", "final", "valid_accuracies")
    ax = fig.get_axes()[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lr"
    assert ax.get_ylabel() == "final valid accuracy"
    assert {"Adam", "SGD", "all runs diverged"} <= set(labels(ax))
    sgd = next(line for line in ax.get_lines() if line.get_label() == "SGD")
    assert list(sgd.get_ydata()[:2]) == pytest.approx([.75, .8])  # lr .01, .1 (lr 1 diverged: NaN)
    saved(fig, tmp_path)


def test_sensitivity_2d_draws_a_contour(tmp_path):
    rows = []
    for lr in (0.01, 0.1, 1.0):
        for momentum in (0.0, 0.5, 0.9):
            rows.append({"source": "ours", "problem": "p", "optimizer": "Momentum", "lr": lr,
                         "hyperparams": {"lr": lr, "momentum": momentum}, "n_runs": 1, "n_used": 1,
                         "finals": {"valid_accuracies": np.array([lr * momentum])},
                         "best": {"valid_accuracies": lr * momentum}})
    fig = plots.plot_hyperparameter_sensitivity_2d(pd.DataFrame(rows), "p", "Momentum", ["lr", "momentum"])
    ax = fig.get_axes()[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("lr", "momentum")
    assert len(fig.get_axes()) == 2  # plot + colour bar
    assert len(ax.collections) >= 2  # contour + markers
    saved(fig, tmp_path)
    with pytest.raises(ConfigurationError, match="exactly two"):
        plots.plot_hyperparameter_sensitivity_2d(pd.DataFrame(rows), "p", "Momentum", ["lr"])


def test_final_metric_vs_tuning_rank(settings, tmp_path):
    fig = plots.plot_final_metric_vs_tuning_rank(settings, "toy_class", "SGD")
    ax = fig.get_axes()[0]
    mean = next(line for line in ax.get_lines() if line.get_label().endswith("mean over seeds"))
    assert list(mean.get_xdata()) == [1, 2, 3]
    assert list(mean.get_ydata()[:2]) == pytest.approx([.8, .75])
    assert ax.get_xlabel() == "tuning rank (final valid accuracy)"
    saved(fig, tmp_path)


def test_lr_sensitivity_v11_style_on_the_shipped_baselines(tmp_path):
    settings = load_baselines("deepobs-1.1")
    fig = plots.plot_lr_sensitivity(settings, ["quadratic_deep", "fmnist_2c2d"])
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["quadratic_deep", "fmnist_2c2d"]
    assert axes[0].get_ylabel() == "relative test loss" and axes[1].get_ylabel() == "relative test accuracy"
    assert all(len(ax.get_lines()) == 3 for ax in axes)
    best = max(np.nanmax(line.get_ydata()) for line in axes[1].get_lines())
    assert best == pytest.approx(1.0)
    saved(fig, tmp_path)


def test_performance_profiles_plot(tmp_path):
    ratios = performance_ratios(pd.DataFrame({"SGD": [1.0, 3.0], "Adam": [2.0, 1.0]}, index=["a", "b"]))
    fig = plots.plot_performance_profiles(performance_profile(ratios), profile_score(ratios))
    ax = fig.get_axes()[0]
    assert [line.get_label() for line in ax.get_lines()] == ["SGD (score 0.667)", "Adam (score 0.833)"]
    assert ax.get_ylim()[1] > 1.0
    saved(fig, tmp_path)


def test_colours_are_stable_per_optimizer():
    assert plots.optimizer_color("SGD") == "#1f77b4"
    assert plots.optimizer_color("MyOpt") == plots.optimizer_color("MyOpt")
