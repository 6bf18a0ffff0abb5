"""ResNet-18 for 32×32 images (He et al. 2016; the common CIFAR variant)."""

from __future__ import annotations

import torch
from torch import nn

#: PyTorch's default batch-norm momentum (TF decay 0.9).
BN_MOMENTUM = 0.1


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv3×3 → BN → ReLU → conv3×3 → BN, plus the (projected when shapes differ) input, → ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM)
        self.conv2 = _conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(residual branch + shortcut) of feature maps ``x``."""
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3×3 stem conv (stride 1, no max-pool), four stages of basic blocks
    with 64/128/256/512 channels (strides 1, 2, 2, 2), global average pool, linear head.

    Initialisation as torchvision's ResNet: Kaiming-normal (fan-out, ReLU) convs,
    BN γ = 1, β = 0, PyTorch's default linear layer.
    """

    def __init__(self, blocks_per_stage=(2, 2, 2, 2), num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        widths = (64, 128, 256, 512)
        self.stem = nn.Sequential(_conv3x3(in_channels, 64), nn.BatchNorm2d(64, momentum=BN_MOMENTUM), nn.ReLU())
        stages, c_in = [], 64
        for stage, (num_blocks, width) in enumerate(zip(blocks_per_stage, widths)):
            for block in range(num_blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(c_in, width, stride))
                c_in = width
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(widths[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of images (B, 3, 32, 32)."""
        x = self.stages(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


def resnet18(num_classes: int = 10) -> ResNet:
    """ResNet-18 for CIFAR: 11,173,962 parameters for 10 classes, 11,220,132 for 100."""
    return ResNet((2, 2, 2, 2), num_classes)


__all__ = ["BasicBlock", "ResNet", "resnet18"]
