"""One selection rule and one divergence rule, shared by deepobs-tune and deepobs-plot:
a sweep with reruns must give the same setting in both."""

import math

import pytest

from analyzer_fixtures import run_dict, write_run
from deepobs.analyzer.aggregate import aggregate, final_mean, final_std, select_best
from deepobs.analyzer.divergence import LOSS_BOUND, divergence_epoch, run_divergence
from deepobs.analyzer.loading import load_results
from deepobs.analyzer.selection import choose, format_number, run_value, setting_value, tuning_seeds


def test_run_value_final_best_and_diverged():
    assert run_value([3.0, 1.0, 2.0], "valid_losses") == 2.0
    assert run_value([3.0, 1.0, 2.0], "valid_losses", "best") == 1.0
    assert run_value([.1, .9, .8], "valid_accuracies", "best") == .9
    assert math.isnan(run_value([3.0, 1.0, 2.0], "valid_losses", diverged=True))
    assert math.isnan(run_value([3.0, float("nan")], "valid_losses"))
    assert math.isnan(run_value(None, "valid_losses"))


def test_tuning_seeds_and_setting_value():
    rerun = {42: 1.0, 43: 3.0, 44: 3.0}
    single = {42: 2.0}
    assert tuning_seeds([rerun, single]) == (42,)
    assert tuning_seeds([{42: 1.0}, {43: 1.0}]) == ()
    assert setting_value(rerun, (42,)) == 1.0 and setting_value(rerun, ()) == pytest.approx(7 / 3)
    assert math.isnan(setting_value(single, (42, 43)))  # a missing tuning run: no value
    assert math.isnan(setting_value({42: float("nan")}, (42,)))


def test_choose_ranks_on_the_tuning_seed_not_the_mean():
    rerun, single, diverged = {42: 1.0, 43: 3.0, 44: 3.0}, {42: 2.0}, {42: float("nan")}
    assert choose([single, rerun, diverged], "valid_losses") == 1  # 1.0 on seed 42 beats 2.0
    assert choose([diverged, single], "valid_losses") == 1  # NaN ranks last
    assert choose([{42: .5}, {42: .7}], "valid_accuracies") == 1
    assert choose([{42: .5}, {42: .5}], "valid_accuracies") == 0  # ties keep the order
    assert choose([], "valid_losses") is None
    assert format_number(187.0788958796433) == "187.1" and format_number(0.0354321) == "0.03543"


def test_divergence_rule():
    assert divergence_epoch([350.0, 300.0, 290.0]) is None
    assert divergence_epoch([350.0, 4.2e19, 4.2e19]) == 1  # finite, but far above the bound
    assert divergence_epoch([2.0, 2.0 * LOSS_BOUND * 1.01]) == 1
    assert divergence_epoch([2.0, 5.0, float("inf")]) == 2
    assert run_divergence({"valid_losses": [2.3, 4.2e19], "diverged": False}) == (True, 1)
    flagged = {"diverged": True, "diverged_at": {"epoch": 3, "step": 7}, "train_losses": [2.0] * 5}
    assert run_divergence(flagged) == (True, 3)
    assert run_divergence({"train_losses": [2.3, 1.0], "test_losses": [2.4, 1.1]}) == (False, None)


def test_analyzer_loads_a_finite_blow_up_as_diverged(tmp_path):
    blown = run_dict("toy_class", "SGD", 10.0, 42, [.1, .1, .1], [.1, .1, .1])
    blown["valid_losses"] = [2.35, 4.2e19, 4.2e19]
    write_run(tmp_path, blown)
    runs = load_results(tmp_path)
    assert bool(runs["diverged"].iloc[0]) and runs["diverged_epoch"].iloc[0] == 1
    row = aggregate(runs).iloc[0]
    assert row["n_used"] == 0 and len(row["diverged_curves"]["valid_losses"][0]) == 1


def _sweep_result(folder, seed: int, final_valid_loss: float) -> dict:
    """A quadratic_deep result whose final validation loss is ``final_valid_loss``."""
    data = run_dict("quadratic_deep", "SGD", 0.0, seed, [0, 0, 0], [0, 0, 0])
    for key in ("train_accuracies", "test_accuracies", "valid_accuracies"):
        data.pop(key, None)
    data["valid_losses"] = [350.0, (350.0 + final_valid_loss) / 2, final_valid_loss]
    data["batch_size"] = 128
    return data


