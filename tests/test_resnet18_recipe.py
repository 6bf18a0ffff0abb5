"""cifar10_resnet18 and cifar100_resnet18 as their recipe defines them: the data pipeline
(pad 4 + crop, flip, per-channel normalisation, Cutout) on CIFAR-format files, label
smoothing 0.1, defaults and determinism."""

import math

import pytest
import torch

import deepobs
from datafiles import write_cifar100
from deepobs.datasets import CIFAR10, CIFAR100
from deepobs.datasets.augment import RECIPE_PADDING, normalize_channels
from deepobs.errors import ConfigurationError

PASSES = 40  # 40 passes over the 50 fixture images: 2,000 augmented crops


def _channel_constants(data):
    return (torch.tensor(data.channel_mean).view(1, 3, 1, 1), torch.tensor(data.channel_std).view(1, 3, 1, 1))


@pytest.fixture
def recipe_data(tmp_path):
    write_cifar100(tmp_path, train=50, test=10)
    return CIFAR100(10, data_dir=tmp_path, verify=False, protocol="1.1", pipeline="recipe", random_seed=1)


def _training_images(data):
    return torch.cat([inputs for _ in range(PASSES) for inputs, _ in data.batches("train")])


def test_recipe_evaluation_batches_are_normalised_per_channel(recipe_data):
    test = recipe_data.splits["test"]
    inputs, _ = next(recipe_data.batches("test"))
    mean, std = _channel_constants(recipe_data)
    torch.testing.assert_close(inputs, (test.inputs[:10].float() / 255 - mean) / std, atol=1e-5, rtol=0)
    assert recipe_data.channel_mean == pytest.approx((0.5071, 0.4865, 0.4409), abs=1e-4)
    assert recipe_data.channel_std == pytest.approx((0.2673, 0.2564, 0.2762), abs=1e-4)


def test_recipe_training_batches_have_one_cutout_hole(recipe_data):
    images = _training_images(recipe_data)
    assert images.shape == (PASSES * 50, 3, 32, 32) and images.dtype == torch.float32
    # After normalisation only Cutout writes exact zeros (a pixel would have to equal
    # the channel mean to the last bit); the hole covers all three channels.
    zero = (images == 0).all(dim=1)
    assert torch.equal(zero, (images == 0).any(dim=1))
    rows = zero.any(dim=2).sum(1)
    columns = zero.any(dim=1).sum(1)
    assert torch.equal(zero.flatten(1).sum(1), rows * columns)  # one rectangle per image
    assert rows.min() >= 4 and rows.max() == columns.max() == CIFAR100.cutout_size == 8
    full = ((rows == 8) & (columns == 8)).float().mean().item()
    assert abs(full - (25 / 32) ** 2) < 0.05


def test_recipe_crop_offsets_are_uniform_over_the_4_pixel_padding(recipe_data):
    images = _training_images(recipe_data)
    mean, std = _channel_constants(recipe_data)
    # Zero padding is uint8 0 before normalisation: -mean/std in every channel.
    padding = ((images - (-mean / std)).abs() < 1e-5).all(dim=1)
    hole = (images == 0).all(dim=1)
    blank = padding | hole
    # A padded row is blank all along (Cutout may cover part of it) with some padding in it.
    padded_rows = blank.all(dim=2) & padding.any(dim=2)
    top = padded_rows[:, :RECIPE_PADDING + 1].cumprod(dim=1).sum(1)
    bottom = padded_rows.flip(1)[:, :RECIPE_PADDING + 1].cumprod(dim=1).sum(1)
    assert bool(((top == 0) | (bottom == 0)).all()) and top.max() == bottom.max() == RECIPE_PADDING
    # The vertical offset (0..8 in the padded 40-pixel image) is uniform over 9 values.
    offset = RECIPE_PADDING - top + bottom
    counts = torch.bincount(offset, minlength=9).float() / len(offset)
    assert counts.shape == (9,) and bool(((counts - 1 / 9).abs() < 0.035).all())
    # Horizontal: the same, whatever the flip; about half the images are mirrored.
    padded_columns = blank.all(dim=1) & padding.any(dim=1)
    left = padded_columns[:, :RECIPE_PADDING + 1].cumprod(dim=1).sum(1)
    right = padded_columns.flip(1)[:, :RECIPE_PADDING + 1].cumprod(dim=1).sum(1)
    counts = torch.bincount(RECIPE_PADDING - left + right, minlength=9).float() / len(offset)
    assert bool(((counts - 1 / 9).abs() < 0.035).all())


