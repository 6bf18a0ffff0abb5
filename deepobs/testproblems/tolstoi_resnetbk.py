"""tolstoi_resnetbk: the causal O(N) ResNet-BK language model on War and Peace."""

from __future__ import annotations

import math
from dataclasses import replace

from torch import nn

from deepobs.datasets.tolstoi import Tolstoi
from deepobs.models.resnet_bk import MixtureOfExperts, ResNetBK, ResNetBKConfig
from deepobs.registry import register_problem
from deepobs.testproblems.base import TestProblem
from deepobs.testproblems.tolstoi import character_losses


@register_problem("tolstoi_resnetbk")
class TolstoiResNetBK(TestProblem):
    """ResNet-BK as a character model of War and Peace (docs/testproblems.md, "ResNet-BK").

    Data and batching as ``tolstoi_char_rnn``: 83 characters, sequences of 50, batches
    of 50 in stream order. Model: embedding 83×64 + learned positions, 2 pre-norm
    blocks (a sparse mixture of 4 experts 64→128→64 with a softmax gate, top-1,
    capacity factor 1.25 in training and 2.0 in evaluation; potential v = 3·tanh(·/3),
    causal BK-Core features gL_k at z = i, Linear(2→64)·bk_scale), final LayerNorm and
    head; 147,935 parameters. Each window starts from scratch (no state is carried).

    Loss: mean per-character cross-entropy (nats); metrics: per-character accuracy and
    perplexity exp(cross-entropy) (the ``*_perplexities`` lists of the results). L2
    through ``weight_decay`` on the weight matrices (default 0). Defaults: batch size
    50, 5 epochs.

    Load balancing: in the training phase the loss of every sequence is
    cross-entropy + ``balance_weight``·(mean over the blocks of the Switch-Transformer
    term E·Σ_e f_e·P_e, which is 1 for a uniform routing), ``balance_weight`` = 0.01 as
    in the Switch Transformer. The gradient therefore trains the router to spread the
    tokens, and the logged mini-batch losses include the term (≈ 0.01 once balanced),
    as they include L2. Evaluation losses (train_eval, valid, test, hence the reported
    ``*_losses`` and perplexities) are the cross-entropy (+ L2) only, comparable with
    ``tolstoi_char_rnn``.

    Attributes:
        model_config: the :class:`ResNetBKConfig` (subclass and register under another
            name to benchmark other sizes, capacities, the dense dispatch or the hybrid
            gradient).
        balance_weight: weight of the load-balancing term in the training loss (0: the
            training loss is exactly the cross-entropy).
    """

    dataset_name = "Tolstoi (War and Peace, characters)"
    model_name = "ResNet-BK (2 blocks, d 64, sparse top-1 of 4 experts, causal BK-Core)"
    loss_name = "per-character cross-entropy"
    default_batch_size = 50
    default_num_epochs = 5
    default_weight_decay = 0.0
    seq_length = 50
    model_config = ResNetBKConfig(vocab_size=Tolstoi.vocab_size, seq_length=50)
    balance_weight = 0.01
    #: The capacity rule lets a token's output depend on the other sequences of its
    #: batch (whether its expert was already full), so evaluation batches stay the
    #: training batches (Tolstoi's stream layout requires that anyway).
    batch_independent_eval = False

    def _build_data(self, **dataset_kwargs):
        return Tolstoi(self._batch_size, seq_length=self.seq_length, **dataset_kwargs)

    def _build_net(self) -> nn.Module:
        return ResNetBK(replace(self.model_config))

    def _compute(self, inputs, targets):
        losses, correct = character_losses(self.net(inputs), targets)
        if self.balance_weight and self.net.training:
            losses = losses + self.balance_weight * self.net.balance_loss()
        return losses, correct

    def get_regularization_groups(self) -> dict:
        """L2 on the weight matrices (linear layers, experts, embeddings), not on biases,
        norms or bk_scale."""
        if not self._weight_decay:
            return {}
        weights = []
        for module in self.net.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                weights.append(module.weight)
            elif isinstance(module, MixtureOfExperts):
                weights.extend([module.w_in, module.w_out])
        return {self._weight_decay: weights}

    def extra_metrics(self, phase: str, loss: float, accuracy) -> dict:
        """Perplexity exp(cross-entropy) of an evaluation pass (L2 term removed)."""
        cross_entropy = loss - float(self.get_regularization_loss())
        return {"perplexities": math.exp(min(cross_entropy, 700.0))}


__all__ = ["TolstoiResNetBK"]
