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


def legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_performance_plot_has_four_labelled_panels(selected, tmp_path):
    fig = plots.plot_optimizer_performance(selected, "toy_class", thresholds={"toy_class": .85})
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["Test Loss", "Train Loss", "Test Accuracy", "Train Accuracy"]
    assert axes[-1].get_xlabel() == "epoch" and axes[0].get_ylabel() == "Test Loss"
    assert labels(axes[0]) == ["Adam", "SGD"]
    assert "convergence threshold" in labels(axes[2])
    assert legend_texts(fig) == ["Adam", "SGD", "convergence threshold"]
    assert plots.legends_fit(fig)
    # Bands stay where the metric can go: accuracies in [0, 1], losses >= 0.
    for ax, low, high in ((axes[2], 0.0, 1.0), (axes[1], 0.0, np.inf)):
        for band in ax.collections:
            ys = np.concatenate([path.vertices[:, 1] for path in band.get_paths()])
            assert ys.min() >= low and ys.max() <= high
    saved(fig, tmp_path)


def test_diverged_runs_are_drawn_apart(settings, tmp_path):
    sgd = settings[(settings["optimizer"] == "SGD") & (settings["lr"] == 1.0)].assign(
        metric_used="valid_accuracies", selection_note="")
    fig = plots.plot_optimizer_performance(sgd, "toy_class")
    ax = fig.get_axes()[0]
    edge = next(line for line in ax.get_lines() if line.get_label() == "SGD: diverged run")
    assert edge.get_marker() == "^" and list(edge.get_xdata()) == [1]  # top edge, at its epoch
    assert "SGD: diverged run" in legend_texts(fig)
    saved(fig, tmp_path)


def test_a_finite_blow_up_does_not_stretch_the_axis(tmp_path):
    from analyzer_fixtures import run_dict, write_run

    for seed in (42, 43):
        write_run(tmp_path, run_dict("toy_class", "SGD", 0.1, seed, [.1, .5, .7], [.1, .5, .6]))
    blown = run_dict("toy_class", "SGD", 10.0, 42, [.1, .1, .1], [.1, .1, .1])
    for key in ("train_losses", "valid_losses", "test_losses"):
        blown[key] = [2.3, 4.2e19, 4.2e19]
    write_run(tmp_path, blown)
    settings = aggregate(load_results(tmp_path))
    fig = plots.plot_hyperparameter_sensitivity(settings, "toy_class", "lr", "final", "valid_losses")
    ax = fig.get_axes()[0]
    assert ax.get_ylim()[1] < 10
    assert "SGD: all runs diverged" in legend_texts(fig)
    rank = plots.plot_final_metric_vs_tuning_rank(settings, "toy_class", "SGD", "valid_losses")
    assert rank.get_axes()[0].get_ylim()[1] < 10 and "SGD: tuning run diverged" in legend_texts(rank)


def test_a_log_axis_shades_only_the_upper_half_of_a_band_below_zero(tmp_path):
    """A loss spanning more than LOG_SPAN turns the loss axis logarithmic; where a seed's loss is far
    above the other's, mean - std < 0: the band is then shaded from the curve up, not as a
    block down to the axis floor."""
    from analyzer_fixtures import run_dict, write_run

    for seed, losses in ((42, [50.0, 2.0, 1e-3, 1e-3]), (43, [50.0, 2.0, 1e-3, 1e-3]), (44, [50.0, 2.0, 3.0, 1e-3])):
        data = run_dict("toy_class", "SGD", 0.1, seed, [.1, .5, .6, .7], [.1, .5, .6, .7], num_epochs=3)
        for key in ("train_losses", "valid_losses", "test_losses"):
            data[key] = list(losses)
        write_run(tmp_path, data, setting="num_epochs__3__batch_size__8__lr__0.1")
    fig = plots.plot_optimizer_performance(select_best(aggregate(load_results(tmp_path)), "final",
                                                       "valid_accuracies"), "toy_class")
    ax = fig.get_axes()[0]
    assert ax.get_yscale() == "log"
    mean = (3.0 + 2e-3) / 3  # epoch 2: the std across seeds (1.41) exceeds the mean (1.0)
    ys = np.concatenate([path.vertices[:, 1] for band in ax.collections for path in band.get_paths()])
    assert ys.min() > 0 and ys.min() >= 1e-3 * 0.999 and np.isclose(ys, mean).any()  # from the curve up
    saved(fig, tmp_path)


