"""deepobs-run: listing, optimizer lookup and flags, and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest

from deepobs.runners.cli import main
from deepobs.runners.optimizers import hyperparameters_from_signature, resolve_optimizer


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def cli_error(capsys, *argv):
    """Run argv expecting a usage error; return the one stderr line."""
    try:
        status, _, err = run_cli(capsys, *argv)
    except SystemExit as exit_:
        status, err = exit_.code, capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepobs-run: error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_list_and_pattern(capsys):
    status, out, _ = run_cli(capsys, "--list")
    assert status == 0 and "quadratic_deep" in out.split()
    status, out, _ = run_cli(capsys, "--list", "two_d_*")
    assert out.split() == ["two_d_beale", "two_d_branin", "two_d_rosenbrock"]
    status, out, _ = run_cli(capsys, "--list", "quadratic*", "-v")
    header, row = out.strip().splitlines()
    assert header.split("\t")[:4] == ["problem", "dataset", "model", "parameters"]
    assert row.split("\t")[0] == "quadratic_deep" and row.split("\t")[3] == "100"


def test_list_optimizers(capsys):
    status, out, _ = run_cli(capsys, "--list-optimizers")
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert status == 0 and {"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"} <= set(names)


def test_a_run_writes_one_result(capsys, tmp_path):
    status, out, _ = run_cli(capsys, "two_d_beale", "--optimizer", "momentum", "--lr", "1e-7",
                             "--no-nesterov", "-N", "1", "--output_dir", tmp_path, "--device", "cpu")
    assert status == 0 and "epoch 1/1" in out
    [path] = list(tmp_path.rglob("*.json"))
    result = json.loads(path.read_text())
    assert result["optimizer_name"] == "Momentum"
    assert result["optimizer_hyperparams"] == {"lr": 1e-7, "momentum": 0.99, "nesterov": False}
    assert result["diverged"] is False


def test_torch_optimizer_flags_come_from_its_signature(capsys, tmp_path):
    status, _, _ = run_cli(capsys, "two_d_beale", "--optimizer", "AdamW", "--lr", "0.01",
                           "--optimizer_weight_decay", "0.5", "--betas", "0.8", "0.9", "--amsgrad",
                           "-N", "1", "--output_dir", tmp_path, "-q", "--device", "cpu",
                           "--optimizer_name", "AdamW-test")
    assert status == 0
    [path] = list(tmp_path.rglob("*.json"))
    result = json.loads(path.read_text())
    assert result["optimizer_name"] == "AdamW-test"
    hyperparams = result["optimizer_hyperparams"]
    assert hyperparams["weight_decay"] == 0.5 and hyperparams["betas"] == [0.8, 0.9]
    assert hyperparams["amsgrad"] is True and result["optimizer_class"] == "torch.optim.adamw.AdamW"


def test_dotted_path_optimizer(capsys, tmp_path):
    status, _, _ = run_cli(capsys, "two_d_branin", "--optimizer", "torch.optim.Adagrad", "--lr", "0.1",
                           "-N", "1", "--no_logs", "-q", "--device", "cpu")
    assert status == 0
    spec = resolve_optimizer("torch.optim.Adagrad")
    assert spec.name == "Adagrad" and spec.hyperparameters["lr"]["type"] is float


def test_signature_hyperparameters_skip_implementation_switches():
    import torch

    hyperparameters = hyperparameters_from_signature(torch.optim.Adam)
    assert {"lr", "betas", "eps", "weight_decay", "amsgrad"} <= set(hyperparameters)
    assert not {"foreach", "fused", "capturable", "differentiable"} & set(hyperparameters)
    assert hyperparameters["amsgrad"] == {"type": bool, "default": False}


@pytest.mark.parametrize("argv, message", [
    (["quadratc_deep", "--optimizer", "sgd", "--lr", "0.1"], "did you mean: quadratic_deep"),
    (["quadratic_deep", "--optimizer", "sgdd", "--lr", "0.1"], "unknown optimizer 'sgdd'"),
    (["quadratic_deep", "--optimizer", "sgd", "--lr", "1", "--lrr", "0.1"], "unrecognized arguments: --lrr"),
    (["quadratic_deep", "--optimizer", "sgd", "--lr", "abc"], "invalid float value: 'abc'"),
    (["quadratic_deep", "--optimizer", "sgd", "--nesterov", "maybe"], "unrecognized arguments"),
    (["quadratic_deep", "--optimizer", "sgd", "--lr", "0.1", "--bs", "-5"], "batch_size"),
    (["quadratic_deep", "--optimizer", "sgd", "--lr", "0.1", "-N", "-1"], "num_epochs"),
    (["quadratic_deep", "--optimizer", "sgd", "--lr", "-0.1"], "Invalid learning rate"),
    (["quadratic_deep", "--optimizer", "sgd", "--lr", "0.1", "--protocol", "3"], "invalid choice"),
    (["quadratic_deep"], "--optimizer is required"),
])
def test_bad_input_is_one_line_with_status_2(capsys, tmp_path, argv, message):
    line = cli_error(capsys, *argv, "--output_dir", tmp_path)
    assert message in line
    assert list(tmp_path.rglob("*.json")) == []


def test_mistyped_flag_gets_a_suggestion(capsys, tmp_path):
    line = cli_error(capsys, "quadratic_deep", "--optimizer", "momentum", "--lr", "0.1",
                     "--momentun", "0.9", "--output_dir", tmp_path)
    assert "did you mean: --momentum" in line


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = cli_error(capsys, "quadratic_deep", "--optimizer", "sgd", "--lr", "0.1",
                     "--output_dir", blocker / "results")
    assert "not writable" in line


def test_console_script_exit_status_and_no_traceback(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "deepobs.run", "no_such_problem", "--optimizer", "sgd", "--lr", "1"],
        capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        "deepobs-run: error: unknown problem 'no_such_problem' (deepobs-run --list shows all problems)"]


def test_float_hyperparameters_with_int_defaults_take_floats(capsys, tmp_path):
    """torch's ``weight_decay: float = 0`` must accept 0.001 on the command line."""
    hyperparameters = resolve_optimizer("rmsprop").hyperparameters
    assert hyperparameters["weight_decay"] == {"type": float, "default": 0.0}
    assert hyperparameters["momentum"]["type"] is float
    assert resolve_optimizer("lbfgs").hyperparameters["max_iter"] == {"type": int, "default": 20}
    status, _, _ = run_cli(capsys, "two_d_branin", "--optimizer", "rmsprop", "--lr", "0.001",
                           "--optimizer_weight_decay", "0.001", "-N", "1", "--no_logs", "-q",
                           "--device", "cpu")
    assert status == 0
