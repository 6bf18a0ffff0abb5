"""A sparse top-k mixture of experts for sequences, with capacity and load balancing.

Each token is computed only by the experts it is routed to: the routed tokens are
gathered into one fixed-size buffer per expert, each expert runs on its buffer, and
the results are added back to their tokens weighted by the gate. The rules:

* **Routing.** p = softmax(gate(x)) over all experts; a token goes to its ``top_k``
  most probable experts and their output is weighted by p_e (not renormalised over
  the top k), so the gate gets a gradient even for top-1.
* **Capacity.** An expert takes at most C = min(T, ⌈f·k·T/E⌉) of the T tokens of a
  batch (f: ``capacity_factor`` in training, ``eval_capacity_factor`` in evaluation;
  None: C = T, nothing is ever dropped). Tokens are served position by position (all
  sequences' position 0, then position 1, ...; within a position in batch order; a
  token's choices best first). A token that finds its expert full is dropped from
  that expert: it contributes nothing there and its gate weight is set to 0; dropped
  from all its experts, its output is 0 and the surrounding residual connection
  carries it past the layer. The order makes the rule causal: whether a token is
  dropped depends only on tokens at its own or earlier positions, never on later ones.
* **Load balance.** After each forward, :attr:`MixtureOfExperts.balance_loss` is the
  Switch-Transformer auxiliary term E·Σ_e f_e·P_e, with f_e the fraction of the T·k
  routings that chose expert e (before capacity) and P_e the mean gate probability of
  e. It is 1 for a uniform routing and at most E; its gradient (through P_e) pushes
  probability away from over-used experts.

Fixed buffer shapes (E, C, d) depend only on T, never on the routing, so a token's
result does not depend on how other tokens were routed except through the capacity
rule above. ``dispatch="dense"`` computes the very same function the slow way (every
expert on every token, unchosen and dropped outputs weighted by 0): the reference the
tests compare the sparse path with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from deepobs.errors import ConfigurationError

DISPATCHES = ("sparse", "dense")


def check_capacity_factor(name: str, value) -> Optional[float]:
    """``value`` if it is None or a number > 0, else a ConfigurationError naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a number > 0 or None (no capacity limit), got {value!r}")
    return float(value)


def expert_capacity(num_tokens: int, num_experts: int, top_k: int, factor: Optional[float]) -> int:
    """Tokens one expert takes: min(T, ⌈factor·k·T/E⌉), or T when ``factor`` is None."""
    if factor is None:
        return num_tokens
    # Rounded first so that e.g. 1.1·k·T/E landing at n + 1e-13 does not become n + 1.
    return max(1, min(num_tokens, math.ceil(round(factor * top_k * num_tokens / num_experts, 9))))


@dataclass
class Routing:
    """Where the T tokens of a batch go (k = top_k, E = experts).

    Attributes:
        probs: (T, E) gate probabilities.
        experts: (T, k) chosen experts, most probable first.
        weights: (T, k) their gate probabilities, 0 where the token was dropped.
        slots: (T, k) the token's place in the chosen expert's buffer (serving order).
        kept: (T, k) bool, slot < capacity.
        counts: (E,) routings per expert before capacity.
        capacity: C, the buffer size of an expert.
    """

    probs: torch.Tensor
    experts: torch.Tensor
    weights: torch.Tensor
    slots: torch.Tensor
    kept: torch.Tensor
    counts: torch.Tensor
    capacity: int


def serving_slots(experts: torch.Tensor, num_experts: int, batch: int, length: int):
    """Each routing's place in its expert's queue, and the routings per expert.

    ``experts`` is (batch·length, k) in (sequence, position) order; the queue is served
    position-major (see the module docstring), so a routing's slot counts only the
    routings at earlier positions, at its position in earlier sequences, and its own
    token's better choices.
    """
    top_k = experts.shape[-1]
    served = experts.view(batch, length, top_k).transpose(0, 1).reshape(-1)
    one_hot = F.one_hot(served, num_experts)
    queue = one_hot.cumsum(0)
    slots = queue.gather(1, served.unsqueeze(1)).squeeze(1) - 1
    slots = slots.view(length, batch, top_k).transpose(0, 1).reshape(batch * length, top_k)
    return slots, queue[-1]