def test_a_loss_below_zero_with_a_large_span_gets_a_symlog_axis(tmp_path):
    """The 2-D problems' losses include a noise term and end slightly below 0 after
    starting near 10^5: a linear axis would show them all flat at 0, a log axis cannot show
    them; symlog does, and their bands are not clipped at 0."""
    from analyzer_fixtures import run_dict, write_run

    for seed, third, end in ((42, 1e-3, -0.02), (43, 1e-3, -0.01), (44, 3.0, -0.015)):
        data = run_dict("toy_class", "SGD", 0.1, seed, [.1, .5, .6, .7], [.1, .5, .6, .7], num_epochs=3)
        for key in ("train_losses", "valid_losses", "test_losses"):
            data[key] = [7e4, 500.0, third, end]
        write_run(tmp_path, data, setting="num_epochs__3__batch_size__8__lr__0.1")
    fig = plots.plot_optimizer_performance(select_best(aggregate(load_results(tmp_path)), "final",
                                                       "valid_accuracies"), "toy_class")
    ax = fig.get_axes()[0]
    assert ax.get_yscale() == "symlog" and ax.get_ylim()[0] < -0.02
    ys = np.concatenate([path.vertices[:, 1] for band in ax.collections for path in band.get_paths()])
    assert ys.min() == pytest.approx(-0.015 - np.std([-0.02, -0.01, -0.015]))  # mean - std at the last epoch
    # Epoch 2: mean 1.0 above 0, std 1.41 > mean: shaded from the curve up, not to the floor.
    at_two = np.concatenate([path.vertices[path.vertices[:, 0] == 2, 1]
                             for band in ax.collections for path in band.get_paths()])
    assert at_two.min() == pytest.approx((3.0 + 2e-3) / 3)
    plots.plain_log_ticks(fig)
    fig.canvas.draw()
    assert not [t.get_text() for t in ax.get_yticklabels() if "$" in t.get_text()]  # plain text, as the report draws
    saved(fig, tmp_path)


def test_baselines_are_dashed_with_the_same_colour(tmp_path):
    from analyzer_fixtures import run_dict, write_run

    data = run_dict("quadratic_deep", "SGD", 0.01, 42, [0, 0, 0], [0, 0, 0], protocol="1.1")
    for key in ("train_accuracies", "test_accuracies"):
        data.pop(key)
    data["batch_size"] = 128
    write_run(tmp_path, data)
    ours = select_best(aggregate(load_results(tmp_path, source="ours")), "final", "valid_accuracies")
    baselines = select_best(load_baselines("deepobs-1.1"), "most")
    both = pd.concat([ours, baselines[baselines["problem"] == "quadratic_deep"]], ignore_index=True)
    fig = plots.plot_optimizer_performance(both, "quadratic_deep")
    lines = {line.get_label(): line for line in fig.get_axes()[0].get_lines()}
    assert lines["SGD (deepobs-1.1)"].get_linestyle() == "--"
    assert lines["SGD (deepobs-1.1)"].get_color() == plots.optimizer_color("SGD")
    assert {"Adam (deepobs-1.1)", "Momentum (deepobs-1.1)"} <= set(lines)
    # The user's run: solid, thicker, marked, in front of the lighter baselines.
    ours, baseline = lines["SGD"], lines["SGD (deepobs-1.1)"]
    assert ours.get_linestyle() == "-" and ours.get_marker() not in ("None", "", None)
    assert ours.get_linewidth() > baseline.get_linewidth() and ours.get_zorder() > baseline.get_zorder()
    assert (baseline.get_alpha() or 1) < 1
    assert [ax.get_title() for ax in fig.get_axes()] == ["Test Loss", "Train Loss"]  # no accuracy
    # 2 epochs of protocol 1.1 runs against 100-epoch baselines: said in red, x axis cut.
    title = fig.legends[0].get_title().get_text()
    assert "your runs and the baselines differ" in title and "epochs 2 vs 100" in title
    assert fig.get_axes()[-1].get_xlim()[1] < 3 and plots.legends_fit(fig)


def test_protocol_mismatch_names_what_differs():
    rows = pd.DataFrame({"source": ["ours", "ours", "base"], "protocol": ["1.2", "1.1", "1.1"],
                         "num_epochs": [1, 1, 100], "batch_size": [128, 128, 128]})
    assert plots.protocol_mismatch(rows) == ("your runs and the baselines differ: protocol 1.1/1.2 vs 1.1; "
                                             "epochs 1 vs 100")
    assert plots.protocol_mismatch(rows[rows["source"] == "ours"]) == ""


