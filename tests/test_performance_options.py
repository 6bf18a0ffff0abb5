"""Speed options: the automatic evaluation batch gives the same numbers, and
--amp/--channels_last/--compile work on CPU, are validated and are recorded."""

import math

import pytest
import torch

import deepobs
from deepobs.errors import ConfigurationError
from deepobs.runners import cli
from deepobs.runners.runner import StandardRunner, seed_everything
from deepobs.testproblems.base import AUTO_EVAL_EXAMPLES


def build(name, eval_batch_size=None, batch_size=None, fake_data=160, **kwargs):
    seed_everything(0)
    return deepobs.get_problem(name, batch_size, device="cpu", fake_data=fake_data, random_seed=3,
                               eval_batch_size=eval_batch_size, **kwargs).set_up()


def evaluate_all(problem):
    return {phase: problem.evaluate(phase) for phase in ("train_eval", "valid", "test")}


def assert_close(first, second, tolerance=1e-6):
    for phase in first:
        for a, b in zip(first[phase], second[phase]):
            if a is None:
                assert b is None
            else:
                assert math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance), (phase, a, b)


# ------------------------------------------------------------ automatic eval batch
@pytest.mark.parametrize("name, batch_size, expected, expected_cpu", [
    ("mnist_mlp", 128, 1024, 1024),         # 784 values per image: 1024 examples
    ("cifar10_3c3d", 128, 1024, 128),       # 3,072 values: 1,365 allowed, 1024 wanted
    ("quadratic_deep", 128, 1024, 1024),
    ("mnist_logreg", 100, 1000, 1000),      # a multiple of the training batch size
    ("fmnist_2c2d", 100, 1000, 100),
    ("tolstoi_char_rnn", 50, 50, 50),       # LSTM state runs from batch to batch
    ("fmnist_vae", 64, 64, 64),             # evaluation draws latent noise
])
def test_automatic_eval_batch_size(name, batch_size, expected, expected_cpu):
    problem = build(name, batch_size=batch_size, fake_data=200)
    assert problem.auto_eval_batch_size("cuda") == expected
    assert AUTO_EVAL_EXAMPLES == 1024
    # On a CPU bigger batches pay only without convolutions (caches spill).
    assert problem.auto_eval_batch_size() == problem.data.eval_batch_size == expected_cpu


def test_big_inputs_keep_the_training_batch_size():
    problem = build("mnist_mlp", batch_size=32, fake_data=200)
    problem.data.input_shape = (3, 256, 256)  # ImageNet-sized: 196,608 values per example
    assert problem.auto_eval_batch_size("cuda") == 32
    problem.data.input_shape = (3, 64, 64)    # 12,288 values: 341 allowed -> 10 batches of 32
    assert problem.auto_eval_batch_size("cuda:0") == 320


def test_given_eval_batch_size_is_kept():
    assert build("mnist_mlp", eval_batch_size=256, fake_data=200).data.eval_batch_size == 256


@pytest.mark.parametrize("name", ["mnist_mlp", "cifar10_3c3d", "quadratic_deep"])
def test_gpu_eval_batch_gives_the_training_batch_numbers(name):
    automatic = build(name, batch_size=16, eval_batch_size=1024)  # the automatic size on a GPU
    reference = build(name, batch_size=16, eval_batch_size=16)
    assert automatic.data.eval_batch_size == 1024 and reference.data.eval_batch_size == 16
    first, second = evaluate_all(automatic), evaluate_all(reference)
    assert_close(first, second)
    # The augmented train-eval pass drew the same numbers: the streams stay in step.
    assert torch.equal(automatic.data.augment_generator.get_state(),
                       reference.data.augment_generator.get_state())


def test_train_eval_augmentation_identical_at_any_eval_batch_size():
    # 25 is no multiple of 16: augmented passes round it to whole training batches.
    odd = build("cifar10_3c3d", batch_size=16, eval_batch_size=25)
    reference = build("cifar10_3c3d", batch_size=16, eval_batch_size=16)
    odd_images = torch.cat([inputs for inputs, _ in odd.data.eval_batches("train_eval")])
    reference_images = torch.cat([inputs for inputs, _ in reference.data.eval_batches("train_eval")])
    assert odd_images.shape == reference_images.shape == (128, 3, 32, 32)
    assert torch.equal(odd_images, reference_images)
    assert [len(t) for _, t in odd.data.eval_batches("train_eval")] == [16] * 8
    assert [len(t) for _, t in odd.data.eval_batches("test")] == [25, 25, 25, 5]  # 80 = 5 × 16


