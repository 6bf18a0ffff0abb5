"""Inception-v3 (Szegedy et al. 2016) as in DeepOBS's TF ``_inception_v3.py``, with its auxiliary head."""

from __future__ import annotations

import torch
from torch import nn

from deepobs.models.layers import (AvgPool2d, Conv2d, MaxPool2d, ResizeBilinear, glorot_uniform_, init_layer,
                                   tf_batch_norm_momentum)

#: TF decay 0.9997 → PyTorch momentum 0.0003; TF's default ε 1e-3.
BN_MOMENTUM = tf_batch_norm_momentum(0.9997)
BN_EPSILON = 1e-3


class ConvBN(nn.Sequential):
    """Conv (no bias, Glorot-uniform, TF padding) → BN (γ, β) → ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding: str = "same"):
        super().__init__(
            init_layer(Conv2d(c_in, c_out, kernel, stride, padding, bias=False), glorot_uniform_),
            nn.BatchNorm2d(c_out, eps=BN_EPSILON, momentum=BN_MOMENTUM),
            nn.ReLU(),
        )


class _Branches(nn.Module):
    """Runs parallel branches on the same input and concatenates their channels."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class _Split(nn.Module):
    """A 1×3 and a 3×1 conv side by side on the same input (block 7)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.wide = ConvBN(c_in, c_out, (1, 3))
        self.tall = ConvBN(c_in, c_out, (3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.wide(x), self.tall(x)], dim=1)


def _pool_proj(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(AvgPool2d(3, 1, "same"), ConvBN(c_in, c_out, 1))


def block5(c_in: int, pool_channels: int) -> _Branches:
    """35×35 block (5a: pool projection 32, 5b: 64)."""
    return _Branches(
        ConvBN(c_in, 64, 1),
        _pool_proj(c_in, pool_channels),
        nn.Sequential(ConvBN(c_in, 48, 1), ConvBN(48, 64, 5)),
        nn.Sequential(ConvBN(c_in, 64, 1), ConvBN(64, 96, 3), ConvBN(96, 96, 3)),
    )


def block10(c_in: int) -> _Branches:
    """Reduction 35 → 17."""
    return _Branches(
        MaxPool2d(3, 2, "valid"),
        ConvBN(c_in, 384, 3, 2, "valid"),
        nn.Sequential(ConvBN(c_in, 64, 1), ConvBN(64, 96, 3), ConvBN(96, 96, 3, 2, "valid")),
    )


def block6(c_in: int, width: int) -> _Branches:
    """17×17 block with factorised 7×7 convs (6a: 128, 6b: 160, 6c: 192)."""
    return _Branches(
        ConvBN(c_in, 192, 1),
        _pool_proj(c_in, 192),
        nn.Sequential(ConvBN(c_in, width, 1), ConvBN(width, width, (1, 7)), ConvBN(width, 192, (7, 1))),
        nn.Sequential(ConvBN(c_in, width, 1), ConvBN(width, width, (7, 1)), ConvBN(width, width, (1, 7)),
                      ConvBN(width, width, (7, 1)), ConvBN(width, 192, (1, 7))),
    )


def block_d(c_in: int) -> _Branches:
    """Reduction 17 → 8."""
    return _Branches(
        MaxPool2d(3, 2, "valid"),
        nn.Sequential(ConvBN(c_in, 192, 1), ConvBN(192, 192, (1, 7)), ConvBN(192, 192, (7, 1)),
                      ConvBN(192, 192, 3, 2, "valid")),
        nn.Sequential(ConvBN(c_in, 192, 1), ConvBN(192, 320, 3, 2, "valid")),
    )


def block7(c_in: int) -> _Branches:
    """8×8 block with split 1×3 / 3×1 convs."""
    return _Branches(
        ConvBN(c_in, 320, 1),
        nn.Sequential(ConvBN(c_in, 384, 1), _Split(384, 384)),
        nn.Sequential(ConvBN(c_in, 448, 1), ConvBN(448, 384, 3), _Split(384, 384)),
        _pool_proj(c_in, 192),
    )


class InceptionV3(nn.Module):
    """Inception-v3 on 224×224 inputs resized to 299×299 (TF 1 bilinear).

    In training mode ``forward`` returns ``(logits, aux_logits)``; in evaluation mode
    only the logits. Dense layers are Glorot-uniform with bias 0 and, as published,
    not L2-regularised (only conv kernels are). Dropout before the classifier drops
    80 % of the features, as DeepOBS's TF code does (``tf.layers.dropout(x, 0.8,
    training)``: the second argument is the drop rate). Szegedy et al. keep 80 %
    (``dropout=0.2``); DeepOBS's value is kept because the benchmark is the problem
    DeepOBS defined and ran.
    """

    def __init__(self, num_classes: int = 1001, in_channels: int = 3, dropout: float = 0.8):
        super().__init__()
        self.resize = ResizeBilinear(299)
        self.stem = nn.Sequential(
            ConvBN(in_channels, 32, 3, 2, "valid"), ConvBN(32, 32, 3, 1, "valid"), ConvBN(32, 64, 3),
            MaxPool2d(3, 2, "valid"),
            ConvBN(64, 80, 1, 1, "valid"), ConvBN(80, 192, 3, 1, "valid"),
            MaxPool2d(3, 2, "valid"),
        )
        self.blocks35 = nn.Sequential(block5(192, 32), block5(256, 64), block5(288, 64))
        self.blocks17 = nn.Sequential(block10(288), block6(768, 128), block6(768, 160), block6(768, 160),
                                      block6(768, 192))
        self.aux = nn.Sequential(
            AvgPool2d(5, 3, "valid"), ConvBN(768, 128, 1), ConvBN(128, 768, 5, 1, "valid"), nn.Flatten(),
            init_layer(nn.Linear(768, num_classes), glorot_uniform_),
        )
        self.blocks8 = nn.Sequential(block_d(768), block7(1280), block7(2048))
        self.head = nn.Sequential(
            AvgPool2d(8, 1, "valid"), nn.Dropout(dropout), nn.Flatten(),
            init_layer(nn.Linear(2048, num_classes), glorot_uniform_),
        )

    def forward(self, x: torch.Tensor):
        """Logits (B, 1001); in training, the tuple (logits, auxiliary logits)."""
        x = self.blocks17(self.blocks35(self.stem(self.resize(x))))
        logits = self.head(self.blocks8(x))
        if self.training:
            return logits, self.aux(x)
        return logits


__all__ = ["BN_EPSILON", "BN_MOMENTUM", "ConvBN", "InceptionV3"]
