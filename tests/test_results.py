"""Result files: float2str, setting folder names (against the published ones), atomic writes."""

import json
import os
from pathlib import Path

import pytest

from deepobs.runners import results


@pytest.mark.parametrize("value, text", [
    (0.01, "1.e-02"), (0.99, "9.9e-01"), (10 ** -4.8, "1.5848931925e-05"), (1.0, "1.e+00"),
    (0.999, "9.99e-01"), (1e-8, "1.e-08"), (100.0, "1.e+02"), (0.0, "0.e+00"),
])
def test_float2str(value, text):
    assert results.float2str(value) == text


def test_setting_name_v12_sorts_hyperparameters_then_adds_schedule_protocol_and_amp():
    from deepobs.runners.run_config import RunConfig

    config = RunConfig("quadratic_deep", "momentum", {"lr": 0.01}, num_epochs=100, weight_decay=0.002,
                       lr_schedule="step", schedule_params={"lr_sched_epochs": [50], "lr_sched_factors": [0.1]})
    # quadratic_deep has no weight decay: the name leaves it out, as DeepOBS does.
    assert config.resolved().setting_name() == (
        "num_epochs__100__batch_size__128__lr__1.e-02__momentum__9.9e-01__nesterov__False__"
        "lr_schedule__step__lr_sched_epochs__50__lr_sched_factors__1.e-01")
    regularized = RunConfig("cifar10_3c3d", "sgd", {"lr": 0.1}, num_epochs=10, batch_size=8, weight_decay=0.002,
                            protocol="1.1", amp="bf16").resolved()
    assert regularized.setting_name() == ("num_epochs__10__batch_size__8__weight_decay__2.e-03__lr__1.e-01__"
                                          "protocol__1.1__amp__bf16")


def test_setting_name_v11_reproduces_every_published_folder(shared_data):
    baselines = shared_data / "baselines"
    files = sorted(baselines.glob("*/*/*/*.json"))
    assert len(files) == 1080
    for path in files:
        run = json.loads(path.read_text())
        assert run["testproblem"] == path.parts[-4] and run["optimizer"] == path.parts[-3]
        name = results.setting_name_v11(
            run["num_epochs"], run["batch_size"], run["learning_rate"], run["hyperparams"],
            weight_decay=run["weight_decay"], lr_sched_epochs=run["lr_sched_epochs"],
            lr_sched_factors=run["lr_sched_factors"])
        assert name == path.parent.name
        assert path.name.startswith(f"random_seed__{run['random_seed']}__")


def test_run_file_name_format():
    name = results.run_file_name(43, timestamp=0)
    assert name.startswith("random_seed__43__") and name.endswith(".json")
    stamp = name[len("random_seed__43__"):-len(".json")]
    assert len(stamp.split("-")) == 6


def test_atomic_write_keeps_the_previous_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    results.write_json_atomic(target, {"a": 1})

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        results.write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary left behind


def test_non_finite_numbers_are_written_like_the_published_files(tmp_path):
    path = results.write_json_atomic(tmp_path / "r.json", {"x": [float("nan"), float("inf")]})
    assert "NaN" in path.read_text() and "Infinity" in path.read_text()


def test_writable_folder_rejects_a_path_under_a_file(tmp_path):
    from deepobs.safe_names import writable_folder

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(results.ConfigurationError, match="not writable"):
        writable_folder(blocker / "out")
    assert writable_folder(tmp_path / "new" / "dir") == Path(tmp_path / "new" / "dir")
