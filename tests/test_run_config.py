"""RunConfig: one description of a run; argv round trip, setting names, checkpoint binding,
reuse of finished results, and runs that fail leaving nothing behind."""

import dataclasses
import math
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepobs import StandardRunner
from deepobs.errors import ConfigurationError
from deepobs.registry import get_problem_class
from deepobs.runners import checkpoint
from deepobs.runners.cli import main
from deepobs.runners.optimizers import OptimizerSpec, resolve_optimizer
from deepobs.runners.run_config import (MAX_NAME_BYTES, RunConfig, build_run_parser, parse_run_argv,
                                        setting_name)


def sgd_config(tmp_path, **changes):
    values = dict(testproblem="quadratic_deep", optimizer="sgd", hyperparams={"lr": 0.01}, num_epochs=1,
                  output_dir=str(tmp_path), device="cpu", quiet=True)
    values.update(changes)
    return RunConfig(**values)


def run(config):
    return StandardRunner.for_optimizer(resolve_optimizer(config.optimizer)).run(config)


@pytest.mark.parametrize("argv", [
    ["quadratic_deep", "--optimizer", "sgd", "--lr", "0.1"],
    ["quadratic_deep", "--optimizer", "momentum", "--lr", "0.01", "--no-nesterov", "-N", "3", "--bs", "64",
     "-r", "7", "--protocol", "1.1", "--wd", "0.001", "--checkpoint_every", "5", "--keep_checkpoints"],
    ["quadratic_deep", "--optimizer", "adamw", "--lr", "0.001", "--betas", "0.8", "0.9",
     "--optimizer_weight_decay", "0.1", "--lr_schedule", "warmup_cosine", "--warmup_epochs", "0.5",
     "--final_lr_factor", "0.1", "--amp", "bf16", "--fake_data", "256", "--threads", "1"],
    ["quadratic_deep", "--optimizer", "sgd", "--lr", "0.1", "--lr_sched_epochs", "2", "4",
     "--lr_sched_factors", "0.1", "0.01", "-N", "6", "--compile", "--channels_last", "--quiet"],
])
def test_argv_round_trip(argv):
    config = parse_run_argv(argv)
    assert parse_run_argv(config.to_argv()) == config
    resolved = config.resolved()
    assert parse_run_argv(resolved.to_argv()).resolved() == resolved


def test_every_option_is_a_flag_and_has_its_help():
    """One new option is one edit: a RunConfig field brings its flag, help and round trip."""
    parser = build_run_parser({})
    flags = {option for action in parser._actions for option in action.option_strings}
    for item in dataclasses.fields(RunConfig):
        for flag in item.metadata["flags"]:
            assert flag in flags, flag
        if item.metadata["flags"]:
            assert item.metadata["help"], item.name


def test_the_deepobs_keyword_api_builds_the_same_config(tmp_path):
    spec = resolve_optimizer("momentum")
    runner = StandardRunner.for_optimizer(spec)
    from_keywords = runner.config_from_arguments("quadratic_deep", {"lr": 0.01}, num_epochs=1,
                                                 lr_sched_epochs=[1], lr_sched_factors=[0.5],
                                                 output_dir=str(tmp_path))
    from_argv = parse_run_argv(["quadratic_deep", "--lr", "0.01", "-N", "1", "--lr_sched_epochs", "1",
                                "--lr_sched_factors", "0.5", "--output_dir", str(tmp_path)], optimizer_spec=spec)
    assert from_keywords.resolved(spec) == from_argv.replace(optimizer_name="Momentum").resolved(spec)


def test_setting_name_is_deepobs_when_clean():
    config = RunConfig("quadratic_deep", "momentum", {"lr": 0.0025118864}, num_epochs=100,
                       protocol="1.1").resolved()
    assert config.setting_name() == ("num_epochs__100__batch_size__128__lr__2.5118864e-03__momentum__9.9e-01"
                                     "__nesterov__False__protocol__1.1")


def _named(**hyperparams):
    spec = OptimizerSpec("Opt", lambda params, **kw: None,
                         {name: {"type": str, "default": ""} for name in ("mode", "tag")})
    return RunConfig("quadratic_deep", hyperparams=hyperparams, num_epochs=1).resolved(spec)


def test_setting_names_do_not_collide_on_double_underscores():
    first, second = _named(mode="a__tag__b", tag="c"), _named(mode="a", tag="b__tag__c")
    assert first.setting_name() != second.setting_name()
    assert "__cfg__" in first.setting_name()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["mode", "tag"]),
                       st.text(st.characters(min_codepoint=32, blacklist_categories=("Cs",)), max_size=300),
                       min_size=1))
