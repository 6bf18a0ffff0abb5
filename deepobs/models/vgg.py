"""VGG16 / VGG19 as in DeepOBS: inputs resized to 224×224 inside the model."""

from __future__ import annotations

import torch
from torch import nn

from deepobs.models.layers import Conv2d, MaxPool2d, ResizeBilinear, glorot_normal_, glorot_uniform_, init_layer

#: Convs per block (channels 64, 128, 256, 512, 512) of each variant.
VGG_BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
_CHANNELS = (64, 128, 256, 512, 512)


class VGG(nn.Module):
    """VGG (Simonyan & Zisserman 2015) with DeepOBS's TF details.

    The input is first resized to 224×224 (TF 1 bilinear); 3×3 "same" convs with
    ReLU (Glorot-normal, bias 0), 2×2 "same" max-pools, then dense 4096 → dropout 0.5
    → dense 4096 → dropout 0.5 → dense out (Glorot-uniform, bias 0).

    Args:
        depth: 16 or 19.
        num_classes: outputs (10, 100, or 1001 for ImageNet with a background class).
        in_channels: input channels.
    """

    def __init__(self, depth: int = 16, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if depth not in VGG_BLOCKS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_BLOCKS)}, got {depth}")
        layers: list = [ResizeBilinear(224)]
        channels = in_channels
        for num_convs, width in zip(VGG_BLOCKS[depth], _CHANNELS):
            for _ in range(num_convs):
                layers += [init_layer(Conv2d(channels, width, 3, padding="same"), glorot_normal_), nn.ReLU()]
                channels = width
            layers.append(MaxPool2d(2, 2, "same"))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            init_layer(nn.Linear(7 * 7 * 512, 4096), glorot_uniform_), nn.ReLU(), nn.Dropout(0.5),
            init_layer(nn.Linear(4096, 4096), glorot_uniform_), nn.ReLU(), nn.Dropout(0.5),
            init_layer(nn.Linear(4096, num_classes), glorot_uniform_),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of images (B, 3, H, W)."""
        return self.classifier(self.features(x))


def vgg16(num_classes: int = 10, in_channels: int = 3) -> VGG:
    """VGG16 (13 convs + 3 dense)."""
    return VGG(16, num_classes, in_channels)


def vgg19(num_classes: int = 10, in_channels: int = 3) -> VGG:
    """VGG19 (16 convs + 3 dense)."""
    return VGG(19, num_classes, in_channels)


__all__ = ["VGG", "VGG_BLOCKS", "vgg16", "vgg19"]