def test_user_curves_that_share_a_colour_get_distinct_shades_and_markers():
    look = plots._Look()
    first = look.style("SGD [protocol 1.1]", "SGD", True)
    second = look.style("SGD [protocol 1.2]", "SGD", True)
    baseline = look.style("SGD (deepobs-1.1)", "SGD", False)
    assert first["color"] != second["color"] and first["marker"] != second["marker"]
    assert second["ms"] < first["ms"] and second["zorder"] > first["zorder"]  # both stay visible
    assert baseline["ls"] == "--" and baseline["color"] == plots.optimizer_color("SGD")


def test_testset_grid_is_four_by_problems(selected, tmp_path):
    fig = plots.plot_testset_performances(selected)
    assert len(fig.get_axes()) == 4 * 2
    assert fig.get_axes()[0].get_title() == "quadratic_deep\nTest Loss"
    saved(fig, tmp_path)


def test_sensitivity_1d_marks_diverged_settings(settings, tmp_path):
    fig = plots.plot_hyperparameter_sensitivity(settings, "toy_class", "lr", "final", "valid_accuracies")
    ax = fig.get_axes()[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lr"
    assert ax.get_ylabel() == "final valid accuracy" and fig.deepobs_metric == "valid_accuracies"
    assert {"Adam", "SGD", "SGD: all runs diverged"} <= set(labels(ax))
    sgd = next(line for line in ax.get_lines() if line.get_label() == "SGD")
    assert list(sgd.get_ydata()) == pytest.approx([.75, .8])  # lr .01, .1 (lr 1 diverged: on the edge)
    edge = next(line for line in ax.get_lines() if line.get_label() == "SGD: all runs diverged")
    assert edge.get_marker() == "v" and list(edge.get_xdata()) == [1.0]  # accuracies: the lower edge
    assert plots.legends_fit(fig)
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
    ranked = next(line for line in ax.get_lines() if line.get_label() == "SGD: ranked on seed 42")
    assert list(ranked.get_xdata()) == [1, 2] and list(ranked.get_ydata()) == pytest.approx([.9, .75])
    mean = next(line for line in ax.get_lines() if line.get_label() == "SGD: mean over all seeds")
    assert list(mean.get_ydata()) == pytest.approx([.8, .75])
    edge = next(line for line in ax.get_lines() if line.get_label() == "SGD: tuning run diverged")
    assert list(edge.get_xdata()) == [3]
    assert ax.get_xlabel() == "tuning rank (final valid accuracy)" and plots.legends_fit(fig)
    saved(fig, tmp_path)


def test_lr_sensitivity_v11_style_on_the_shipped_baselines(tmp_path):
    settings = load_baselines("deepobs-1.1")
    fig = plots.plot_lr_sensitivity(settings, ["quadratic_deep", "fmnist_2c2d"])
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["quadratic_deep", "fmnist_2c2d"]
    assert axes[0].get_ylabel() == "relative test loss" and axes[1].get_ylabel() == "relative test accuracy"
    assert all(len([l for l in ax.get_lines() if not l.get_label().endswith("diverged")]) == 3 for ax in axes)
    assert plots.legends_fit(fig)
    best = max(np.nanmax(line.get_ydata()) for line in axes[1].get_lines())
    assert best == pytest.approx(1.0)
    saved(fig, tmp_path)


def test_performance_profiles_plot(tmp_path):
    ratios = performance_ratios(pd.DataFrame({"SGD": [1.0, 3.0], "Adam": [2.0, 1.0]}, index=["a", "b"]))
    fig = plots.plot_performance_profiles(performance_profile(ratios), profile_score(ratios))
    ax = fig.get_axes()[0]
    assert [line.get_label() for line in ax.get_lines()] == ["SGD (score 0.667)", "Adam (score 0.833)"]
    assert ax.get_ylim()[1] > 1.0 and plots.legends_fit(fig)
    saved(fig, tmp_path)


def test_legends_fit_sees_a_legend_cut_off(tmp_path):
    fig = plots.new_figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="a label long enough to leave the figure")
    ax.legend(loc="upper left", bbox_to_anchor=(0.6, 1.0)).set_in_layout(False)
    assert not plots.legends_fit(fig)
    fig.savefig(tmp_path / "cut.png")
    assert not plots.legends_fit(fig, redraw=False)  # as the report checks, after saving
    ax.get_legend().remove()
    plots.fit_legend(fig, *ax.get_legend_handles_labels())
    assert plots.legends_fit(fig)


def test_colours_are_stable_per_optimizer():
    assert plots.optimizer_color("SGD") == "#1f77b4"
    assert plots.optimizer_color("MyOpt") == plots.optimizer_color("MyOpt")
