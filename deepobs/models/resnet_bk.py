"""ResNet-BK: a causal language model whose only sequence mixing is the BK-Core.

Token and position embeddings, pre-norm residual blocks (a sparse top-k
mixture-of-experts feed-forward whose output is projected to a potential v, mixed along
the sequence by the causal resolvent diagonal of H0 + diag(v)), a final LayerNorm and a
linear head. The design follows the original ResNet-BK baseline with its defects fixed:
causal features, a gate that trains, a smooth bound on v, exact gradients, experts that
compute only their own tokens (docs/testproblems.md, "ResNet-BK").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from deepobs.errors import ConfigurationError
from deepobs.models.bk_core import BKCore
from deepobs.models.moe import DISPATCHES, MixtureOfExperts, check_capacity_factor


@dataclass
class ResNetBKConfig:
    """Sizes and switches of a ResNet-BK model (defaults: the Tolstoi problem, ≈148 k
    parameters).

    Attributes:
        vocab_size: number of tokens.
        seq_length: longest input sequence (size of the learned position table).
        d_model: width of the residual stream.
        n_layers: number of residual blocks.
        num_experts: experts per mixture-of-experts layer.
        top_k: experts each token is routed to.
        expert_hidden: hidden width of an expert (default 2·d_model).
        dropout: dropout inside the experts.
        v_max: bound of the potential, v = v_max·tanh(u/v_max).
        z: complex shift of the resolvent.
        causal: causal BK features gL_k (False leaks future tokens: ablations only).
        bk_method: ``"parallel"`` or ``"sequential"`` BK-Core implementation.
        gradient: ``"exact"`` or ``"hybrid"`` BK-Core gradient.
        grad_blend: α of the hybrid gradient.
        capacity_factor: an expert takes at most ⌈f·top_k·T/E⌉ of a training batch's T
            tokens (None: no limit); see :mod:`deepobs.models.moe`.
        eval_capacity_factor: the same in evaluation.
        moe_dispatch: ``"sparse"`` (each token computed only by its experts) or
            ``"dense"`` (every expert on every token: the same function, the reference).
    """

    vocab_size: int = 83
    seq_length: int = 50
    d_model: int = 64
    n_layers: int = 2
    num_experts: int = 4
    top_k: int = 1
    expert_hidden: Optional[int] = None
    dropout: float = 0.1
    v_max: float = 3.0
    z: complex = 1j
    causal: bool = True
    bk_method: str = "parallel"
    gradient: str = "exact"
    grad_blend: float = 0.0
    capacity_factor: Optional[float] = 1.25
    eval_capacity_factor: Optional[float] = 2.0
    moe_dispatch: str = "sparse"

    def __post_init__(self):
        for name in ("vocab_size", "seq_length", "d_model", "n_layers", "num_experts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"ResNetBKConfig.{name} must be a positive integer, got {value!r}")
        if not 1 <= self.top_k <= self.num_experts:
            raise ConfigurationError(
                f"ResNetBKConfig.top_k must be in [1, num_experts={self.num_experts}], got {self.top_k}")
        check_capacity_factor("ResNetBKConfig.capacity_factor", self.capacity_factor)
        check_capacity_factor("ResNetBKConfig.eval_capacity_factor", self.eval_capacity_factor)
        if self.moe_dispatch not in DISPATCHES:
            raise ConfigurationError(f"ResNetBKConfig.moe_dispatch must be one of {', '.join(DISPATCHES)}, "
                                     f"got {self.moe_dispatch!r}")
        if self.expert_hidden is None:
            self.expert_hidden = 2 * self.d_model
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigurationError(f"ResNetBKConfig.dropout must be in [0, 1), got {self.dropout}")
        if not self.v_max > 0:
            raise ConfigurationError(f"ResNetBKConfig.v_max must be > 0, got {self.v_max}")
        if not complex(self.z).imag > 0:
            raise ConfigurationError(f"ResNetBKConfig.z must have Im z > 0, got {self.z}")
        BKCore(self.z, self.causal, self.bk_method, self.gradient, self.grad_blend)  # checks the rest


class BKLayer(nn.Module):
    """MoE feed-forward plus BK-Core sequence mixing: f + bk_scale·W·[Re g, Im g]."""

    def __init__(self, config: ResNetBKConfig):
        super().__init__()
        self.moe = MixtureOfExperts(config.d_model, config.expert_hidden, config.num_experts,
                                    config.top_k, config.dropout, config.capacity_factor,
                                    config.eval_capacity_factor, config.moe_dispatch)
        self.potential = nn.Linear(config.d_model, 1)
        self.v_max = config.v_max
        self.bk_core = BKCore(config.z, causal=config.causal, method=config.bk_method,
                              gradient=config.gradient, grad_blend=config.grad_blend)
        self.spectral = nn.Linear(2, config.d_model)
        self.bk_scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The BK layer's output for features (B, T, d)."""
        features = self.moe(x)
        # A smooth bound instead of the original's hard clamp, whose gradient vanished.
        potential = self.v_max * torch.tanh(self.potential(features).squeeze(-1) / self.v_max)
        diagonal = self.bk_core(potential)
        spectral = self.spectral(torch.stack([diagonal.real, diagonal.imag], dim=-1).to(x.dtype))
        return features + self.bk_scale * spectral


class ResNetBKBlock(nn.Module):
    """Pre-norm residual block: x + BKLayer(LayerNorm(x))."""

    def __init__(self, config: ResNetBKConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model)
        self.layer = BKLayer(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` plus the BK layer of the normalised ``x``."""
        return x + self.layer(self.norm(x))


class ResNetBK(nn.Module):
    """ResNet-BK language model: token ids (B, N) → next-token logits (B, N, vocab).

    Args:
        config: a :class:`ResNetBKConfig` (default: the Tolstoi problem's sizes).
    """

    def __init__(self, config: Optional[ResNetBKConfig] = None):
        super().__init__()
        self.config = config or ResNetBKConfig()
        c = self.config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding = nn.Embedding(c.seq_length, c.d_model)
        self.blocks = nn.ModuleList(ResNetBKBlock(c) for _ in range(c.n_layers))
        self.final_norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocabulary) of tokens (B, T)."""
        length = tokens.shape[-1]
        if length > self.config.seq_length:
            raise ConfigurationError(
                f"sequence length {length} exceeds the model's seq_length={self.config.seq_length}")
        positions = torch.arange(length, device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))

    def balance_loss(self) -> torch.Tensor:
        """Mean load-balancing term of the MoE layers in the last forward pass."""
        terms = [block.layer.moe.balance_loss for block in self.blocks]
        if any(term is None for term in terms):
            raise RuntimeError("balance_loss is available after a forward pass")
        return torch.stack(terms).mean()


def resnet_bk(**config) -> ResNetBK:
    """Build a ResNet-BK model; keyword arguments override :class:`ResNetBKConfig`."""
    return ResNetBK(ResNetBKConfig(**config))


__all__ = ["ResNetBK", "ResNetBKConfig", "ResNetBKBlock", "BKLayer", "MixtureOfExperts", "resnet_bk"]
