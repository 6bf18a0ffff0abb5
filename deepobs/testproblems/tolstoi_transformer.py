"""tolstoi_transformer: a small causal transformer character model of War and Peace."""

from __future__ import annotations

import math
from dataclasses import replace

from torch import nn

from deepobs.datasets.tolstoi import Tolstoi
from deepobs.models.transformer import Transformer, TransformerConfig
from deepobs.registry import register_problem
from deepobs.testproblems.base import TestProblem
from deepobs.testproblems.tolstoi import character_losses


@register_problem("tolstoi_transformer")
class TolstoiTransformer(TestProblem):
    """A GPT-2-style transformer predicting the next character of War and Peace.

    Data and splits as ``tolstoi_char_rnn`` (83 characters, the same train, validation
    and test text), cut into windows of 128 characters taken in stream order; each
    window starts from scratch (no state is carried), so the first characters of a
    window see little context. Model (:class:`~deepobs.models.transformer.Transformer`):
    3 pre-norm blocks of width 64 (2 heads of 32, causal ``scaled_dot_product_attention``,
    GELU MLP 64 → 256 → 64), learned positions, output layer tied to the token
    embedding, GPT-2 initialisation, no dropout; 163,584 parameters.

    Loss: mean per-character cross-entropy (nats); metrics: per-character accuracy and
    perplexity exp(cross-entropy) (the ``*_perplexities`` lists of the results). L2
    through ``weight_decay`` on the weight matrices and embeddings (default 0; AdamW's
    decoupled decay is the usual choice for transformers).

    Why these defaults:

    * size: the largest width and depth whose epoch (training pass and the three
      evaluations) costs no more CPU time than the char-RNN's; d 128 × 4 blocks costs
      2.8×, d 64 × 4 blocks 1.2× (measured on one thread, docs/testproblems.md);
    * batch size 16 × sequence length 128 = 2,048 characters per step: 956 steps per
      epoch under protocol 1.2, near the char-RNN's 783, so optimizers are compared over
      a similar number of updates, with a context of a sentence or two;
    * 10 epochs, about 20 M characters (120 per parameter): a short, fixed budget of
      about ten char-RNN epochs of compute, in which an optimizer's speed shows.

    Attributes:
        model_config: the :class:`~deepobs.models.transformer.TransformerConfig`
            (subclass and register under another name to benchmark other sizes).
    """

    dataset_name = "Tolstoi (War and Peace, characters)"
    model_name = "transformer (3 pre-norm blocks, d 64, 2 heads, context 128, tied embeddings)"
    loss_name = "per-character cross-entropy"
    default_batch_size = 16
    default_num_epochs = 10
    default_weight_decay = 0.0
    model_config = TransformerConfig(vocab_size=Tolstoi.vocab_size, seq_length=128, d_model=64,
                                     n_layers=3, n_heads=2)

    @property
    def seq_length(self) -> int:
        """Characters per window (the model's context)."""
        return self.model_config.seq_length

    def _build_data(self, **dataset_kwargs):
        return Tolstoi(self._batch_size, seq_length=self.seq_length, **dataset_kwargs)

    def _build_net(self) -> nn.Module:
        return Transformer(replace(self.model_config))

    def _compute(self, inputs, targets):
        return character_losses(self.net(inputs), targets)

    def get_regularization_groups(self) -> dict:
        """L2 on the weight matrices and embeddings (the tied output layer once), not on
        biases or LayerNorms."""
        if not self._weight_decay:
            return {}
        weights = [module.weight for module in self.net.modules()
                   if isinstance(module, (nn.Linear, nn.Embedding))]
        return {self._weight_decay: weights}

    def extra_metrics(self, phase: str, loss: float, accuracy) -> dict:
        """Perplexity exp(cross-entropy) of an evaluation pass (L2 term removed)."""
        cross_entropy = loss - float(self.get_regularization_loss())
        return {"perplexities": math.exp(min(cross_entropy, 700.0))}


__all__ = ["TolstoiTransformer"]
