"""quadratic_deep and the 2-D problems, exactly as published."""

import math

import numpy as np
import pytest
import torch

import deepobs
from deepobs.models.quadratic import deep_learning_hessian


def set_up(name, **kwargs):
    torch.manual_seed(42)
    return deepobs.get_problem(name, device="cpu", **kwargs).set_up()


def test_hessian_is_the_published_one_for_every_instance():
    first, second = deep_learning_hessian(), deep_learning_hessian()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, first.T, atol=1e-10)
    eigenvalues = np.sort(np.linalg.eigvalsh(first))
    assert np.all((eigenvalues[:90] > 0) & (eigenvalues[:90] < 1))
    assert np.all((eigenvalues[90:] > 30) & (eigenvalues[90:] < 60))
    # The draws of RandomState(42): 90 x U(0,1) then 10 x U(30,60).
    rng = np.random.RandomState(42)
    expected = np.sort(np.concatenate([rng.uniform(0, 1, 90), rng.uniform(30, 60, 10)]))
    np.testing.assert_allclose(eigenvalues, expected, rtol=1e-9, atol=1e-9)


def test_quadratic_epoch0_test_loss_is_the_published_353_4468():
    problem = set_up("quadratic_deep", protocol="1.1")
    loss, accuracy = problem.evaluate("test")
    assert round(loss, 4) == 353.4468
    assert accuracy is None


def test_quadratic_deepobs_api_gives_the_same_test_loss():
    problem = set_up("quadratic_deep", protocol="1.1")
    problem.test_init_op()
    losses = []
    while True:
        try:
            loss, accuracy = problem.get_batch_loss_and_accuracy()
        except StopIteration:
            break
        losses.append(loss.item())
        assert accuracy is None and not loss.requires_grad
    assert len(losses) == 7  # 1,000 points, batch 128, drop-last
    assert np.mean(losses) == pytest.approx(353.4468, abs=1e-3)


def test_quadratic_splits_per_protocol():
    published = set_up("quadratic_deep", protocol="1.1")
    assert not published.data.has_validation
    assert published.data.num_batches("train") == 7
    assert published.data.num_batches("train_eval") == 7
    default = set_up("quadratic_deep")
    assert default.data.has_validation and len(default.data.splits["valid"]) == 1000
    # Train, test and validation points come from the seeds 42, 43 and 44.
    for split, seed in (("train", 42), ("test", 43), ("valid", 44)):
        expected = np.random.RandomState(seed).normal(0.0, 0.6, (1000, 100)).astype(np.float32)
        np.testing.assert_array_equal(default.data.splits[split].inputs.numpy(), expected)


@pytest.mark.parametrize("name, start, value", [
    ("two_d_beale", (-4.5, 4.5), None),
    ("two_d_branin", (2.5, 12.5), None),
    ("two_d_rosenbrock", (-0.5, 1.5), (1 + 0.5) ** 2 + 100 * (1.5 - 0.25) ** 2),
])
def test_two_d_test_loss_is_the_noiseless_function_at_the_start(name, start, value):
    problem = set_up(name)
    assert problem.num_parameters() == 2
    function = type(problem).function
    expected = function(torch.tensor(start[0]), torch.tensor(start[1])).item()
    if value is not None:
        assert expected == pytest.approx(value)
    loss, accuracy = problem.evaluate("test")
    assert loss == pytest.approx(expected, rel=1e-6) and accuracy is None
    assert len(problem.data.splits["train"]) == 10_000
    train_loss, _ = problem.evaluate("train_eval")
    assert math.isfinite(train_loss) and train_loss != loss


def test_branin_at_a_known_minimum():
    from deepobs.models.two_d import branin

    value = branin(torch.tensor(math.pi), torch.tensor(2.275)).item()
    assert value == pytest.approx(0.397887, abs=1e-5)


def test_regularization_is_zero_without_groups_and_weight_decay_is_ignored():
    with pytest.warns(UserWarning, match="no regularization"):
        problem = deepobs.get_problem("quadratic_deep", weight_decay=0.1, device="cpu")
    problem.set_up()
    assert problem.weight_decay is None
    assert problem.get_regularization_loss().item() == 0.0
