"""The DeepOBS variational autoencoder for 28×28 images (TF ``_vae.py``), latent size 8."""

from __future__ import annotations

import torch
from torch import nn

from deepobs.models.layers import Conv2d, ConvTranspose2d, glorot_uniform_, init_layer


class LeakyReLU(nn.Module):
    """max(x, α·x) with α = 0.3, as DeepOBS defines it."""

    def __init__(self, alpha: float = 0.3):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """max(x, alpha·x), TensorFlow's leaky ReLU."""
        return torch.maximum(x, self.alpha * x)


def _glorot(layer: nn.Module) -> nn.Module:
    return init_layer(layer, glorot_uniform_)  # TF layer defaults: Glorot-uniform, bias 0


class VAE(nn.Module):
    """Encoder 3 × (4×4 "same" conv 64, strides 2, 2, 1, leaky ReLU, dropout 0.2) →
    dense heads ``mean`` and ``log_std`` (= 0.5 × dense, a log standard deviation);
    z = mean + ε·exp(log_std). Decoder dense 24, 49 (leaky ReLU) → 7×7 → 3 × (4×4
    "same" transposed conv 64, strides 2, 1, 1, ReLU), dropout 0.2 after the first
    two only (TF has none after the third; the PyTorch port's extra one is not
    copied) → dense 784 sigmoid.

    ``forward`` returns ``(reconstruction (B, 1, 28, 28), mean, log_std)``; ε is drawn
    in every mode, as published. Pass ``generator`` to draw it from a given stream.
    """

    def __init__(self, latent_size: int = 8, dropout: float = 0.2):
        super().__init__()
        self.latent_size = latent_size
        self.encoder = nn.Sequential(
            _glorot(Conv2d(1, 64, 4, 2, "same")), LeakyReLU(), nn.Dropout(dropout),
            _glorot(Conv2d(64, 64, 4, 2, "same")), LeakyReLU(), nn.Dropout(dropout),
            _glorot(Conv2d(64, 64, 4, 1, "same")), LeakyReLU(), nn.Dropout(dropout),
            nn.Flatten(),
        )
        self.mean = _glorot(nn.Linear(7 * 7 * 64, latent_size))
        self.log_std = _glorot(nn.Linear(7 * 7 * 64, latent_size))
        self.decoder_dense = nn.Sequential(
            _glorot(nn.Linear(latent_size, 24)), LeakyReLU(),
            _glorot(nn.Linear(24, 49)), LeakyReLU(),
        )
        self.decoder_conv = nn.Sequential(
            _glorot(ConvTranspose2d(1, 64, 4, 2, "same")), nn.ReLU(), nn.Dropout(dropout),
            _glorot(ConvTranspose2d(64, 64, 4, 1, "same")), nn.ReLU(), nn.Dropout(dropout),
            _glorot(ConvTranspose2d(64, 64, 4, 1, "same")), nn.ReLU(),
            nn.Flatten(),
            _glorot(nn.Linear(14 * 14 * 64, 28 * 28)), nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor):
        """Mean and log standard deviation of the latent code of images ``x``."""
        features = self.encoder(x.reshape(-1, 1, 28, 28))
        return self.mean(features), 0.5 * self.log_std(features)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] from latent codes ``z``."""
        x = self.decoder_dense(z).reshape(-1, 1, 7, 7)
        return self.decoder_conv(x).reshape(-1, 1, 28, 28)

    def forward(self, x: torch.Tensor, generator=None):
        """Reconstruction, latent mean and log standard deviation of images ``x`` (one sample, drawn with ``generator``)."""
        mean, log_std = self.encode(x)
        epsilon = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + epsilon * torch.exp(log_std)
        return self.decode(z), mean, log_std


def vae_loss(reconstruction: torch.Tensor, images: torch.Tensor, mean: torch.Tensor,
             log_std: torch.Tensor) -> torch.Tensor:
    """Per-example loss: Σ_pixels (x̂ − x)² + KL(N(mean, exp(log_std)²) ‖ N(0, I))."""
    squared_error = (reconstruction - images.reshape_as(reconstruction)).pow(2).flatten(1).sum(dim=1)
    kl = -0.5 * (1 + 2 * log_std - mean.pow(2) - torch.exp(2 * log_std)).sum(dim=1)
    return squared_error + kl


__all__ = ["LeakyReLU", "VAE", "vae_loss"]
