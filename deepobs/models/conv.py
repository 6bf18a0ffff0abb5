"""The small DeepOBS conv nets: 2c2d (MNIST), 3c3d (CIFAR/SVHN) and All-CNN-C (CIFAR-100)."""

from __future__ import annotations

import torch
from torch import nn

from deepobs.models.layers import Conv2d, MaxPool2d, glorot_normal_, glorot_uniform_, init_layer, truncated_normal_


def _truncated_005(weight):
    truncated_normal_(weight, 0.05)


class TwoC2D(nn.Module):
    """2c2d: two 5×5 "same" convs (32, 64) with 2×2 max-pools, dense 1024, dense out.

    All weights truncated N(0, 0.05²) and all biases 0.05 (TF ``_2c2d.py``); no dropout.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        flat = 64 * (-(-image_size // 4)) ** 2
        self.features = nn.Sequential(
            init_layer(Conv2d(in_channels, 32, 5, padding="same"), _truncated_005, 0.05), nn.ReLU(),
            MaxPool2d(2, 2, "same"),
            init_layer(Conv2d(32, 64, 5, padding="same"), _truncated_005, 0.05), nn.ReLU(),
            MaxPool2d(2, 2, "same"),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            init_layer(nn.Linear(flat, 1024), _truncated_005, 0.05), nn.ReLU(),
            init_layer(nn.Linear(1024, num_classes), _truncated_005, 0.05),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of images (B, 1, 28, 28)."""
        return self.classifier(self.features(x))


class ThreeC3D(nn.Module):
    """3c3d: convs 5×5 64 valid, 3×3 96 valid, 3×3 128 same, each + ReLU + 3×3/2 "same"
    max-pool; dense 512, 256, out. Convs Glorot-normal, dense Glorot-uniform, biases 0
    (32 → 28 → 14 → 12 → 6 → 6 → 3)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            init_layer(Conv2d(in_channels, 64, 5, padding="valid"), glorot_normal_), nn.ReLU(),
            MaxPool2d(3, 2, "same"),
            init_layer(Conv2d(64, 96, 3, padding="valid"), glorot_normal_), nn.ReLU(),
            MaxPool2d(3, 2, "same"),
            init_layer(Conv2d(96, 128, 3, padding="same"), glorot_normal_), nn.ReLU(),
            MaxPool2d(3, 2, "same"),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            init_layer(nn.Linear(3 * 3 * 128, 512), glorot_uniform_), nn.ReLU(),
            init_layer(nn.Linear(512, 256), glorot_uniform_), nn.ReLU(),
            init_layer(nn.Linear(256, num_classes), glorot_uniform_),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) of images (B, 3, 32, 32)."""
        return self.classifier(self.features(x))


class AllCNNC(nn.Module):
    """All-CNN-C (Springenberg et al. 2015) as in DeepOBS's ``cifar100_allcnnc``.

    Dropout 0.2 on the input and 0.5 after each stride-2 conv; every conv, the last
    (class) one included, is followed by ReLU, and the logits are the spatial mean of
    the last 6×6 map. Conv weights Glorot-normal, biases 0.1.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 100):
        super().__init__()

        def conv(c_in, c_out, kernel, stride=1, padding="same"):
            layer = init_layer(Conv2d(c_in, c_out, kernel, stride, padding), glorot_normal_, 0.1)
            return [layer, nn.ReLU()]

        self.layers = nn.Sequential(
            nn.Dropout(0.2),
            *conv(in_channels, 96, 3), *conv(96, 96, 3), *conv(96, 96, 3, stride=2),
            nn.Dropout(0.5),
            *conv(96, 192, 3), *conv(192, 192, 3), *conv(192, 192, 3, stride=2),
            nn.Dropout(0.5),
            *conv(192, 192, 3, padding="valid"), *conv(192, 192, 1), *conv(192, num_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes): the last convolution's maps averaged over space."""
        return self.layers(x).mean(dim=(2, 3))


__all__ = ["AllCNNC", "ThreeC3D", "TwoC2D"]
