"""The DeepOBS character-level LSTM (TF ``tolstoi_char_rnn.py``) with an explicit carried state."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from deepobs.models.layers import glorot_uniform_


class TFLSTMLayer(nn.Module):
    """One layer of TF's ``LSTMCell``: one bias per gate (init 0) plus a constant
    forget bias of 1.0, kernels Glorot-uniform over TF's joint [input; hidden] kernel.

    PyTorch's LSTM kernel has two bias vectors; here the second one is a constant
    buffer holding the forget bias, so the trainable parameters (and their count) are
    TF's. Runs the fused ``torch.lstm`` kernel, one layer at a time.
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        forget = torch.zeros(4 * hidden_size)
        forget[hidden_size:2 * hidden_size] = forget_bias  # PyTorch gate order: i, f, g, o
        self.register_buffer("forget_bias", forget)
        joint = torch.empty(input_size + hidden_size, 4 * hidden_size)
        glorot_uniform_(joint)  # TF draws one [in + hidden, 4·hidden] kernel
        with torch.no_grad():
            self.weight_ih.copy_(joint[:input_size].T)
            self.weight_hh.copy_(joint[input_size:].T)

    def forward(self, x: torch.Tensor, state: tuple) -> tuple:
        """x: (B, T, input); state: (h, c), each (1, B, hidden). Returns (outputs, (h, c))."""
        weights = [self.weight_ih, self.weight_hh, self.bias, self.forget_bias]
        outputs, h, c = torch.lstm(x, state, weights, True, 1, 0.0, self.training, False, True)
        return outputs, (h, c)


class CharRNN(nn.Module):
    """Embedding 83×128 → 2 × LSTM(128) → dense 83, with TF's ``DropoutWrapper``.

    Each LSTM layer drops its input and its output (keep 0.8 in training), so between
    the layers dropout is applied twice, as in DeepOBS. Embedding, softmax weight and
    softmax bias are Glorot-uniform (TF's ``get_variable`` default).

    ``forward(tokens, state)`` returns ``(logits (B, T, vocab), new_state)``; ``state``
    is a tuple of (h, c) per layer, or None for zeros.
    """

    def __init__(self, vocab_size: int = 83, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.2):
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        glorot_uniform_(self.embedding.weight)
        self.lstm_layers = nn.ModuleList(TFLSTMLayer(hidden_size, hidden_size) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)
        glorot_uniform_(self.output.weight)
        glorot_uniform_(self.output.bias)

    def zero_state(self, batch_size: int, device=None) -> tuple:
        """All-zero (h, c) for every layer."""
        device = device or self.embedding.weight.device
        zeros = lambda: torch.zeros(1, batch_size, self.hidden_size, device=device)  # noqa: E731
        return tuple((zeros(), zeros()) for _ in range(self.num_layers))

    def forward(self, tokens: torch.Tensor, state: Optional[tuple] = None):
        """Logits (B, T, vocabulary) of tokens (B, T), and the new LSTM state (zeros if ``state`` is None)."""
        if state is None:
            state = self.zero_state(tokens.shape[0], tokens.device)
        x = self.embedding(tokens)
        new_state = []
        for layer, layer_state in zip(self.lstm_layers, state):
            x, layer_state = layer(self.dropout(x), layer_state)
            x = self.dropout(x)
            new_state.append(layer_state)
        return self.output(x), tuple(new_state)


__all__ = ["CharRNN", "TFLSTMLayer"]