class MixtureOfExperts(nn.Module):
    """Top-k mixture of two-layer ReLU experts (d → hidden → d) with a softmax gate.

    Input (..., N, d): the last-but-one axis is the sequence position (it sets the
    serving order of the capacity rule), the ones before it are the batch. See the
    module docstring for routing, capacity and the balance loss.

    Args:
        d_model: width of the tokens.
        hidden: hidden width of an expert.
        num_experts: E.
        top_k: experts per token.
        dropout: dropout on the experts' hidden units.
        capacity_factor: f of the capacity in training (None: no limit).
        eval_capacity_factor: f of the capacity in evaluation (None: no limit).
        dispatch: ``"sparse"`` (each token computed only by its experts) or
            ``"dense"`` (every expert on every token; the reference, E/k times slower).

    After each forward: :attr:`balance_loss` (differentiable), :attr:`expert_fraction`
    (share of the routings per expert, before capacity) and :attr:`dropped_fraction`
    (share of the routings dropped by the capacity rule).
    """

    def __init__(self, d_model: int, hidden: int, num_experts: int, top_k: int, dropout: float,
                 capacity_factor: Optional[float] = None, eval_capacity_factor: Optional[float] = None,
                 dispatch: str = "sparse"):
        super().__init__()
        if dispatch not in DISPATCHES:
            raise ConfigurationError(f"dispatch must be one of {', '.join(DISPATCHES)}, got {dispatch!r}")
        self.num_experts, self.top_k, self.dispatch = num_experts, top_k, dispatch
        self.capacity_factor = check_capacity_factor("capacity_factor", capacity_factor)
        self.eval_capacity_factor = check_capacity_factor("eval_capacity_factor", eval_capacity_factor)
        self.gate = nn.Linear(d_model, num_experts)
        self.w_in = nn.Parameter(torch.empty(num_experts, d_model, hidden))
        self.b_in = nn.Parameter(torch.empty(num_experts, 1, hidden))
        self.w_out = nn.Parameter(torch.empty(num_experts, hidden, d_model))
        self.b_out = nn.Parameter(torch.empty(num_experts, 1, d_model))
        self.dropout = nn.Dropout(dropout)
        self.balance_loss: Optional[torch.Tensor] = None
        self.expert_fraction: Optional[torch.Tensor] = None
        self.dropped_fraction: Optional[torch.Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default initialisation, expert by expert."""
        for weight, bias in ((self.w_in, self.b_in), (self.w_out, self.b_out)):
            bound = weight.shape[1] ** -0.5
            nn.init.uniform_(weight, -bound, bound)
            nn.init.uniform_(bias, -bound, bound)

    def route(self, tokens: torch.Tensor, batch: int, length: int) -> Routing:
        """The routing of ``tokens`` (batch·length, d), in (sequence, position) order."""
        probs = F.softmax(self.gate(tokens), dim=-1)
        top_probs, experts = probs.topk(self.top_k, dim=-1)
        factor = self.capacity_factor if self.training else self.eval_capacity_factor
        capacity = expert_capacity(tokens.shape[0], self.num_experts, self.top_k, factor)
        slots, counts = serving_slots(experts, self.num_experts, batch, length)
        kept = slots < capacity
        weights = top_probs * kept
        return Routing(probs, experts, weights, slots, kept, counts, capacity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The gate-weighted outputs of each token's experts, for x of shape (..., N, d)."""
        if x.dim() < 2:
            raise ConfigurationError(f"MixtureOfExperts needs input (..., N, d), got shape {tuple(x.shape)}")
        length, width = x.shape[-2], x.shape[-1]
        tokens = x.reshape(-1, width)
        routing = self.route(tokens, tokens.shape[0] // length, length)
        if self.dispatch == "sparse":
            mixed = self._sparse(tokens, routing)
        else:
            mixed = self._dense(tokens, routing)
        self._record(routing)
        return mixed.reshape(x.shape)

    def _experts(self, inputs: torch.Tensor) -> torch.Tensor:
        """Every expert on its own rows: (E, M, d) → (E, M, d)."""
        hidden = self.dropout(F.relu(torch.baddbmm(self.b_in, inputs, self.w_in)))
        return torch.baddbmm(self.b_out, hidden, self.w_out)

    def _sparse(self, tokens: torch.Tensor, routing: Routing) -> torch.Tensor:
        """Gather each expert's tokens into its buffer, run it, add back weighted.

        No boolean indexing (it would synchronise a GPU with the host), and no index
        whose repeated entries add up non-zero gradients (a GPU adds those atomically,
        in varying order): each routing gets a row of its own (a token repeated k
        times, whose gradient is a plain sum over the k rows), dropped routings write
        to a spare row that is cut off, and they read row 0 with a weight of exactly 0.
        """
        count, width = tokens.shape
        capacity, top_k = routing.capacity, self.top_k
        rows = self.num_experts * capacity
        kept = routing.kept.reshape(-1)
        places = (routing.experts * capacity + routing.slots).reshape(-1)
        routed = tokens if top_k == 1 else tokens.unsqueeze(1).expand(-1, top_k, -1).reshape(-1, width)
        buffer = tokens.new_zeros(rows + 1, width).index_copy(
            0, torch.where(kept, places, torch.full_like(places, rows)), routed)
        outputs = self._experts(buffer[:rows].view(self.num_experts, capacity, width))
        places = torch.where(kept, places, torch.zeros_like(places))
        gathered = outputs.reshape(rows, width).index_select(0, places).view(count, top_k, width)
        if top_k == 1:
            return gathered.squeeze(1) * routing.weights
        return (gathered * routing.weights.unsqueeze(-1)).sum(1)

    def _dense(self, tokens: torch.Tensor, routing: Routing) -> torch.Tensor:
        """Every expert on every token; unchosen and dropped outputs weighted by 0."""
        gates = torch.zeros_like(routing.probs).scatter(-1, routing.experts, routing.weights)
        outputs = self._experts(tokens.expand(self.num_experts, -1, -1))
        return torch.einsum("te,etd->td", gates, outputs)

    def _record(self, routing: Routing) -> None:
        # At least float32, also under bfloat16 autocast.
        dtype = torch.promote_types(routing.probs.dtype, torch.float32)
        routings = routing.kept.numel()
        fraction = routing.counts.to(dtype) / routings
        self.expert_fraction = fraction.detach()
        self.dropped_fraction = (routings - routing.kept.sum()).to(dtype).detach() / routings
        self.balance_loss = self.num_experts * (fraction * routing.probs.to(dtype).mean(0)).sum()


__all__ = ["MixtureOfExperts", "Routing", "expert_capacity", "serving_slots", "DISPATCHES"]