def test_every_setting_name_fits_every_file_system(values):
    name = _named(**values).setting_name()
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert not set(name) & set(" ()[],/\\\0\n") and name not in (".", "..")
    assert name == _named(**values).setting_name()  # deterministic


def test_long_names_are_shortened_with_a_hash():
    config = RunConfig("quadratic_deep", "adamw", {"lr": 0.001}, num_epochs=1, lr_schedule="wsd").resolved()
    long_spec = OptimizerSpec("Long", lambda params, **kw: None,
                              {f"hyperparameter_{i}": {"type": float, "default": 0.1 * i} for i in range(20)})
    long = RunConfig("quadratic_deep", num_epochs=1).resolved(long_spec)
    assert len(long.setting_name().encode()) <= MAX_NAME_BYTES and "__cfg__" in long.setting_name()
    assert setting_name(config) == config.setting_name()


def test_checkpoint_of_another_seed_is_refused(tmp_path, capsys):
    """A seed-42 checkpoint renamed to seed 43 must not resume seed 43."""
    config = sgd_config(tmp_path, keep_checkpoints=True)
    run(config)
    folder = config.resolved().run_folder()
    shutil.copy(checkpoint.checkpoint_path(folder, 42), checkpoint.checkpoint_path(folder, 43))
    with pytest.raises(checkpoint.CheckpointError, match="random_seed"):
        run(config.replace(random_seed=43, resume=True))
    status = main(["quadratic_deep", "--optimizer", "sgd", "--lr", "0.01", "-N", "1", "-r", "43", "--resume",
                   "--output_dir", str(tmp_path), "-q", "--device", "cpu"])
    assert status == 2 and "another configuration" in capsys.readouterr().err


def test_a_finished_run_is_reused_and_overwrite_reruns(tmp_path, capsys):
    config = sgd_config(tmp_path, quiet=False)
    first = run(config)
    second = run(config)
    assert "reusing" in capsys.readouterr().out
    assert second["test_losses"] == first["test_losses"]
    assert len(list(tmp_path.rglob("*.json"))) == 1
    third = run(config.replace(overwrite=True))
    assert third["test_losses"] == first["test_losses"] and len(list(tmp_path.rglob("*.json"))) == 1


def test_a_failed_run_leaves_nothing_behind(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    status = main(["mnist_mlp", "--optimizer", "sgd", "--lr", "0.1", "--data_dir", str(empty),
                   "--output_dir", str(tmp_path / "results"), "-q", "--device", "cpu"])
    error = capsys.readouterr().err
    assert status == 2 and str(empty) in error and "None" not in error
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*"))
    assert not (tmp_path / "None").exists()


def test_a_learning_rate_beyond_float32_is_one_line(tmp_path, capsys):
    status = main(["quadratic_deep", "--optimizer", "sgd", "--lr", "1e39", "--output_dir", str(tmp_path),
                   "-q", "--device", "cpu"])
    assert status == 2 and "beyond the largest float32" in capsys.readouterr().err
    assert not any(tmp_path.rglob("*"))


def test_learning_rates_follow_the_closed_form(tmp_path):
    """The issue's check: warmup over 2 epochs to 0.1 ((s+1)/W), then cosine to 0 at the last step."""
    output = run(sgd_config(tmp_path, hyperparams={"lr": 0.1}, num_epochs=10, lr_schedule="warmup_cosine",
                            schedule_params={"warmup_epochs": 2}))
    problem = get_problem_class("quadratic_deep")(device="cpu").set_up()
    steps = problem.data.num_batches("train")
    warmup, total = 2 * steps, 10 * steps
    expected = [0.1 * (1 / warmup), 0.1 * (steps + 1) / warmup]
    expected += [0.1 * 0.5 * (1 + math.cos(math.pi * (epoch * steps - warmup) / (total - 1 - warmup)))
                 for epoch in range(2, 10)]
    expected += [0.0]
    assert output["learning_rates"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert output["training_params"] == {"lr_schedule": "warmup_cosine", "warmup_epochs": 2.0,
                                         "final_lr_factor": 0.0}


def test_bad_options_are_one_line_errors():
    with pytest.raises(ConfigurationError, match="random_seed"):
        RunConfig("quadratic_deep", random_seed=2 ** 40)
    with pytest.raises(ConfigurationError, match="num_epochs"):
        RunConfig("quadratic_deep", num_epochs=10 ** 20)
    with pytest.raises(ConfigurationError, match="schedule"):
        RunConfig("quadratic_deep", lr_schedule="sometimes")
    with pytest.raises(ConfigurationError, match="unknown run option"):
        RunConfig.from_dict({"testproblem": "quadratic_deep", "nonsense": 1})
