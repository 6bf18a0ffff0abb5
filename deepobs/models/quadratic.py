"""The noisy quadratic: a fixed positive-definite Hessian Q and one parameter vector θ."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Seed of the RNG that draws the Hessian. A fixed property of the problem, drawn
#: afresh for every instance (DeepOBS's TF code shared one module-level RNG, so a
#: second instance in one process got another Hessian; that is fixed here).
HESSIAN_SEED = 42


def haar_rotation(dim: int, rng: np.random.RandomState) -> np.ndarray:
    """A rotation drawn from the Haar measure by the Diaconis–Shahshahani subgroup algorithm.

    Starts with a uniformly random 2-D rotation and, for each further dimension d,
    embeds the current rotation as blockdiag(1, R) and applies the Householder
    reflection that maps e₁ to a uniformly random unit vector of R^(d+1). The sign
    flip at the end gives the published matrix.
    """
    if dim < 2:
        raise ValueError(f"dim must be at least 2, got {dim}")
    angle = 2 * np.pi * rng.uniform()
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    for d in range(2, dim):
        v = rng.normal(size=(d + 1, 1))
        v /= np.sqrt(v.T @ v)
        e1 = np.zeros((d + 1, 1))
        e1[0] = 1.0
        householder_normal = (e1 - v) / np.sqrt((e1 - v).T @ (e1 - v))
        embedded = np.zeros((d + 1, d + 1))
        embedded[0, 0] = 1.0
        embedded[1:, 1:] = rotation
        rotation = embedded - 2 * householder_normal @ (householder_normal.T @ embedded)
    return -rotation


def deep_learning_hessian(dim: int = 100, seed: int = HESSIAN_SEED) -> np.ndarray:
    """Q = Rᵀ diag(λ) R with 90 % of λ in U(0, 1) and 10 % in U(30, 60) (arXiv 1611.01838)."""
    rng = np.random.RandomState(seed)
    num_large = dim // 10
    eigenvalues = np.concatenate(
        [rng.uniform(0.0, 1.0, dim - num_large), rng.uniform(30.0, 60.0, num_large)]
    )
    rotation = haar_rotation(dim, rng)
    return rotation.T @ np.diag(eigenvalues) @ rotation


class NoisyQuadratic(nn.Module):
    """Per-example loss ½(θ−x)ᵀQ(θ−x); θ starts at ``init`` (1.0 as published)."""

    def __init__(self, hessian: np.ndarray, init: float = 1.0):
        super().__init__()
        dim = hessian.shape[0]
        self.theta = nn.Parameter(torch.full((dim,), float(init)))
        self.register_buffer("hessian", torch.as_tensor(hessian, dtype=torch.float32))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Per-example losses ½(θ−x)ᵀQ(θ−x) of the points (B, dim)."""
        difference = self.theta - points
        return 0.5 * ((difference @ self.hessian) * difference).sum(dim=1)