def run(problem="quadratic_deep", **kwargs):
    runner = StandardRunner(torch.optim.SGD, {"lr": {"type": float}})
    kwargs.setdefault("fake_data", 160)
    return runner.run(problem, {"lr": 0.01}, batch_size=16, num_epochs=1, random_seed=5, no_logs=True,
                      quiet=True, device="cpu", **kwargs)


def test_runner_results_equal_at_large_and_training_eval_batch():
    automatic, reference = run("mnist_logreg"), run("mnist_logreg", eval_batch_size=16)
    assert automatic["eval_batch_size"] == 1024 and reference["eval_batch_size"] == 16
    for key in ("train_losses", "valid_losses", "test_losses", "train_accuracies", "test_accuracies",
                "minibatch_train_losses"):
        assert len(automatic[key]) == len(reference[key]) > 0
        for a, b in zip(automatic[key], reference[key]):
            assert math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7), (key, a, b)
    assert automatic["config_hash"] == reference["config_hash"]
    assert (automatic["amp"], automatic["compile"], automatic["channels_last"]) == (None, None, False)
    assert automatic["num_threads"] == torch.get_num_threads()


# ----------------------------------------------------------------------- options
def test_bf16_autocast_on_cpu_changes_numbers_a_little_and_is_recorded():
    fp32, bf16 = run("mnist_logreg"), run("mnist_logreg", amp="bf16")
    assert bf16["amp"] == "bf16"
    assert bf16["config_hash"] != fp32["config_hash"]
    assert bf16["test_losses"] != fp32["test_losses"]
    for a, b in zip(bf16["test_losses"], fp32["test_losses"]):
        assert math.isfinite(a) and abs(a - b) < 0.05 * abs(b)
    problem = build("mnist_mlp", batch_size=16).set_performance_options(amp="bf16")
    problem.train_init_op()
    loss, accuracy = problem.get_batch_loss_and_accuracy()
    assert loss.dtype == torch.float32 and 0.0 <= float(accuracy) <= 1.0


def test_channels_last_gives_the_same_numbers():
    plain = build("fmnist_2c2d", batch_size=16, fake_data=100)
    fast = build("fmnist_2c2d", batch_size=16, fake_data=100).set_performance_options(channels_last=True)
    conv_weight = next(p for p in fast.net.parameters() if p.dim() == 4)
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)
    assert_close({"test": plain.evaluate("test")}, {"test": fast.evaluate("test")}, tolerance=1e-5)
    losses = []
    for problem in (plain, fast):  # one training step each: same loss, same updated weights
        problem.train_init_op()
        optimizer = torch.optim.SGD(problem.net.parameters(), lr=0.1)
        loss, _ = problem.get_batch_loss_and_accuracy()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert math.isclose(*losses, rel_tol=1e-5)
    for a, b in zip(plain.net.parameters(), fast.net.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    result = run("quadratic_deep", channels_last=True)  # no 4-D tensors: a no-op, recorded
    assert result["channels_last"] is True and len(result["test_losses"]) == 2


@pytest.mark.slow
def test_compiled_model_gives_the_same_numbers():
    plain = build("mnist_mlp", batch_size=16)
    fast = build("mnist_mlp", batch_size=16).set_performance_options(compile_mode="default")
    assert_close(evaluate_all(plain), evaluate_all(fast), tolerance=1e-5)
    assert list(fast.net.state_dict()) == list(plain.net.state_dict())  # checkpoints unchanged
    result = run("quadratic_deep", compile_mode="default")
    assert result["compile"] == "default"


@pytest.mark.parametrize("kwargs, message", [
    ({"amp": "fp8"}, "amp must be one of bf16, got 'fp8'"),
    ({"compile_mode": "fastest"}, "compile_mode must be one of default, reduce-overhead, max-autotune"),
])
def test_bad_options_are_configuration_errors(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        run(**kwargs)


def test_options_need_a_set_up_problem():
    with pytest.raises(RuntimeError, match="set_up"):
        deepobs.get_problem("quadratic_deep", device="cpu").set_performance_options(amp="bf16")


def test_command_line_flags(capsys):
    parser = cli.build_run_parser({"lr": {"type": float}})
    args = vars(parser.parse_args(["quadratic_deep", "--optimizer", "sgd", "--lr", "0.1", "--compile",
                                   "--amp", "bf16", "--channels_last"]))
    assert (args["compile_mode"], args["amp"], args["channels_last"]) == ("default", "bf16", True)
    args = vars(parser.parse_args(["quadratic_deep", "--optimizer", "sgd", "--lr", "0.1",
                                   "--compile", "reduce-overhead"]))
    assert args["compile_mode"] == "reduce-overhead" and args["amp"] is None
    with pytest.raises(SystemExit) as exit_status:
        cli.main(["quadratic_deep", "--optimizer", "sgd", "--lr", "0.1", "--amp", "fp16"])
    assert exit_status.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
