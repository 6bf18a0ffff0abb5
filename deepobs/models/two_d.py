"""Two-parameter test functions (Beale, Branin, Rosenbrock) with additive linear noise."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def beale(u, v):
    """Beale's function at (u, v); minimum 0 at (3, 0.5)."""
    return (1.5 - u + u * v) ** 2 + (2.25 - u + u * v**2) ** 2 + (2.625 - u + u * v**3) ** 2


def branin(u, v):
    """Branin's function at (u, v); minimum about 0.398 at (π, 2.275) and two more points."""
    return (
        (v - 5.1 / (4 * math.pi**2) * u**2 + 5 / math.pi * u - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * torch.cos(u)
        + 10
    )


def rosenbrock(u, v):
    """Rosenbrock's function at (u, v); minimum 0 at (1, 1)."""
    return (1 - u) ** 2 + 100 * (v - u**2) ** 2


class NoisyTwoD(nn.Module):
    """Per-example loss f(u, v) + u·x + v·y for noise (x, y); (u, v) start at ``start``."""

    def __init__(self, function: Callable, start: tuple[float, float]):
        super().__init__()
        self.function = function
        self.u = nn.Parameter(torch.tensor(float(start[0])))
        self.v = nn.Parameter(torch.tensor(float(start[1])))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """Per-example losses f(u, v) + u·x + v·y of the noise pairs (B, 2)."""
        return self.function(self.u, self.v) + self.u * noise[:, 0] + self.v * noise[:, 1]
