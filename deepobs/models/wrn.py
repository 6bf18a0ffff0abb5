"""Wide residual networks (Zagoruyko & Komodakis 2016) as in DeepOBS's TF ``_wrn.py``."""

from __future__ import annotations

import torch
from torch import nn

from deepobs.models.layers import Conv2d, glorot_uniform_, init_layer, tf_batch_norm_momentum

#: TF's batch-norm decay 0.9 (running stats keep 90 %), i.e. PyTorch momentum 0.1.
BN_MOMENTUM = tf_batch_norm_momentum(0.9)
BN_EPSILON = 1e-5


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> Conv2d:
    return init_layer(Conv2d(c_in, c_out, kernel, stride, "same", bias=False), glorot_uniform_)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)


class WideResidualUnit(nn.Module):
    """Pre-activation unit. The first unit of a group pre-activates its input once and
    feeds it to both branches; when the width changes its shortcut is a 1×1 conv."""

    def __init__(self, c_in: int, c_out: int, stride: int, first: bool):
        super().__init__()
        self.first = first
        self.bn1 = _bn(c_in)
        self.conv1 = _conv(c_in, c_out, 3, stride)
        self.bn2 = _bn(c_out)
        self.conv2 = _conv(c_out, c_out, 3)
        self.shortcut = None
        if first and c_in != c_out:
            self.shortcut = _conv(c_in, c_out, 1, stride)
        elif first and stride != 1:
            self.shortcut = nn.MaxPool2d(stride, stride)
        if not first and (c_in != c_out or stride != 1):
            raise ValueError("only the first unit of a group may change width or resolution")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The unit's output: its residual branch plus the (projected) shortcut."""
        activated = torch.relu(self.bn1(x))
        if self.first:
            shortcut = activated if self.shortcut is None else self.shortcut(activated)
        else:
            shortcut = x
        residual = self.conv2(torch.relu(self.bn2(self.conv1(activated))))
        return residual + shortcut


class WideResNet(nn.Module):
    """WRN-d-k: 3×3 conv 16 → three groups (16k, 32k, 64k channels, strides 1, 2, 2) of
    ``num_units`` units → BN → ReLU → global mean → dense. Convs have no bias and are
    Glorot-uniform; dense Glorot-uniform with bias 0; BN ε 1e-5, momentum 0.1 (TF 0.9).

    Args:
        num_units: residual units per group ((depth − 4) / 6).
        widening_factor: k.
        num_classes: outputs.
    """

    def __init__(self, num_units: int, widening_factor: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        widths = (16, 16 * widening_factor, 32 * widening_factor, 64 * widening_factor)
        strides = (1, 2, 2)
        self.stem = _conv(in_channels, widths[0], 3)
        units = []
        for group in range(3):
            for unit in range(num_units):
                c_in = widths[group] if unit == 0 else widths[group + 1]
                stride = strides[group] if unit == 0 else 1
                units.append(WideResidualUnit(c_in, widths[group + 1], stride, first=unit == 0))
        self.units = nn.Sequential(*units)
        self.bn = _bn(widths[-1])
        self.fc = init_layer(nn.Linear(widths[-1], num_classes), glorot_uniform_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes): BN-ReLU features averaged over space, then dense."""
        x = torch.relu(self.bn(self.units(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))


def wide_resnet(depth: int, widening_factor: int, num_classes: int = 10) -> WideResNet:
    """WRN-``depth``-``widening_factor``; depth must be 6·n + 4."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6·n + 4 with n >= 1, got {depth}")
    return WideResNet((depth - 4) // 6, widening_factor, num_classes)


__all__ = ["BN_EPSILON", "BN_MOMENTUM", "WideResNet", "WideResidualUnit", "wide_resnet"]
