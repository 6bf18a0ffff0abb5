"""The shipped compact DeepOBS 1.1 baselines reproduce docs/testproblems.md, published baselines, and the
published files give the same numbers when read directly."""

import json
from pathlib import Path

import pytest

from deepobs.analyzer.aggregate import aggregate, final_mean, final_std, select_best
from deepobs.analyzer.baselines import baseline_folder, compact_problem, decode_curve, encode_curve, load_baselines
from deepobs.analyzer.loading import load_results
from deepobs.analyzer.measures import convergence_performance, speed
from deepobs.errors import ConfigurationError

# docs/testproblems.md, published baselines: problem, optimizer, tuned lr, final test loss, final test acc (%),
# final train loss, speed (epochs). Strings, so each value is compared at its printed precision.
TABLE_5 = """
quadratic_deep SGD 1.585e-2 87.40±0.16 — 85.10 51.1
quadratic_deep Momentum 2.512e-3 87.05±0.02 — 84.96 70.5
quadratic_deep Adam 3.981e-2 87.11±0.02 — 84.83 39.9
mnist_vae SGD 3.981e-3 38.46±11.83 — 38.52 1.0
mnist_vae Momentum 2.512e-5 52.93±0.01 — 53.11 1.0
mnist_vae Adam 1.585e-4 27.83±0.09 — 27.09 1.0
fmnist_2c2d SGD 1.585e-1 0.68±0.02 92.27±0.17 0.000 40.6
fmnist_2c2d Momentum 2.512e-3 0.73±0.01 92.14±0.20 0.000 59.1
fmnist_2c2d Adam 2.512e-4 0.63±0.02 92.34±0.28 0.002 40.1
cifar10_3c3d SGD 6.310e-2 0.86±0.04 83.71±1.15 0.635 42.5
cifar10_3c3d Momentum 3.981e-4 0.79±0.02 84.41±0.60 0.554 40.7
cifar10_3c3d Adam 3.981e-4 0.74±0.01 84.75±0.33 0.575 36.0
fmnist_vae SGD 3.981e-3 23.80±0.23 — 23.74 1.0
fmnist_vae Momentum 1.000e-5 59.23±17.42 — 59.52 1.0
fmnist_vae Adam 1.585e-4 23.07±0.09 — 22.68 1.0
cifar100_allcnnc SGD 1.585e-1 2.39±0.09 57.06±1.56 1.740 128.7
cifar100_allcnnc Momentum 3.981e-3 2.29±0.05 60.33±0.77 1.793 72.8
cifar100_allcnnc Adam 1.000e-3 2.13±0.04 56.15±0.90 1.834 152.6
svhn_wrn164 SGD 2.512e-2 0.32±0.02 95.37±0.38 0.105 28.3
svhn_wrn164 Momentum 6.310e-4 0.27±0.01 95.53±0.16 0.071 10.8
svhn_wrn164 Adam 1.585e-4 0.30±0.01 95.25±0.22 0.096 12.1
tolstoi_char_rnn SGD 1.585 1.23±0.01 62.07±0.28 1.152 47.7
tolstoi_char_rnn Momentum 3.981e-2 1.26±0.01 61.30±0.12 1.194 88.0
tolstoi_char_rnn Adam 2.512e-3 1.27±0.01 61.23±0.29 1.197 62.8
"""
ROWS = [line.split() for line in TABLE_5.strip().splitlines()]


def same_as_printed(value: float, printed: str, scale: float = 1.0) -> bool:
    """``value`` rounds to ``printed`` at the printed number of decimals."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return f"{value * scale:.{decimals}f}" == printed


def check_table_5(settings):
    thresholds = convergence_performance()
    chosen = select_best(settings, mode="most").set_index(["problem", "optimizer"])
    assert len(chosen) == 24
    for problem, optimizer, lr, test_loss, test_acc, train_loss, epochs in ROWS:
        row = chosen.loc[(problem, optimizer)]
        assert row["n_runs"] == 10 and row["seeds"] == list(range(42, 52))
        assert float(f"{row['lr']:.4g}") == float(lr), (problem, optimizer)
        mean, std = test_loss.split("±")
        assert same_as_printed(final_mean(row, "test_losses"), mean), (problem, optimizer, "test loss")
        assert same_as_printed(final_std(row, "test_losses"), std), (problem, optimizer, "test loss std")
        if test_acc == "—":
            assert "test_accuracies" not in row["finals"]
        else:
            mean, std = test_acc.split("±")
            assert same_as_printed(final_mean(row, "test_accuracies"), mean, 100), (problem, optimizer)
            assert same_as_printed(final_std(row, "test_accuracies"), std, 100), (problem, optimizer)
        assert same_as_printed(final_mean(row, "train_losses"), train_loss), (problem, optimizer, "train")
        assert same_as_printed(speed(row, thresholds[problem]), epochs), (problem, optimizer, "speed")


def test_shipped_baselines_reproduce_the_whole_table_of_section_5():
    settings = load_baselines("deepobs-1.1")
    assert len(settings) == 8 * 3 * 36  # every learning rate of the grid
    check_table_5(settings)


def test_shipped_baselines_are_small_and_licensed():
    folder = baseline_folder("deepobs-1.1")
    files = sorted(folder.glob("*.compact.json"))
    assert len(files) == 8
    assert sum(f.stat().st_size for f in files) < 600_000
    assert "MIT License" in (folder / "LICENSE").read_text()
    assert "3da285abf9786e823aaef6d0fc0c9c98ef5d6d83" in (folder / "README.md").read_text()
    assert convergence_performance()["quadratic_deep"] == pytest.approx(87.70315464772136)


def test_curves_keep_their_digits_relative_to_the_peak():
    encoded = encode_curve([353.4456, 87.4012, float("nan")], 4)
    assert encoded == {"e": -1, "v": [3534, 874, None]}
    decoded = decode_curve(encoded)
    assert decoded[:2].tolist() == pytest.approx([353.4, 87.4]) and decoded[2] != decoded[2]


def test_baselines_by_path_read_a_results_tree(tmp_path):
    from analyzer_fixtures import build_tree

    root = build_tree(tmp_path / "other", corrupt=False)
    settings = load_baselines(str(root))
    assert set(settings["source"]) == {"other"} and len(settings) == 5


def test_unknown_baselines_are_a_clear_error():
    with pytest.raises(ConfigurationError, match="not a shipped set \\(deepobs-1.1, deepobs-pytorch\\) nor an existing path"):
        load_baselines("deepobs-9")


@pytest.mark.realdata
def test_published_files_give_the_section_5_speeds_and_the_shipped_compact_form(shared_data):
    source = shared_data / "baselines"
    settings = aggregate(load_results(source, source="deepobs-1.1", strict=True))
    check_table_5(settings)
    thresholds = json.loads((source / "convergence_performance.json").read_text())
    chosen = select_best(settings, mode="most").set_index(["problem", "optimizer"])
    assert round(speed(chosen.loc[("quadratic_deep", "SGD")], thresholds["quadratic_deep"]), 1) == 51.1
    assert round(speed(chosen.loc[("fmnist_2c2d", "Adam")], thresholds["fmnist_2c2d"]), 1) == 40.1
    # The shipped files are exactly what scripts/build_baselines.py makes from these.
    shipped = baseline_folder("deepobs-1.1")
    for problem, group in settings.groupby("problem"):
        rebuilt = json.loads(json.dumps(compact_problem(group, thresholds)))
        assert rebuilt == json.loads((shipped / f"{problem}.compact.json").read_text()), problem
