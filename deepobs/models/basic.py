"""Fully connected models of DeepOBS: logistic regression and the 4-layer MLP."""

from __future__ import annotations

import torch
from torch import nn

from deepobs.models.layers import init_layer, truncated_normal_


class LogisticRegression(nn.Module):
    """Flatten → dense(num_classes); weights and biases start at 0, as published."""

    def __init__(self, num_inputs: int = 784, num_classes: int = 10):
        super().__init__()
        self.linear = init_layer(nn.Linear(num_inputs, num_classes), nn.init.zeros_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of inputs flattened to (B, features)."""
        return self.linear(x.flatten(1))


class MLP(nn.Module):
    """784 → 1000 → 500 → 100 → num_classes with ReLU; weights truncated N(0, 0.03²), biases 0."""

    def __init__(self, num_inputs: int = 784, num_classes: int = 10,
                 hidden: tuple = (1000, 500, 100)):
        super().__init__()
        widths = (num_inputs, *hidden)
        layers = []
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            layers += [self._dense(fan_in, fan_out), nn.ReLU()]
        layers.append(self._dense(widths[-1], num_classes))
        self.layers = nn.Sequential(*layers)

    @staticmethod
    def _dense(fan_in: int, fan_out: int) -> nn.Linear:
        return init_layer(nn.Linear(fan_in, fan_out), lambda w: truncated_normal_(w, 3e-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of inputs flattened to (B, features)."""
        return self.layers(x.flatten(1))


__all__ = ["LogisticRegression", "MLP"]