def test_recipe_without_augmentation_only_normalises(tmp_path):
    write_cifar100(tmp_path, train=50, test=10)
    data = CIFAR100(10, data_dir=tmp_path, verify=False, protocol="1.1", pipeline="recipe",
                    data_augmentation=False)
    inputs, _ = next(data.batches("train"))
    assert not (inputs == 0).all(dim=1).any()
    raw = data.splits["train"].inputs
    normalised = normalize_channels(raw, data.channel_mean, data.channel_std)
    # Every training image is one of the normalised raw images, unchanged.
    matches = (inputs[:, None] - normalised[None]).abs().flatten(2).amax(2) < 1e-6
    assert bool(matches.any(dim=1).all())


def test_pipeline_and_cutout_size_are_checked(tmp_path):
    with pytest.raises(ConfigurationError, match="pipeline must be one of deepobs, recipe"):
        CIFAR10(4, fake_data=20, pipeline="torchvision")
    with pytest.raises(ConfigurationError, match="cutout_size must be >= 0"):
        CIFAR10(4, fake_data=20, pipeline="recipe", cutout_size=-1)
    assert CIFAR10(4, fake_data=20, pipeline="recipe").cutout_size == 16
    assert CIFAR10(4, fake_data=20, pipeline="recipe", cutout_size=0).cutout_size == 0


@pytest.mark.parametrize("name,classes,cutout", [("cifar10_resnet18", 10, 16), ("cifar100_resnet18", 100, 8)])
def test_resnet18_problems_use_the_recipe(name, classes, cutout):
    problem = deepobs.get_problem(name, 4, fake_data=20, protocol="1.1", device="cpu", random_seed=3).set_up()
    assert problem.data.pipeline == "recipe" and problem.data.cutout_size == cutout
    row = problem.describe()
    assert (row["batch_size"], row["num_epochs"], row["weight_decay"]) == (128, 100, 5e-4)
    assert row["loss"] == "cross-entropy, label smoothing 0.1"
    assert row["parameters"] == {10: 11_173_962, 100: 11_220_132}[classes]
    # Uniform logits: the smoothed cross-entropy is exactly ln(classes) whatever the label.
    targets = torch.arange(6) % classes
    losses = problem.loss_function(torch.zeros(6, classes), targets)
    torch.testing.assert_close(losses, torch.full((6,), math.log(classes)))
    # At initialisation with a zeroed head, the reported loss without L2 is ln(classes).
    torch.nn.init.zeros_(problem.net.fc.weight)
    torch.nn.init.zeros_(problem.net.fc.bias)
    problem.train_init_op()
    loss, _ = problem.get_batch_loss_and_accuracy(add_regularization_if_available=False)
    assert loss.item() == pytest.approx(math.log(classes), rel=1e-6)
    # Smoothing: a confident correct prediction costs 0.1 · (mean over classes of -log p).
    logits = torch.full((1, classes), -20.0)
    logits[0, 0] = 20.0
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1)
    torch.testing.assert_close(problem.loss_function(logits, torch.tensor([0])), expected.view(1))
    assert expected.item() > 0.1 * 40 * (classes - 1) / classes * 0.99


def _first_steps(seed):
    torch.manual_seed(0)  # the model's initialisation
    problem = deepobs.get_problem("cifar100_resnet18", 4, fake_data=20, protocol="1.2", device="cpu",
                                  random_seed=seed).set_up()
    problem.train_init_op()
    inputs, targets = problem._get_next_batch()
    problem.train_init_op()
    loss, _ = problem.get_batch_loss_and_accuracy()
    return inputs, targets, loss


def test_recipe_pipeline_is_deterministic_per_seed():
    first, again, other = _first_steps(5), _first_steps(5), _first_steps(6)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert torch.equal(first[2], again[2])
    assert not torch.equal(first[0], other[0])


def test_reference_setting_is_the_documented_command():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "testproblems.md").read_text()
    for name, target in (("cifar10_resnet18", 0.94), ("cifar100_resnet18", 0.73)):
        problem = deepobs.get_problem_class(name)
        assert problem.target_test_accuracy == target
    setting = deepobs.get_problem_class("cifar100_resnet18").reference_setting
    command = "deepobs-run cifar100_resnet18 " + " ".join(f"--{key} {value}" for key, value in setting.items())
    assert command in page
    assert "73 % top-1 test accuracy\non CIFAR-100 and about 94 % on CIFAR-10" in page
    assert "not yet measured here" in page
