"""Data of the 2-D test functions: Gaussian noise for training, zeros for testing."""

from __future__ import annotations

import numpy as np
import torch

from deepobs.datasets.base import DataSet, Split

TRAIN_SEED, VALID_SEED = 42, 44


def noise_pairs(seed: int, size: int, noise_level: float) -> torch.Tensor:
    """``size`` pairs (x, y), each coordinate drawn from N(0, noise_level²)."""
    rng = np.random.RandomState(seed)
    x = rng.normal(0.0, noise_level, size)
    y = rng.normal(0.0, noise_level, size)
    return torch.from_numpy(np.stack([x, y], axis=1).astype(np.float32))


class TwoD(DataSet):
    """Noise (x, y) ~ N(0, I) added linearly to a 2-D function: loss f(u,v) + u·x + v·y.

    Train: ``train_size`` pairs from seed 42; validation: from seed 44; test: all zeros,
    so the test loss is the noiseless function value.
    """

    name = "two_d"
    input_shape = (2,)

    def __init__(self, batch_size, *, train_size: int = 10_000, noise_level: float = 1.0, **kwargs):
        self.train_size, self.noise_level = train_size, noise_level
        self.train_eval_size = train_size
        super().__init__(batch_size, **kwargs)

    def _make(self, size: int) -> dict:
        zeros = torch.zeros(size)
        return {
            "train": Split(noise_pairs(TRAIN_SEED, size, self.noise_level), zeros),
            "valid": Split(noise_pairs(VALID_SEED, size, self.noise_level), zeros),
            "test": Split(torch.zeros(size, 2), zeros),
        }

    def _load_raw(self) -> dict:
        return self._make(self.train_size)

    def _fake_raw(self, size: int) -> dict:
        return self._make(size)
