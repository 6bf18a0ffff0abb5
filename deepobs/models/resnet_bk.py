"""ResNet-BK: a causal language model whose only sequence mixing is the BK-Core.

Token and position embeddings, pre-norm residual blocks (a top-k mixture-of-experts
feed-forward whose output is projected to a potential v, mixed along the sequence by
the causal resolvent diagonal of H0 + diag(v)), a final LayerNorm and a linear head.
The design follows reference/resnet_bk.md §2 and §5 with the original's defects
fixed: causal features, a gate that trains, a smooth bound on v, exact gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from deepobs.errors import ConfigurationError
from deepobs.models.bk_core import BKCore


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

    def __post_init__(self):
        for name in ("vocab_size", "seq_length", "d_model", "n_layers", "num_experts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"ResNetBKConfig.{name} must be a positive integer, got {value!r}")
        if not 1 <= self.top_k <= self.num_experts:
            raise ConfigurationError(
                f"ResNetBKConfig.top_k must be in [1, num_experts={self.num_experts}], got {self.top_k}")
        if self.expert_hidden is None:
            self.expert_hidden = 2 * self.d_model
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigurationError(f"ResNetBKConfig.dropout must be in [0, 1), got {self.dropout}")
        if not self.v_max > 0:
            raise ConfigurationError(f"ResNetBKConfig.v_max must be > 0, got {self.v_max}")
        if not complex(self.z).imag > 0:
            raise ConfigurationError(f"ResNetBKConfig.z must have Im z > 0, got {self.z}")
        BKCore(self.z, self.causal, self.bk_method, self.gradient, self.grad_blend)  # checks the rest


class MixtureOfExperts(nn.Module):
    """Top-k mixture of two-layer ReLU experts with a trained softmax gate.

    Each token's output is Σ_{e in top-k} p_e·expert_e(x), p = softmax over all the
    gate's logits, so the gate gets a gradient even for top-1 (the original's argmax
    routing gave it none). Every expert is evaluated on every token with batched
    matrix products and the unchosen outputs are weighted by zero: for a handful of
    experts this is simpler and no slower on a CPU than a gather/scatter dispatch, and
    a token's output cannot depend on how the other tokens were routed.

    After each forward, :attr:`balance_loss` holds the Switch-Transformer
    load-balancing term E·Σ_e f_e·P̄_e (1 when the routing is uniform) and
    :attr:`expert_fraction` the fraction of routings per expert.
    """

    def __init__(self, d_model: int, hidden: int, num_experts: int, top_k: int, dropout: float):
        super().__init__()
        self.num_experts, self.top_k = num_experts, top_k
        self.gate = nn.Linear(d_model, num_experts)
        self.w_in = nn.Parameter(torch.empty(num_experts, d_model, hidden))
        self.b_in = nn.Parameter(torch.empty(num_experts, 1, hidden))
        self.w_out = nn.Parameter(torch.empty(num_experts, hidden, d_model))
        self.b_out = nn.Parameter(torch.empty(num_experts, 1, d_model))
        self.dropout = nn.Dropout(dropout)
        self.balance_loss: Optional[torch.Tensor] = None
        self.expert_fraction: Optional[torch.Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default initialisation, expert by expert."""
        for weight, bias in ((self.w_in, self.b_in), (self.w_out, self.b_out)):
            bound = weight.shape[1] ** -0.5
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The top-k experts' outputs mixed by the gate, for features (..., d)."""
        tokens = x.reshape(-1, x.shape[-1])
        probs = F.softmax(self.gate(tokens), dim=-1)
        top_probs, top_index = probs.topk(self.top_k, dim=-1)
        weights = torch.zeros_like(probs).scatter(-1, top_index, top_probs)
        hidden = self.dropout(F.relu(torch.baddbmm(self.b_in, tokens.expand(self.num_experts, -1, -1),
                                                   self.w_in)))
        outputs = torch.baddbmm(self.b_out, hidden, self.w_out)  # (E, T, d)
        mixed = torch.einsum("te,etd->td", weights, outputs)
        routed = torch.zeros_like(probs).scatter(-1, top_index, 1.0)
        self.expert_fraction = routed.mean(0).detach() / self.top_k
        self.balance_loss = self.num_experts * (routed.mean(0) / self.top_k * probs.mean(0)).sum()
        return mixed.reshape(x.shape)


class BKLayer(nn.Module):
    """MoE feed-forward plus BK-Core sequence mixing: f + bk_scale·W·[Re g, Im g]."""

    def __init__(self, config: ResNetBKConfig):
        super().__init__()
        self.moe = MixtureOfExperts(config.d_model, config.expert_hidden, config.num_experts,
                                    config.top_k, config.dropout)
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
