"""Batch augmentation: TF semantics and the statistics of the random draws."""

import colorsys
import math

import numpy as np
import pytest
import torch

from deepobs.datasets import augment


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_offsets_cover_every_position_and_flip_rate_is_half():
    # Each image holds its own coordinates, so the crop tells where it came from.
    batch = 4000
    rows = torch.arange(32).view(1, 1, 32, 1).expand(batch, 1, 32, 32)
    columns = torch.arange(32).view(1, 1, 1, 32).expand(batch, 1, 32, 32)
    images = torch.cat([rows, columns], dim=1).to(torch.uint8) + 1  # 0 marks padding
    out = augment.random_crop_and_flip(images, 32, generator(), padding=2, flip=True)
    assert out.shape == (batch, 2, 32, 32) and out.dtype == torch.uint8
    # Output row i is padded row offset+i = source row offset+i-2, stored as value + 1.
    source_rows = out[:, 0, :, :].amax(dim=2).to(torch.int64) - 1
    offset = source_rows[:, 2]
    assert sorted(offset.unique().tolist()) == [0, 1, 2, 3, 4]
    counts = torch.bincount(offset, minlength=5).float() / batch
    assert torch.all((counts - 0.2).abs() < 0.03)
    # Flip: the columns of a mirrored image decrease from left to right.
    middle = out[:, 1, 16, 10:20].to(torch.int64)
    mirrored = (middle[:, 1:] < middle[:, :-1]).all(dim=1)
    straight = (middle[:, 1:] > middle[:, :-1]).all(dim=1)
    assert bool((mirrored | straight).all())
    assert abs(mirrored.float().mean().item() - 0.5) < 0.03


def test_crop_without_flip_never_mirrors_and_padding_is_zero():
    images = torch.arange(32, dtype=torch.uint8).view(1, 1, 1, 32).expand(500, 3, 32, 32) + 1
    out = augment.random_crop_and_flip(images, 32, generator(1), padding=2, flip=False)
    row = out[:, 0, 16, :].to(torch.int64)
    nonzero = row[:, 2:-2]
    assert bool((nonzero[:, 1:] > nonzero[:, :-1]).all())
    assert set(out[:, 0, 16, 0].tolist()) <= {0, 1, 2, 3}  # 0 = zero padding


def test_per_image_standardization_gives_mean_zero_std_one_and_tf_floor():
    images = torch.rand(8, 3, 32, 32, generator=generator()) * 255
    out = augment.per_image_standardization(images)
    flat = out.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(8), atol=1e-5)
    assert torch.allclose(flat.std(1, unbiased=False), torch.ones(8), atol=1e-4)
    constant = torch.full((1, 3, 32, 32), 7.0)
    # Constant image: std 0 is replaced by 1/sqrt(3072), so the result is 0, not NaN.
    assert torch.equal(augment.per_image_standardization(constant), torch.zeros(1, 3, 32, 32))
    assert math.isclose(1 / math.sqrt(3072), 0.018042, rel_tol=1e-4)


def test_saturation_matches_the_hsv_round_trip():
    rng = np.random.RandomState(0)
    pixels = rng.uniform(0, 255, (50, 3)).astype(np.float64)
    for factor in (0.5, 1.3, 3.0):
        expected = []
        for r, g, b in pixels / 255.0:
            h, s, v = colorsys.rgb_to_hsv(r, g, b)
            expected.append(colorsys.hsv_to_rgb(h, min(s * factor, 1.0), v))
        images = torch.tensor(pixels.T.reshape(1, 3, 50, 1), dtype=torch.float64)
        out = augment.adjust_saturation(images, torch.tensor(factor, dtype=torch.float64))
        got = out.reshape(3, 50).T.numpy() / 255.0
        np.testing.assert_allclose(got, np.array(expected), atol=1e-9)