def test_tuner_and_analyzer_break_ties_alike(tmp_path):
    """Equal values (Adafactor trains identically at every rate >= 1): the tuner sees its
    grid in order, the analyzer its folders in name order ("1.5848931925e+00" before
    "1.e+00"); both choose the smallest rate."""
    from deepobs.tuner import GridSearch
    from deepobs.tuner.searches import Study, tune_studies

    grid = [0.1, 1.0, 1.5848931925, 10.0]
    search = GridSearch("sgd", {"lr": grid})
    study = Study("quadratic_deep", search, seeds=(42,), rerun_seeds=(),
                  run_options={"output_dir": str(tmp_path), "num_epochs": 2, "batch_size": 128})
    for lr in grid:
        spec = study.run_spec({"lr": lr}, 42)
        data = _sweep_result(spec.result_folder(), 42, 5.0 if lr < 1 else 1.0)
        data["optimizer_hyperparams"] = {"lr": lr, "momentum": 0.0}  # "lr__1__momentum" after "lr__1.58"
        write_run(tmp_path, data, setting=spec.result_folder().name)
    assert tune_studies([study])[0].best.setting == {"lr": 1.0}
    settings = aggregate(load_results(tmp_path))
    assert select_best(settings, "final", "valid_accuracies").iloc[0]["lr"] == pytest.approx(1.0)


def test_tuner_says_when_every_setting_diverged(tmp_path, capsys):
    """Nothing to choose when every tuning run diverged: the summary says so instead of
    calling the first-ranked setting the best."""
    from deepobs.tuner import GridSearch
    from deepobs.tuner.cli import _print_summary
    from deepobs.tuner.searches import Study, tune_studies

    search = GridSearch("sgd", {"lr": [0.1, 1.0]})
    study = Study("quadratic_deep", search, seeds=(42,), rerun_seeds=(43,),
                  run_options={"output_dir": str(tmp_path), "num_epochs": 2, "batch_size": 128})
    for lr, seed in ((0.1, 42), (1.0, 42), (0.1, 43)):
        spec = study.run_spec({"lr": lr}, seed)
        data = _sweep_result(spec.result_folder(), seed, float("nan"))
        data.update(optimizer_hyperparams={"lr": lr}, diverged=True, diverged_at={"epoch": 2, "step": 3})
        write_run(tmp_path, data, setting=spec.result_folder().name)
    _print_summary(tune_studies([study]))
    assert capsys.readouterr().out.strip() == ("quadratic_deep SGD: every setting diverged (2 settings on seed 42); "
                                               "rerun: lr=0.1; 2 seeds: all diverged")


def test_tuner_and_analyzer_choose_the_same_setting(tmp_path, capsys):
    """A grid on seed 42, the best setting rerun with seeds 43 and 44 (which do worse than
    seed 42), and a single-seed setting whose value (2.0) beats the rerun setting's mean
    (7/3): ranking on means would choose it; both tools choose lr 0.01, and the report
    gives the chosen setting's mean over all three seeds."""
    from deepobs.tuner import GridSearch
    from deepobs.tuner.searches import Study, tune_studies

    finals = {(0.001, 42): 2.0, (0.01, 42): 1.0, (0.01, 43): 3.0, (0.01, 44): 3.0, (0.1, 42): 4.2e19}
    search = GridSearch("sgd", {"lr": [0.001, 0.01, 0.1]})
    study = Study("quadratic_deep", search, seeds=(42,), rerun_seeds=(43, 44),
                  run_options={"output_dir": str(tmp_path), "num_epochs": 2, "batch_size": 128})
    for (lr, seed), final in finals.items():  # every run exists: the sweep trains nothing
        spec = study.run_spec({"lr": lr}, seed)
        data = _sweep_result(spec.result_folder(), seed, final)
        data["optimizer_hyperparams"] = {"lr": lr}
        write_run(tmp_path, data, setting=spec.result_folder().name)
    result = tune_studies([study])[0]
    assert result.best.setting == {"lr": 0.01}
    assert sorted(result.reruns.values) == [42, 43, 44]
    from deepobs.tuner.cli import _print_summary

    _print_summary([result])  # the setting exact, the values to 4 significant digits
    assert capsys.readouterr().out.strip() == ("quadratic_deep SGD: best lr=0.01 (final valid_losses 1 on seed 42); "
                                               "3 seeds: mean 2.333 ± 0.9428")

    chosen = select_best(aggregate(load_results(tmp_path)), "final", "valid_accuracies")
    row = chosen.iloc[0]
    assert len(chosen) == 1 and row["lr"] == pytest.approx(0.01) and row["metric_used"] == "valid_losses"
    assert tuple(row["tuning_seeds"]) == (42,)
    assert final_mean(row, "valid_losses") == pytest.approx(7 / 3)
    assert final_std(row, "valid_losses") == pytest.approx(math.sqrt(8 / 9))
