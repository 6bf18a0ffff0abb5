"""Loading result trees: v1.2 and v1.1 files, NaN literals, corrupt files, hash conflicts."""

import sys
import time
import warnings

import numpy as np
import pytest

from analyzer_fixtures import build_tree, run_dict, write_run
from deepobs.analyzer.loading import check_output, load_results, read_run_file, to_long
from deepobs.errors import DataError


@pytest.fixture
def tree(tmp_path):
    return build_tree(tmp_path / "results")


def load_quietly(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_results(path, **kwargs)


def test_loads_every_readable_run_into_one_row(tree):
    runs = load_quietly(tree)
    assert len(runs) == 8  # 4 SGD + 3 Adam + 1 v1.1, the corrupt file skipped
    assert list(runs.columns[:5]) == ["source", "problem", "optimizer", "setting", "seed"]
    assert {"hp_lr", "lr", "hyperparams", "train_losses", "valid_accuracies", "diverged", "path",
            "deepobs_version"} <= set(runs.columns)
    assert sorted(runs["optimizer"].unique()) == ["Adam", "SGD"]
    assert [s.path.endswith("lr__0.2/random_seed__42__2026-01-01-00-00-00.json")
            for s in runs.attrs["skipped"]] == [True]


def test_v11_file_is_mapped_and_its_nan_marks_divergence(tree):
    runs = load_quietly(tree)
    v11 = runs[runs["problem"] == "quadratic_deep"].iloc[0]
    assert v11["optimizer"] == "SGD" and v11["optimizer_source_name"] == "GradientDescentOptimizer"
    assert v11["format"] == "1.1" and v11["protocol"] == "1.1" and v11["lr"] == 1.0
    assert v11["diverged"] and np.isnan(v11["test_losses"][1])
    assert v11["valid_losses"] is None and v11["train_accuracies"] is None


def test_diverged_v12_run_keeps_its_epoch(tree):
    runs = load_quietly(tree)
    run = runs[(runs["problem"] == "toy_class") & (runs["lr"] == 1.0)].iloc[0]
    assert run["diverged"] and run["diverged_epoch"] == 1
    assert list(run["train_losses"]) == [2.3, 2.3, 2.3]


def test_check_output_reports_instead_of_crashing(tree):
    check = check_output(tree)
    assert not check.ok
    assert [p.endswith("lr__0.5") for p in check.empty_settings] == [True]
    assert len(check.corrupt_files) == 1 and "unreadable JSON" in check.corrupt_files[0].reason
    assert "toy_class | SGD: 2 setting(s) with 1 seed(s), 1 setting(s) with 2 seed(s)" in check.summary
    assert "toy_class | Adam: 1 setting(s) with 3 seed(s)" in check.summary


def test_strict_loading_raises_naming_the_file(tree):
    with pytest.raises(DataError, match="lr__0.2.*unreadable JSON"):
        load_results(tree, strict=True)


def test_wrong_list_length_is_corrupt(tmp_path):
    data = run_dict("toy_class", "SGD", 0.1, 42, [.1, .5, .7], [.1, .5, .6])
    data["test_losses"] = [1.0, 2.0]
    path = write_run(tmp_path, data)
    with pytest.raises(DataError, match="test_losses has 2 entries, expected num_epochs\\+1 = 3"):
        read_run_file(path)


def test_different_config_hashes_in_one_setting_are_refused(tmp_path):
    for seed, digest in ((42, "aaa"), (43, "bbb")):
        write_run(tmp_path, run_dict("toy_class", "SGD", 0.1, seed, [.1, .5, .7], [.1, .5, .6],
                                     extra={"config_hash": digest}))
    with pytest.raises(DataError, match=r"random_seed__42__.*\(aaa\).*random_seed__43__.*\(bbb\)"):
        load_results(tmp_path)
    assert len(check_output(tmp_path).hash_conflicts) == 1


def test_same_config_hash_merges(tmp_path):
    for seed in (42, 43):
        write_run(tmp_path, run_dict("toy_class", "SGD", 0.1, seed, [.1, .5, .7], [.1, .5, .6],
                                     extra={"config_hash": "aaa"}))
    assert len(load_results(tmp_path)) == 2


def test_long_form_has_one_row_per_epoch(tree):
    long = to_long(load_quietly(tree))
    assert len(long) == 8 * 3
    assert {"epoch", "test_losses", "seed"} <= set(long.columns)


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_results(tmp_path / "nope")


def test_analyzer_does_not_import_torch_itself():
    import deepobs.analyzer as analyzer
    from pathlib import Path

    sources = "".join(p.read_text() for p in Path(analyzer.__file__).parent.glob("*.py"))
    assert "import torch" not in sources and "from torch" not in sources


@pytest.mark.realdata
def test_all_published_files_load_in_seconds(shared_data):
    started = time.perf_counter()
    runs = load_results(shared_data / "baselines", strict=True)
    elapsed = time.perf_counter() - started
    assert len(runs) == 1080
    assert runs["problem"].nunique() == 8 and sorted(runs["optimizer"].unique()) == ["Adam", "Momentum", "SGD"]
    assert runs["diverged"].sum() > 0
    assert elapsed < 30, f"loading took {elapsed:.1f} s"


def test_the_same_value_written_with_other_precision_is_one_setting(tmp_path):
    """Settings group by the hyperparameters in the files, not by folder names."""
    from deepobs import StandardRunner
    from deepobs.runners.optimizers import resolve_optimizer

    runner = StandardRunner.for_optimizer(resolve_optimizer("sgd"))
    for seed, lr in ((42, 0.0025118864), (43, 2.5118864315e-03)):
        runner.run("quadratic_deep", {"lr": lr}, num_epochs=0, random_seed=seed, output_dir=str(tmp_path),
                   quiet=True, device="cpu")
    assert len({path.parent for path in tmp_path.rglob("*.json")}) == 2  # two folders
    runs = load_quietly(tmp_path)
    assert runs["setting"].nunique() == 1 and sorted(runs["seed"]) == [42, 43]


def test_optimizers_are_grouped_and_labelled_by_their_schedule():
    from deepobs.analyzer.loading import schedule_label

    assert schedule_label("Adam", {}) == "Adam"
    assert schedule_label("Adam", {"lr_schedule": "constant"}) == "Adam"
    assert schedule_label("SGD", {"lr_schedule": "step", "lr_sched_epochs": [5]}) == "SGD"
    assert schedule_label("Adam", {"lr_schedule": "warmup_cosine", "warmup_epochs": 5}) == "Adam+warmup_cosine"
