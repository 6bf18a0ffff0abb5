"""The noisy quadratic's data: Gaussian points, drawn from fixed seeds as published."""

from __future__ import annotations

import numpy as np
import torch

from deepobs.datasets.base import DataSet, Split

# Seeds of the published data (docs/datasets.md): train 42, test 43, valid 44.
TRAIN_SEED, TEST_SEED, VALID_SEED = 42, 43, 44


def gaussian_points(seed: int, size: int, dim: int, noise_level: float) -> torch.Tensor:
    """``size`` draws of N(0, noise_level² I_dim) from ``numpy.random.RandomState(seed)``."""
    points = np.random.RandomState(seed).normal(0.0, noise_level, (size, dim))
    return torch.from_numpy(points.astype(np.float32))


class Quadratic(DataSet):
    """Points x ~ N(0, 0.6² I) in R^dim; the loss of a point is ½(θ−x)ᵀQ(θ−x).

    Train, test and validation sets hold ``train_size`` points each, drawn with the
    seeds 42, 43 and 44. Train-eval is the (shuffled) training set.
    """

    name = "quadratic"

    def __init__(self, batch_size, *, dim: int = 100, train_size: int = 1000,
                 noise_level: float = 0.6, **kwargs):
        self.dim, self.train_size, self.noise_level = dim, train_size, noise_level
        self.input_shape = (dim,)
        self.train_eval_size = train_size
        super().__init__(batch_size, **kwargs)

    def _load_raw(self) -> dict:
        def make(seed):
            points = gaussian_points(seed, self.train_size, self.dim, self.noise_level)
            return Split(points, torch.zeros(self.train_size))

        return {"train": make(TRAIN_SEED), "test": make(TEST_SEED), "valid": make(VALID_SEED)}

    def _fake_raw(self, size: int) -> dict:
        # Generated data is cheap: "fake" data is the real data, just fewer points.
        def make(seed):
            return Split(gaussian_points(seed, size, self.dim, self.noise_level), torch.zeros(size))

        return {"train": make(TRAIN_SEED), "test": make(TEST_SEED), "valid": make(VALID_SEED)}
