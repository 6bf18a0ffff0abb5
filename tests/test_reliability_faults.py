"""Numerical and resource faults: NaN/inf in loss, parameters or gradients stop a run and
keep what was measured; a full disk or an unwritable folder leaves earlier files intact."""

from __future__ import annotations

import errno
import gc
import json
import math
import os
from pathlib import Path

import pytest
import torch

from deepobs.runners import checkpoint, cli, results
from deepobs.runners.optimizers import resolve_optimizer
from deepobs.runners.runner import StandardRunner, float_parameters, non_finite_state


def quadratic_run(optimizer_class, hyperparams, tmp_path, num_epochs=3, **kwargs):
    runner = StandardRunner(optimizer_class, {name: {"type": float} for name in hyperparams},
                            optimizer_name="Faulty")
    return runner.run("quadratic_deep", dict(hyperparams), num_epochs=num_epochs, batch_size=128,
                      output_dir=str(tmp_path), quiet=True, **kwargs)


class PoisonedSGD(torch.optim.SGD):
    """SGD that writes a NaN into a parameter or a gradient at one chosen step."""

    def __init__(self, params, lr, poison_step, target="parameters"):
        super().__init__(params, lr=lr)
        self.poison_step, self.target, self.calls = int(poison_step), target, 0

    @torch.no_grad()
    def step(self, closure=None):
        self.calls += 1
        result = super().step(closure)
        if self.calls == self.poison_step:
            parameter = self.param_groups[0]["params"][0]
            tensor = parameter if self.target == "parameters" else parameter.grad
            tensor.view(-1)[0] = float("nan")
        return result


def poisoned(target):
    def build(params, lr, poison_step):
        return PoisonedSGD(params, lr, poison_step, target)
    return build


def test_non_finite_loss_stops_the_run_and_keeps_earlier_metrics(tmp_path):
    output = quadratic_run(torch.optim.SGD, {"lr": 1e3}, tmp_path, num_epochs=4)
    assert output["diverged"] is True
    assert output["diverged_at"]["reason"] == "loss"
    assert output["diverged_at"]["epoch"] == 1
    # Epoch 0 was measured before the divergence and is kept; lists are padded to N+1.
    assert output["test_losses"][0] == pytest.approx(353.4468, abs=1e-3)
    assert len(output["test_losses"]) == 5
    (path,) = Path(tmp_path).rglob("random_seed__42__*.json")
    on_disk = json.loads(path.read_text())
    assert on_disk["diverged"] is True and on_disk["test_losses"][0] == output["test_losses"][0]
    assert not list(Path(tmp_path).rglob("*.checkpoint.pt"))


@pytest.mark.parametrize("target", ["parameters", "gradients"])
def test_nan_in_parameters_or_gradients_is_detected_at_its_step(tmp_path, target):
    # 7 steps per epoch: step 10 of the run is step 2 (0-based) of epoch 2; train_log_interval 1
    # checks every step.
    output = quadratic_run(poisoned(target), {"lr": 0.01, "poison_step": 10.0}, tmp_path,
                           num_epochs=3, train_log_interval=1)
    assert output["diverged"] is True
    assert output["diverged_at"] == {"epoch": 2, "step": 2, "reason": target}
    # Epochs 0 and 1 were measured and are kept (finite and different from each other).
    losses = output["test_losses"]
    assert all(math.isfinite(v) for v in losses[:2]) and losses[0] != losses[1]
    assert len(output["minibatch_train_losses"]) == 10


@pytest.mark.parametrize("value, expected", [
    (1.0, None), (float("nan"), "parameters"), (float("inf"), "parameters"), (-float("inf"), "parameters"),
    (3e38, None),  # finite: the screening sum overflows, the exact check clears it
])
def test_non_finite_state_screens_parameters_exactly(value, expected):
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    with torch.no_grad():
        net[1].weight.fill_(3e38 if value == 3e38 else 0.5)
        net[1].weight[0, 0] = value
    assert non_finite_state(net) == expected
    assert non_finite_state(float_parameters(net)) == expected


def test_non_finite_state_names_gradients_before_parameters():
    net = torch.nn.Linear(3, 1)
    net(torch.ones(2, 3)).sum().backward()
    assert non_finite_state(net) is None
    net.bias.grad[0] = float("nan")
    assert non_finite_state(net) == "gradients"
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    net.bias.grad.zero_()
    assert non_finite_state(net) == "parameters"


def test_full_disk_while_writing_the_result_keeps_the_previous_result(tmp_path, monkeypatch, capsys):
    arguments = ["quadratic_deep", "--optimizer", "sgd", "--lr", "0.01", "-N", "1", "-q",
                 "--output_dir", str(tmp_path)]
    assert cli.main(arguments) == 0
    (previous,) = Path(tmp_path).rglob("random_seed__42__*.json")
    content = previous.read_text()
    real_replace = os.replace

    def disk_full(source, destination):
        if str(destination).endswith(".json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(destination))
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", disk_full)
    assert cli.main(arguments + ["--overwrite"]) == checkpoint.EXIT_FAILED
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "No space left on device" in error
    assert list(Path(tmp_path).rglob("random_seed__42__*.json")) == [previous]
    assert previous.read_text() == content
    assert not list(Path(tmp_path).rglob("*.tmp"))


def test_full_disk_while_checkpointing_leaves_the_last_checkpoint_and_resumes(tmp_path, monkeypatch, capsys):
    arguments = ["quadratic_deep", "--optimizer", "sgd", "--lr", "0.01", "-N", "2", "-q",
                 "--output_dir", str(tmp_path)]
    real_save, saves = checkpoint.save_atomic, [0]

    def fails_on_second(path, state, **kwargs):
        saves[0] += 1
        if saves[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, state, **kwargs)

    monkeypatch.setattr(checkpoint, "save_atomic", fails_on_second)
    assert cli.main(arguments) == checkpoint.EXIT_FAILED
    assert "No space left on device" in capsys.readouterr().err
    (saved,) = Path(tmp_path).rglob("random_seed__42.checkpoint.pt")
    assert checkpoint.load(saved)["epoch"] == 0
    monkeypatch.setattr(checkpoint, "save_atomic", real_save)
    assert cli.main(arguments + ["--resume"]) == 0
    assert len(list(Path(tmp_path).rglob("random_seed__42__*.json"))) == 1


def test_unwritable_output_folder_is_a_one_line_error_before_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = cli.main(["quadratic_deep", "--optimizer", "sgd", "--lr", "0.01", "-N", "1", "-q",
                     "--output_dir", str(blocker)])
    assert code == checkpoint.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not writable" in error
    assert blocker.read_text() == "not a folder"


def test_write_json_atomic_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    results.write_json_atomic(target, {"a": 1})

    def broken_dump(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError):
        results.write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.slow
def test_memory_is_stable_over_epochs():
    """RSS after epoch 10 is within a few percent of epoch 2 (no growth per epoch)."""
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    rss = {}

    class Measuring(StandardRunner):
        def evaluate_all(self, epoch, num_epochs, tproblem, log):
            super().evaluate_all(epoch, num_epochs, tproblem, log)
            gc.collect()
            rss[epoch] = process.memory_info().rss

    spec = resolve_optimizer("momentum")
    Measuring(spec.build, spec.hyperparameters, "Momentum").run(
        "quadratic_deep", {"lr": 1e-2}, num_epochs=12, batch_size=32, no_logs=True, quiet=True)
    assert len(rss) == 13
    growth = (rss[10] - rss[2]) / rss[2]
    assert growth < 0.03, f"RSS grew by {growth:.1%} from epoch 2 to epoch 10 ({rss})"
