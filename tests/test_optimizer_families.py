"""Every optimizer family through prepare_optimizer, the runner and deepobs-run: plain,
model-taking, factories, matrix optimizers with a fallback, closures, Hessian-based,
wrappers, train/eval modes; exact resume; one-line errors."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch
from torch import nn

from deepobs import StandardRunner
from deepobs.errors import ConfigurationError
from deepobs.runners.cli import main
from deepobs.runners.optimizer_setup import (PreparedOptimizer, companion, prepare_optimizer,
                                             split_matrix_parameters)
from deepobs.runners.optimizers import parse_hyperparameter_value, resolve_optimizer

pytorch_optimizer = pytest.importorskip(
    "pytorch_optimizer", reason="pytorch_optimizer is not installed (pip install -e '.[optimizers]')")
schedulefree = pytest.importorskip(
    "schedulefree", reason="schedulefree is not installed (pip install -e '.[optimizers]')")

CONTEXT = {"num_train_examples": 64, "steps_per_epoch": 4, "num_epochs": 2, "total_steps": 8, "batch_size": 16}


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def batches(seed: int = 1, count: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 10, generator=generator), torch.randint(0, 3, (16,), generator=generator))
            for _ in range(count)]


def batch_fn(model, batch, calls=None):
    inputs, targets = batch

    def evaluate():
        if calls is not None:
            calls.append(id(batch))
        return nn.functional.cross_entropy(model(inputs), targets), None

    return evaluate


def prepared(name: str, model, base=None, fallback=None, **given) -> PreparedOptimizer:
    spec = resolve_optimizer(name)
    hyperparams = {k: v["default"] for k, v in spec.hyperparameters.items() if "default" in v}
    hyperparams.update(given)
    return prepare_optimizer(spec, model, hyperparams, context=CONTEXT, base=companion(base),
                             fallback=companion(fallback))


def train(model, optimizer, steps: int = 6, data=None) -> list:
    data = data or batches()
    return [float(optimizer.train_step(batch_fn(model, data[step % len(data)]))) for step in range(steps)]


def build_with_model(model, lr=0.05):
    """A factory: the first argument is the model."""
    return torch.optim.SGD(model.parameters(), lr=lr)


class NamedSGD(torch.optim.SGD):
    """An optimizer that asks for named parameters."""

    def __init__(self, named_parameters, lr=0.05):
        self.names = [name for name, _ in named_parameters]
        super().__init__([p for _, p in named_parameters], lr=lr)


@pytest.mark.parametrize("name, family", [
    ("adam", "plain"),
    ("adammini", "model"),
    ("lomo", "fused_backward"),
    ("torch.optim.Muon", "matrix"),
    ("pytorch_optimizer.Muon", "matrix"),
    ("aliG", "closure"),
    ("adahessian", "hessian"),
    ("sophiah", "hessian"),
    ("sam", "wrapper"),
    ("bsam", "closure"),
    ("lookahead", "wrapper"),
    ("prodigy", "plain"),
    ("ranger21", "plain"),
    ("schedulefree.AdamWScheduleFree", "train_eval"),
    ("splus", "train_eval"),
])
def test_each_family_trains_with_its_defaults(name, family):
    model = tiny_model()
    optimizer = prepared(name, model)
    assert optimizer.family == family and optimizer.record["family"] == family
    losses = train(model, optimizer)
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] != losses[0]


def test_factory_and_named_parameters_are_passed_as_asked():
    from deepobs.runners.optimizers import OptimizerSpec

    model = tiny_model()
    spec = OptimizerSpec("Factory", build_with_model, {"lr": {"type": float, "default": 0.05}})
    optimizer = prepare_optimizer(spec, model, {"lr": 0.05}, context=CONTEXT)
    assert optimizer.record["parameters"] == "factory(model)" and optimizer.family == "model"
    assert train(model, optimizer)[-1] < train(tiny_model(), prepared("sgd", tiny_model(), lr=0.0))[-1]
    spec = OptimizerSpec("Named", NamedSGD, {"lr": {"type": float, "default": 0.05}})
    optimizer = prepare_optimizer(spec, model, {"lr": 0.05}, context=CONTEXT)
    assert optimizer.record["parameters"] == "named_parameters"
    assert optimizer.optimizers[0].names == [name for name, _ in model.named_parameters()]


class WithEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.conv = nn.Conv1d(8, 8, 3)
        self.norm = nn.LayerNorm(8)
        self.hidden = nn.Linear(8, 8)
        self.head = nn.Linear(8, 4)


def test_matrix_split_follows_the_muon_recommendation():
    model = WithEmbedding()
    matrices, rest = split_matrix_parameters(model, flatten=False)
    assert [name for name, _ in matrices] == ["hidden.weight"]
    assert {name for name, _ in rest} == {"embed.weight", "conv.weight", "conv.bias", "norm.weight",
                                          "norm.bias", "hidden.bias", "head.weight", "head.bias"}
    matrices, _ = split_matrix_parameters(model, flatten=True)  # conv kernels too
    assert [name for name, _ in matrices] == ["conv.weight", "hidden.weight"]


def test_matrix_optimizer_records_the_split_and_trains_the_rest_with_the_fallback():
    model = tiny_model()
    optimizer = prepared("torch.optim.Muon", model, fallback=("adam", {"lr": 0.01}))
    split = optimizer.record["split"]
    assert split["matrix"]["count"] == 2 and [t["name"] for t in split["matrix"]["tensors"]] == ["0.weight", "2.weight"]
    assert split["fallback"]["optimizer"] == "Adam" and split["fallback"]["count"] == 4
    assert split["fallback"]["hyperparams"]["lr"] == 0.01
    assert len(optimizer.optimizers) == 2 and len(optimizer.param_groups) == 2
    before = [p.detach().clone() for p in model.parameters()]
    train(model, optimizer, steps=2)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # every tensor trained
    # pytorch_optimizer's Muon family: its own AdamW groups, unless a fallback is given
    own = prepared("pytorch_optimizer.Muon", tiny_model())
    assert [g["use_muon"] for g in own.param_groups] == [True, False] and len(own.optimizers) == 1
    separate = prepared("pytorch_optimizer.Muon", tiny_model(), fallback="sgd")
    assert len(separate.optimizers) == 2 and separate.record["split"]["fallback"]["optimizer"] == "SGD"


def test_a_matrix_optimizer_without_matrices_and_a_misplaced_companion_are_one_line_errors():
    with pytest.raises(ConfigurationError, match="no hidden weight matrix"):
        prepared("torch.optim.Muon", nn.Sequential(nn.Linear(4, 2)))
    with pytest.raises(ConfigurationError, match="--fallback_optimizer is for matrix optimizers"):
        prepared("adam", tiny_model(), fallback="sgd")
    with pytest.raises(ConfigurationError, match="--base_optimizer is for"):
        prepared("adam", tiny_model(), base="sgd")


def test_closure_optimizers_re_evaluate_the_same_batch():
    model = tiny_model()
    optimizer = prepared("lbfgs", model, max_iter=4)
    data = batches()
    calls = []
    optimizer.train_step(batch_fn(model, data[0], calls))
    assert len(calls) > 1 and set(calls) == {id(data[0])}
    sam = prepared("sam", model, base=("momentum", {"lr": 0.01}))
    calls.clear()
    sam.train_step(batch_fn(model, data[1], calls))
    assert calls == [id(data[1])] * 2  # at the weights, then at the perturbed weights


def test_the_problem_batch_closure_gives_the_same_batch_twice():
    from deepobs.registry import get_problem_class

    problem = get_problem_class("mnist_mlp")(64, fake_data=256, device="cpu").set_up()
    problem.train_init_op()
    batch = problem.get_batch_loss_and_accuracy_func()
    first, second = batch()[0], batch()[0]
    assert torch.equal(first, second)


def test_hessian_optimizers_get_create_graph():
    model = tiny_model()
    optimizer = prepared("adahessian", model)
    backward = torch.Tensor.backward
    with mock.patch.object(torch.Tensor, "backward", autospec=True, side_effect=backward) as spy:
        optimizer.train_step(batch_fn(model, batches()[0]))
    assert spy.call_args.kwargs.get("create_graph") is True
    plain = prepared("adam", model)
    with mock.patch.object(torch.Tensor, "backward", autospec=True, side_effect=backward) as spy:
        plain.train_step(batch_fn(model, batches()[0]))
    assert not spy.call_args.kwargs.get("create_graph")


def test_wrappers_take_the_named_base_and_its_hyperparameters():
    model = tiny_model()
    optimizer = prepared("sam", model, base=("momentum", {"lr": 0.02}))
    assert optimizer.record["base"] == {"optimizer": "Momentum", "passed": "class and keyword arguments",
                                        "hyperparams": {"lr": 0.02, "momentum": 0.99, "nesterov": False}}
    assert optimizer.param_groups[0]["momentum"] == 0.99 and optimizer.param_groups[0]["lr"] == 0.02
    lookahead = prepared("lookahead", tiny_model())  # no base given: the documented default, SGD
    assert lookahead.record["base"]["optimizer"] == "SGD" and lookahead.record["base"]["passed"] == "instance"
    assert prepared("bsam", tiny_model()).record["runner_supplied"] == {"num_data": 64}
    assert prepared("ranger21", tiny_model()).record["runner_supplied"] == {"num_iterations": 8}


def _round_trip(name, steps_before=3, steps_after=3, **kwargs):
    data = batches(count=6)
    model = tiny_model()
    optimizer = prepared(name, model, **kwargs)
    train(model, optimizer, steps_before, data)
    optimizer.eval()  # the runner checkpoints in evaluation mode
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    optimizer.train()
    train(model, optimizer, steps_after, data[steps_before:])
    expected = [p.detach().clone() for p in model.parameters()]

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed_model = tiny_model(seed=7)  # other weights: everything must come from the checkpoint
    resumed = prepared(name, resumed_model, **kwargs)
    resumed_model.load_state_dict(saved["model"])
    resumed.load_state_dict(saved["optimizer"])
    resumed.train()
    train(resumed_model, resumed, steps_after, data[steps_before:])
    return expected, list(resumed_model.parameters())


@pytest.mark.parametrize("name, kwargs", [
    ("torch.optim.Muon", {"fallback": ("adam", {"lr": 0.01})}),
    ("sam", {"base": ("adam", {"lr": 0.01})}),
    ("lookahead", {"base": ("momentum", {"lr": 0.01}), "k": 2}),
    ("schedulefree.AdamWScheduleFree", {}),
    ("schedulefreewrapper", {}),
    ("schedulefree.ScheduleFreeWrapper", {}),  # keeps its mode outside its state dict
])
def test_resume_continues_bit_identically(name, kwargs):
    expected, resumed = _round_trip(name, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(expected, resumed))


def test_the_runner_switches_schedule_free_optimizers_to_eval_for_every_evaluation():
    cls = schedulefree.AdamWScheduleFree
    calls = []

    def spy(mode):
        original = getattr(cls, mode)
        return lambda self: (calls.append(mode), original(self))[1]

    with mock.patch.object(cls, "eval", autospec=True, side_effect=spy("eval")), \
            mock.patch.object(cls, "train", autospec=True, side_effect=spy("train")):
        spec = resolve_optimizer("schedulefree.AdamWScheduleFree")
        output = StandardRunner(spec.build, spec.hyperparameters).run(
            "quadratic_deep", {"lr": 0.01}, num_epochs=2, no_logs=True, device="cpu", quiet=True)
    # eval() before the evaluations of epochs 1 and 2 (at epoch 0 there is nothing to
    # average yet: x = y), train() before the training pass after each
    assert calls.count("eval") == 2 and calls[-3:] == ["eval", "train", "eval"]
    assert output["optimizer_setup"]["family"] == "train_eval"


def test_hyperparameter_values_from_the_command_line():
    assert parse_hyperparameter_value("inf", {"type": float}) == math.inf
    assert parse_hyperparameter_value("(0.9, 0.99)", {"type": tuple, "default": (0.9, 0.999)}) == (0.9, 0.99)
    assert parse_hyperparameter_value("0.8,0.9", {"type": tuple}) == (0.8, 0.9)
    assert parse_hyperparameter_value("None", {"type": float, "default": None}) is None
    assert parse_hyperparameter_value("true", {"type": bool}) is True
    assert parse_hyperparameter_value("[1, 'a']", {"type": object}) == [1, "a"]
    assert parse_hyperparameter_value("none", {"type": str, "default": "none"}) == "none"  # Lookahead
    assert parse_hyperparameter_value("None", {"type": str, "default": None}) is None
    for text, entry in (("abc", {"type": float}), ("None", {"type": float, "default": 0.1}),
                        ("(1, 2, 3)", {"type": tuple, "default": (0.9, 0.99)})):
        with pytest.raises(ValueError):
            parse_hyperparameter_value(text, entry)
    prodigy = resolve_optimizer("prodigy").hyperparameters
    assert prodigy["growth_rate"] == {"type": float, "default": math.inf}
    assert prodigy["beta3"] == {"type": float, "default": None}


def _cli(capsys, *argv):
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_command_line_runs_without_lr_and_with_a_base_optimizer(capsys):
    status, out, err = _cli(capsys, "quadratic_deep", "--optimizer", "adam", "-N", "1", "--no_logs",
                            "--device", "cpu")
    assert status == 0 and "learning rate 0.001" in out, err
    status, out, err = _cli(capsys, "quadratic_deep", "--optimizer", "prodigy", "-N", "1", "--no_logs",
                            "--device", "cpu", "--growth_rate", "inf", "--betas", "(0.9, 0.99)")
    assert status == 0, err
    status, out, err = _cli(capsys, "quadratic_deep", "--optimizer", "sam", "--base_optimizer", "momentum",
                            "--base_lr", "0.01", "--base_momentum", "0.9", "-N", "1", "--no_logs",
                            "--device", "cpu")
    assert status == 0 and "(wrapper)" in out, err


def test_missing_and_broken_optimizers_are_one_line_errors(capsys, tmp_path, monkeypatch):
    (tmp_path / "myopt.py").write_text(
        "import torch\n\nclass NeedsGamma(torch.optim.SGD):\n"
        "    def __init__(self, params, gamma, lr=0.1):\n        super().__init__(params, lr=lr)\n\n"
        "class NoLr(torch.optim.SGD):\n"
        "    def __init__(self, params, lr=None):\n        super().__init__(params, lr=lr)\n")
    (tmp_path / "broken.py").write_text("import no_such_package_xyz\n")
    monkeypatch.chdir(tmp_path)  # a dotted path imports from the current folder, as python does
    for argv, message in (
            (["--optimizer", "myopt.NeedsGamma"], "missing hyperparameter(s) for NeedsGamma: --gamma"),
            (["--optimizer", "myopt.NoLr"], "(its default lr is None: give one, e.g. --lr 1e-3)"),
            (["--optimizer", "broken.Opt"], "No module named 'no_such_package_xyz'"),
            (["--optimizer", "myopt.Missing"], "has no attribute 'Missing'"),
            (["--optimizer", "torch.optim.SparseAdam"], "SparseAdam does not support dense gradients"),
            (["--optimizer", "adam", "--fallback_optimizer", "sgd"], "--fallback_optimizer is for"),
            (["--optimizer", "sam", "--base_optimizer", "adam", "--base_beta1", "x"], "invalid float value")):
        status, _, err = _cli(capsys, "quadratic_deep", *argv, "-N", "1", "--no_logs", "--device", "cpu")
        lines = err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and message in lines[0], (argv, err)
        assert "Traceback" not in err


def _in_a_fresh_process(code: str) -> str:
    """Run ``code`` in its own Python (it changes process-wide state: a process group, a
    memory ceiling); returns its stdout, failing the test with its stderr."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_optimizers_written_for_torch_distributed_run_in_a_one_process_group():
    out = _in_a_fresh_process(
        "import torch\nfrom torch import nn\n"
        "from deepobs.runners.optimizer_setup import prepare_optimizer\n"
        "from deepobs.runners.optimizers import resolve_optimizer\n"
        "import torch.distributed as dist\n"
        "for name in ('distributedmuon', 'demo'):\n"
        "    torch.manual_seed(0)\n"
        "    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))\n"
        "    spec = resolve_optimizer(name)\n"
        "    defaults = {k: v['default'] for k, v in spec.hyperparameters.items() if 'default' in v}\n"
        f"    opt = prepare_optimizer(spec, model, defaults, context={CONTEXT!r})\n"
        "    x, y = torch.randn(8, 10), torch.randint(0, 3, (8,))\n"
        "    before = [p.detach().clone() for p in model.parameters()]\n"
        "    opt.train_step(lambda: (nn.functional.cross_entropy(model(x), y), None))\n"
        "    moved = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))\n"
        "    print(name, 'single_process_group' in opt.record['traits'], moved, dist.get_world_size())\n")
    lines = out.split("\n")
    # The first builds the group; the second finds it and uses it.
    assert lines[0] == "distributedmuon True True 1" and lines[1] == "demo False True 1", out


def test_a_module_written_for_torch_distributed_is_recognised(tmp_path, monkeypatch):
    """Keller Jordan's ``muon.Muon`` calls ``dist.get_world_size()`` in its step: a module
    that imports torch.distributed gets a one-process group; torch's own optimizers do not."""
    from deepobs.runners.optimizer_setup import uses_torch_distributed

    (tmp_path / "ddp_opt.py").write_text(
        "import torch\nimport torch.distributed as dist\n\nclass WorldSGD(torch.optim.SGD):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import ddp_opt

    assert uses_torch_distributed(ddp_opt.WorldSGD)
    assert not uses_torch_distributed(torch.optim.SGD) and not uses_torch_distributed(torch.optim.Muon)
    assert uses_torch_distributed(pytorch_optimizer.DistributedMuon)
