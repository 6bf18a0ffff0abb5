"""Aggregation over seeds and DeepOBS's setting ranking, checked against hand-computed numbers."""

import warnings

import numpy as np
import pytest

from analyzer_fixtures import build_tree
from deepobs.analyzer.aggregate import aggregate, final_mean, rank_settings, select_best
from deepobs.analyzer.loading import load_results
from deepobs.errors import ConfigurationError


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = build_tree(tmp_path_factory.mktemp("tree") / "results", corrupt=False)
    return aggregate(load_results(root))


def _row(settings, optimizer, lr, problem="toy_class"):
    rows = settings[(settings["problem"] == problem) & (settings["optimizer"] == optimizer)
                    & (settings["lr"] == lr)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_statistics_over_seeds_are_the_hand_computed_ones(settings):
    adam = _row(settings, "Adam", 0.001)
    stats = adam["curves"]["valid_accuracies"]
    assert adam["n_runs"] == 3 and adam["seeds"] == [42, 43, 44]
    np.testing.assert_allclose(stats["mean"], [.1, .5, .8])
    np.testing.assert_allclose(stats["std"][-1], np.sqrt(2 / 300))  # population std of .7 .8 .9
    np.testing.assert_allclose(stats["median"][-1], .8)
    np.testing.assert_allclose([stats["lower_quartile"][-1], stats["upper_quartile"][-1]], [.75, .85])
    np.testing.assert_allclose(sorted(adam["finals"]["valid_accuracies"]), [.7, .8, .9])


def test_diverged_runs_are_left_out_unless_asked(settings, tmp_path):
    diverged = _row(settings, "SGD", 1.0)
    assert (diverged["n_runs"], diverged["n_diverged"], diverged["n_used"]) == (1, 1, 0)
    assert diverged["curves"]["valid_accuracies"] is None and np.isnan(final_mean(diverged, "valid_accuracies"))
    assert len(diverged["diverged_curves"]["train_losses"][0]) == 1  # only epoch 0 was measured
    root = build_tree(tmp_path / "results", corrupt=False)
    included = aggregate(load_results(root), include_diverged=True)
    row = _row(included, "SGD", 1.0)
    assert row["n_used"] == 1 and final_mean(row, "valid_accuracies") == pytest.approx(.1)


def test_rank_final_best_and_most(settings):
    sgd = settings[(settings["problem"] == "toy_class") & (settings["optimizer"] == "SGD")]
    final = rank_settings(sgd, "final", "valid_accuracies")
    # On the tuning seed 42 (the one seed all settings share): .9 > .75 > diverged (NaN last).
    assert list(final["lr"]) == [0.1, 0.01, 1.0] and final.attrs["tuning_seeds"] == (42,)
    assert list(final["score"][:2]) == pytest.approx([.9, .75])
    best = rank_settings(sgd, "best", "valid_accuracies")
    assert list(best["lr"]) == [0.1, 0.01, 1.0]  # best epoch on seed 42: .9 > .85
    assert list(best["score"][:2]) == pytest.approx([.9, .85])
    most = rank_settings(sgd, "most", "valid_accuracies")
    assert most["lr"].iloc[0] == 0.1 and most.attrs["note"] == ""  # 2 seeds beat 1


def test_selection_never_uses_the_test_set(settings):
    sgd = settings[(settings["problem"] == "toy_class") & (settings["optimizer"] == "SGD")]
    # lr 0.01 has the best final test accuracy (.9 vs .6) but lr 0.1 wins on validation.
    assert select_best(sgd, "final", "valid_accuracies")["lr"].iloc[0] == 0.1
    with pytest.raises(ConfigurationError, match="refusing to select settings on the test set"):
        rank_settings(sgd, "final", "test_accuracies")
    assert rank_settings(sgd, "final", "test_accuracies", allow_test=True)["lr"].iloc[0] == 0.01


def test_losses_rank_ascending(settings):
    sgd = settings[(settings["problem"] == "toy_class") & (settings["optimizer"] == "SGD")]
    ranked = rank_settings(sgd, "final", "valid_losses")
    assert ranked["score"].iloc[0] <= ranked["score"].iloc[1]


def test_fallback_to_training_metric_says_so(settings):
    v11 = settings[settings["problem"] == "quadratic_deep"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranked = rank_settings(v11, "final", "valid_accuracies")
    assert ranked.attrs["metric"] == "train_losses"
    assert "valid_accuracies not available, ranked on train_losses" in ranked.attrs["note"]
    assert any("ranked on train_losses" in str(w.message) for w in caught)


def test_select_best_gives_one_row_per_optimizer_with_its_reason(settings):
    chosen = select_best(settings, "final", "valid_accuracies")
    assert sorted(zip(chosen["problem"], chosen["optimizer"])) == [
        ("quadratic_deep", "SGD"), ("toy_class", "Adam"), ("toy_class", "SGD")]
    assert set(chosen["metric_used"]) == {"valid_accuracies", "train_losses"}


def test_bad_mode_and_metric_are_one_line_errors(settings):
    with pytest.raises(ConfigurationError, match="unknown mode 'fastest'; allowed: final, best, most"):
        rank_settings(settings, "fastest")
    with pytest.raises(ConfigurationError, match="unknown metric 'valid_acc'"):
        rank_settings(settings, "final", "valid_acc")


def test_protocols_are_ranked_apart(tmp_path):
    from analyzer_fixtures import run_dict, write_run

    write_run(tmp_path, run_dict("toy_class", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6]))
    write_run(tmp_path, run_dict("toy_class", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6], protocol="1.1"),
              setting="num_epochs__2__batch_size__8__lr__0.1__protocol__1.1")
    chosen = select_best(aggregate(load_results(tmp_path)), "final", "valid_accuracies")
    assert sorted(chosen["optimizer"]) == ["SGD [protocol 1.1]", "SGD [protocol 1.2]"]
    assert dict(zip(chosen["protocol"], chosen["metric_used"])) == {"1.1": "train_accuracies",
                                                                    "1.2": "valid_accuracies"}
