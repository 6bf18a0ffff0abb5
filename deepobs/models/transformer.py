"""A small causal (GPT-2-style) transformer language model: token ids in, next-token logits out.

Pre-norm residual blocks (causal multi-head self-attention through PyTorch's
``scaled_dot_product_attention`` with ``is_causal=True``, then a GELU MLP), learned
position embeddings, a final LayerNorm and an output layer tied to the token
embedding. Initialisation as GPT-2: every weight matrix and embedding N(0, 0.02²),
biases 0, and the two projections that write into the residual stream of each block
N(0, (0.02/√(2·layers))²) so that the stream's variance does not grow with depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from deepobs.errors import ConfigurationError

#: Standard deviation of GPT-2's initialisation.
INIT_STD = 0.02


@dataclass
class TransformerConfig:
    """Sizes of a :class:`Transformer` (defaults: the ``tolstoi_transformer`` problem).

    Attributes:
        vocab_size: number of tokens.
        seq_length: longest input sequence (size of the learned position table).
        d_model: width of the residual stream; a multiple of ``n_heads``.
        n_layers: number of transformer blocks.
        n_heads: attention heads per block.
        mlp_ratio: hidden width of the MLP in units of ``d_model``.
        dropout: dropout on the attention weights and on each residual branch (training only).
    """

    vocab_size: int = 83
    seq_length: int = 128
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 2
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("vocab_size", "seq_length", "d_model", "n_layers", "n_heads", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"TransformerConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ConfigurationError(
                f"TransformerConfig.d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigurationError(f"TransformerConfig.dropout must be in [0, 1), got {self.dropout}")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions ≤ t only."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_heads, self.dropout = config.n_heads, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)  # writes into the residual stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention output for features (B, T, d)."""
        batch, length, width = x.shape
        # (B, T, 3·d) -> three (B, heads, T, d/heads)
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, width // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))


class FeedForward(nn.Module):
    """Position-wise feed-forward d → mlp_ratio·d → d with the exact (erf) GELU
    (GPT-2 used its tanh approximation; they differ by at most 5e-4)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.mlp_ratio * config.d_model)
        self.proj = nn.Linear(config.mlp_ratio * config.d_model, config.d_model)  # residual stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """MLP output for features (..., d)."""
        return self.proj(F.gelu(self.fc(x)))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(LayerNorm(x)), then + MLP(LayerNorm(·))."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.d_model)
        self.attention = CausalSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.d_model)
        self.mlp = FeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output for features (B, T, d)."""
        x = x + self.dropout(self.attention(self.attention_norm(x)))
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class Transformer(nn.Module):
    """Causal transformer language model: token ids (B, T) → next-token logits (B, T, vocab).

    Parameters: vocab·d (token embedding, also the output layer) + seq_length·d
    (positions) + layers·(12·d² + 13·d) + 2·d (final LayerNorm); the output layer has
    no bias.

    Args:
        config: a :class:`TransformerConfig` (default: the Tolstoi problem's sizes).
    """

    def __init__(self, config: Optional[TransformerConfig] = None):
        super().__init__()
        self.config = config or TransformerConfig()
        c = self.config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = nn.Embedding(c.seq_length, c.d_model)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c) for _ in range(c.n_layers))
        self.final_norm = nn.LayerNorm(c.d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation (module docstring); LayerNorms are 1 and 0."""
        residual_std = INIT_STD / math.sqrt(2 * self.config.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if name.endswith(".proj") else INIT_STD
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocabulary) of tokens (B, T); T ≤ ``config.seq_length``."""
        length = tokens.shape[-1]
        if length > self.config.seq_length:
            raise ConfigurationError(
                f"sequence length {length} exceeds the model's seq_length={self.config.seq_length}")
        positions = torch.arange(length, device=tokens.device)
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        return F.linear(self.final_norm(x), self.token_embedding.weight)  # tied output layer


def transformer(**config) -> Transformer:
    """Build a transformer language model; keyword arguments override :class:`TransformerConfig`."""
    return Transformer(TransformerConfig(**config))


__all__ = ["CausalSelfAttention", "FeedForward", "Transformer", "TransformerBlock", "TransformerConfig",
           "transformer"]
