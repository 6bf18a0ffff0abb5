"""Architectures as plain ``nn.Module``s: no data, no loss plumbing, no runner."""

from deepobs.models.quadratic import NoisyQuadratic, deep_learning_hessian, haar_rotation
from deepobs.models.two_d import NoisyTwoD, beale, branin, rosenbrock

__all__ = [
    "NoisyQuadratic", "deep_learning_hessian", "haar_rotation",
    "NoisyTwoD", "beale", "branin", "rosenbrock",
]