def test_contrast_keeps_channel_means_and_brightness_shifts_uniformly():
    images = torch.rand(64, 3, 8, 8, generator=generator()) * 255
    out = augment.random_contrast(images, 0.2, 1.8, generator(1))
    assert torch.allclose(out.mean(dim=(2, 3)), images.mean(dim=(2, 3)), atol=1e-3)
    ratio = (out - out.mean(dim=(2, 3), keepdim=True)) / (images - images.mean(dim=(2, 3), keepdim=True))
    factors = ratio.flatten(1).median(dim=1).values
    assert factors.min() >= 0.2 - 1e-4 and factors.max() <= 1.8 + 1e-4
    shifted = augment.random_brightness(images, 63 / 255, generator(2))
    delta = (shifted - images).flatten(1)
    assert torch.allclose(delta.max(1).values, delta.min(1).values, atol=1e-4)  # one delta per image
    assert delta.abs().max() <= 63 / 255


def test_small_image_pipeline_is_reproducible_and_eval_is_deterministic():
    images = torch.randint(0, 256, (16, 3, 32, 32), generator=generator(), dtype=torch.uint8)
    first = augment.small_image_batch(images, True, generator(5), flip=True)
    second = augment.small_image_batch(images, True, generator(5), flip=True)
    assert first.dtype == torch.float32 and first.shape == (16, 3, 32, 32)
    assert torch.equal(first, second)
    evaluated = augment.small_image_batch(images, False, generator(6), flip=True)
    assert torch.equal(evaluated, augment.per_image_standardization(images.float()))


@pytest.mark.parametrize("size", [24, 32])
def test_central_crop(size):
    images = torch.arange(36 * 36).view(1, 1, 36, 36)
    crop = augment.central_crop(images, size)
    offset = (36 - size) // 2
    assert crop.shape[-1] == size and crop[0, 0, 0, 0].item() == offset * 36 + offset


def _span(mask):
    """Number of True entries of each row of ``mask`` (N, L) and the length first..last."""
    positions = torch.arange(mask.shape[1]).expand_as(mask)
    first = torch.where(mask, positions, mask.shape[1]).amin(1)
    last = torch.where(mask, positions, -1).amax(1)
    return mask.sum(1), last - first + 1


def test_cutout_zeroes_one_clipped_square_per_image_with_a_uniform_centre():
    batch, size = 4000, 8
    images = torch.ones(batch, 3, 32, 32)
    out = augment.cutout(images, size, generator(3))
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 0], zero[:, 2])  # all channels
    rows, row_span = _span(zero[:, 0].any(dim=2))
    columns, column_span = _span(zero[:, 0].any(dim=1))
    # One hole per image, a rectangle of contiguous rows and columns, at most size × size.
    assert torch.equal(zero[:, 0].flatten(1).sum(1), rows * columns)
    assert torch.equal(rows, row_span) and torch.equal(columns, column_span)
    assert rows.min() >= 1 and rows.max() == size and columns.min() >= 1 and columns.max() == size
    # Centre uniform over 0..31, hole [c-4, c+4) clipped: full 8 rows when 4 <= c <= 28,
    # with probability 25/32; the clipped holes lose 1..4 rows (c = 3..0) or 1..3 (c = 29..31).
    assert abs((rows == size).float().mean().item() - 25 / 32) < 0.03
    assert abs(((rows == size) & (columns == size)).float().mean().item() - (25 / 32) ** 2) < 0.03
    assert set(rows.unique().tolist()) == {4, 5, 6, 7, 8}
    assert torch.equal(augment.cutout(images, 0, generator(3)), images)


def test_normalize_channels_is_the_per_channel_affine_map():
    mean, std = (0.5, 0.45, 0.55), (0.2, 0.25, 0.3)
    images = torch.randint(0, 256, (64, 3, 8, 8), generator=generator(), dtype=torch.uint8)
    out = augment.normalize_channels(images, mean, std)
    expected = (images.double() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    # A large batch whose channels have the given means (spread std/4: no clipping at 0
    # or 255) comes out with channel means 0 and stds 1/4.
    spread = torch.randn(5_000, 3, 4, 4, generator=generator(1)) * torch.tensor(std).view(1, 3, 1, 1) / 4
    draws = (spread + torch.tensor(mean).view(1, 3, 1, 1)) * 255
    assert 0 < draws.min() and draws.max() < 255
    big = augment.normalize_channels(draws.round().to(torch.uint8), mean, std)
    assert big.mean(dim=(0, 2, 3)).abs().max() < 0.01
    assert (big.std(dim=(0, 2, 3)) - 0.25).abs().max() < 0.01
