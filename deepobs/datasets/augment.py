"""Whole-batch image preprocessing and augmentation with TensorFlow's semantics.

Every function takes a batch (N, C, H, W) on any device and, when random, a
``torch.Generator`` on that device: one draw per image, no per-sample Python.
The colour distortions work on the 0-255 float scale, as DeepOBS's TF input
pipelines do. ``recipe_image_batch`` is the ResNet-18 CIFAR recipe's pipeline
(pad 4, crop, flip, per-channel normalisation, Cutout), not a DeepOBS one.
"""

from __future__ import annotations

import math

import torch

#: DeepOBS's CIFAR/SVHN distortions (TF 1.x ``tf.image.random_*`` arguments).
BRIGHTNESS_MAX_DELTA = 63.0 / 255.0
SATURATION_RANGE = (0.5, 1.5)
CONTRAST_RANGE = (0.2, 1.8)
#: Zero padding before the random 32×32 crop of the ResNet-18 recipe (DeepOBS: 2).
RECIPE_PADDING = 4


def _uniform(batch: int, low: float, high: float, like: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:
    """One uniform draw in [low, high) per image, shaped (N, 1, 1, 1) for broadcasting."""
    draws = torch.rand(batch, generator=generator, device=like.device, dtype=torch.float32)
    return (low + (high - low) * draws).view(batch, 1, 1, 1)


def random_crop_and_flip(images: torch.Tensor, size: int, generator: torch.Generator, *,
                         padding: int = 0, flip: bool = True) -> torch.Tensor:
    """Zero-pad by ``padding``, take a random ``size``×``size`` crop, mirror half the images.

    TF's ``resize_image_with_crop_or_pad`` + ``random_crop`` + ``random_flip_left_right``,
    done as one gather per batch (works on uint8, so it runs before the float cast).
    Offsets are uniform over every valid position.
    """
    batch, channels, height, width = images.shape
    if padding:
        images = torch.nn.functional.pad(images, (padding, padding, padding, padding))
        height, width = height + 2 * padding, width + 2 * padding
    device = images.device
    top = torch.randint(0, height - size + 1, (batch,), generator=generator, device=device)
    left = torch.randint(0, width - size + 1, (batch,), generator=generator, device=device)
    steps = torch.arange(size, device=device)
    columns = steps.expand(batch, size)
    if flip:
        mirrored = torch.rand(batch, generator=generator, device=device) < 0.5
        columns = torch.where(mirrored[:, None], size - 1 - steps, steps)
    # Flat position (row * width + column) of every output pixel in its padded image.
    rows = (top[:, None] + steps) * width                               # (N, size)
    flat = (rows[:, :, None] + (left[:, None] + columns)[:, None, :]).reshape(batch, 1, size * size)
    gathered = images.reshape(batch, channels, height * width).gather(
        2, flat.expand(batch, channels, size * size))
    return gathered.reshape(batch, channels, size, size)


def central_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size``×``size`` window of every image (TF's eval crop)."""
    height, width = images.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top:top + size, left:left + size]


def random_brightness(images: torch.Tensor, max_delta: float, generator: torch.Generator) -> torch.Tensor:
    """Add one delta ~ U[-max_delta, max_delta) per image (``tf.image.random_brightness``)."""
    return images + _uniform(images.shape[0], -max_delta, max_delta, images, generator)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale the HSV saturation of RGB images by ``factor`` (N, 1, 1, 1), clipped to 1.

    In HSV every channel is ``value - value·saturation·k(hue)``, so scaling the
    saturation s = chroma/value by ``r = min(s·factor, 1)/s = min(factor, value/chroma)``
    with hue and value fixed moves each channel away from (or towards) the per-pixel
    maximum by ``r``: the exact result of TF's RGB→HSV→RGB round trip, without the round
    trip. Pixels with value <= 0 have saturation 0 in TF and come out grey (r = 0).
    Works on any value scale.
    """
    value = images.amax(dim=1, keepdim=True)
    chroma = value - images.amin(dim=1, keepdim=True)
    ratio = torch.minimum(factor, value / chroma.clamp_min(1e-20))
    ratio = torch.where(value > 0, ratio, torch.zeros((), dtype=images.dtype, device=images.device))
    return value - (value - images) * ratio


def random_saturation(images: torch.Tensor, lower: float, upper: float,
                      generator: torch.Generator) -> torch.Tensor:
    """``tf.image.random_saturation``: one factor ~ U[lower, upper) per image."""
    return adjust_saturation(images, _uniform(images.shape[0], lower, upper, images, generator))


def random_contrast(images: torch.Tensor, lower: float, upper: float,
                    generator: torch.Generator) -> torch.Tensor:
    """``tf.image.random_contrast``: (x - channel mean)·factor + channel mean, per image."""
    factor = _uniform(images.shape[0], lower, upper, images, generator)
    mean = images.mean(dim=(2, 3), keepdim=True)
    return (images - mean) * factor + mean


def per_image_standardization(images: torch.Tensor) -> torch.Tensor:
    """(x - mean) / max(std, 1/sqrt(N)) over all values of each image, as TF does."""
    flat = images.flatten(1)
    # Two passes over centred values (torch.var is much slower on CPU).
    centred = flat - flat.mean(dim=1, keepdim=True)
    std = centred.square().mean(dim=1, keepdim=True).sqrt_()
    scale = std.clamp_min_(1.0 / math.sqrt(flat.shape[1]))
    return centred.div_(scale).view_as(images)


def distort_colors(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DeepOBS's brightness, saturation, contrast distortions in TF's order (0-255 scale)."""
    images = random_brightness(images, BRIGHTNESS_MAX_DELTA, generator)
    images = random_saturation(images, *SATURATION_RANGE, generator)
    return random_contrast(images, *CONTRAST_RANGE, generator)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero one square hole of side ``size`` per image (DeVries & Taylor 2017, "Cutout").

    The hole's centre is uniform over all pixels and the square is clipped at the
    borders (rows ``[cy - size//2, cy - size//2 + size)``, the same for columns), as in
    the paper's code, so a hole near an edge is smaller. Built as one mask per batch.
    """
    if size <= 0:
        return images
    batch, _, height, width = images.shape
    device = images.device
    centre_y = torch.randint(0, height, (batch, 1), generator=generator, device=device)
    centre_x = torch.randint(0, width, (batch, 1), generator=generator, device=device)
    rows = torch.arange(height, device=device) - (centre_y - size // 2)  # (N, H)
    columns = torch.arange(width, device=device) - (centre_x - size // 2)  # (N, W)
    inside_rows = (rows >= 0) & (rows < size)
    inside_columns = (columns >= 0) & (columns < size)
    hole = inside_rows[:, :, None] & inside_columns[:, None, :]  # (N, H, W)
    return images.masked_fill(hole[:, None], 0)


def normalize_channels(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (0-255) images to ``(x / 255 - mean_c) / std_c`` per channel, float32.

    One fused multiply-add per value: ``x · (1 / (255 std_c)) - mean_c / std_c``.
    ``mean`` and ``std`` may be sequences or tensors; tensors already on the images'
    device avoid a host-to-device copy per batch.
    """
    mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return torch.addcmul(-mean / std, images.float(), 1.0 / (255.0 * std))


def recipe_image_batch(images: torch.Tensor, train: bool, generator: torch.Generator, *,
                       mean, std, cutout_size: int, padding: int = RECIPE_PADDING,
                       flip: bool = True) -> torch.Tensor:
    """The ResNet-18 CIFAR recipe's pipeline: uint8 (N, 3, 32, 32) to float32.

    Training: zero-pad ``padding`` + random 32 crop (+ flip) on the uint8 images,
    per-channel normalisation, then Cutout (the hole is 0 after normalisation, i.e.
    the data set's mean colour, as in the Cutout paper's code). Evaluation:
    normalisation only.
    """
    if train:
        images = random_crop_and_flip(images, images.shape[-1], generator, padding=padding, flip=flip)
        return cutout(normalize_channels(images, mean, std), cutout_size, generator)
    return normalize_channels(images, mean, std)


def small_image_batch(images: torch.Tensor, train: bool, generator: torch.Generator, *,
                      flip: bool) -> torch.Tensor:
    """CIFAR/SVHN pipeline: uint8 (N, 3, 32, 32) to standardised float32 (N, 3, 32, 32).

    Training: pad 2 + random 32 crop (+ flip), colour distortions, standardisation.
    Evaluation: standardisation only (TF's central 32 crop of a 32 image is a no-op).
    """
    if train:
        images = random_crop_and_flip(images, images.shape[-1], generator, padding=2, flip=flip)
        images = distort_colors(images.float(), generator)
    else:
        images = images.float()
    return per_image_standardization(images)


__all__ = [
    "random_crop_and_flip", "central_crop", "random_brightness", "adjust_saturation",
    "random_saturation", "random_contrast", "per_image_standardization", "distort_colors",
    "small_image_batch", "cutout", "normalize_channels", "recipe_image_batch",
    "BRIGHTNESS_MAX_DELTA", "SATURATION_RANGE", "CONTRAST_RANGE", "RECIPE_PADDING",
]
