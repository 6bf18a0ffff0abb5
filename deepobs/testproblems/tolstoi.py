"""The character-level language model on War and Peace, with its LSTM state carried across batches."""

from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F

from deepobs.datasets.tolstoi import Tolstoi
from deepobs.models.char_rnn import CharRNN
from deepobs.registry import register_problem
from deepobs.testproblems.base import TestProblem


def character_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple:
    """Per-sequence means over the time steps of the cross-entropy and the accuracy of
    ``logits`` (batch, time, characters): their batch mean is the mean per-character
    cross-entropy and accuracy, as DeepOBS's char-RNN reports. Shared by every Tolstoi
    problem."""
    losses = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(dim=1)
    correct = (logits.argmax(dim=2) == targets).float().mean(dim=1)
    return losses, correct

SEQ_LENGTH = 50


def _detach(state: Optional[tuple]):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(_detach(item) for item in state)


@register_problem("tolstoi_char_rnn")
class TolstoiCharRNN(TestProblem):
    """P8: a 2 × 128 LSTM predicting the next character of War and Peace (83 symbols).

    Embedding 128, two TF-style LSTM layers (forget bias 1.0) each dropping 20 % of
    its input and of its output in training, softmax 128 → 83; 284,499 parameters.
    Loss: per-character cross-entropy averaged over the 50 time steps and the
    batch; accuracy per character.

    The LSTM state is carried from batch to batch (detached, so gradients stop at
    the batch boundary) and reset to zero at the start of every pass, training and
    evaluation alike; evaluation runs the split in stream order at the training batch
    size. A closure from :meth:`get_batch_loss_and_accuracy_func` may be evaluated
    several times: each call starts from the state at the start of its batch.

    Defaults (DeepOBS config): batch size 50, 200 epochs; no L2.
    """

    dataset_name = "Tolstoi (War and Peace)"
    model_name = "char-RNN, 2 × 128 LSTM"
    loss_name = "per-character cross-entropy"
    default_batch_size = 50
    default_num_epochs = 200

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._state = None       # state at the start of the current batch (None = zeros)
        self._next_state = None  # state after the last computation on the current batch

    def _build_data(self, **dataset_kwargs):
        return Tolstoi(self._batch_size, seq_length=SEQ_LENGTH, **dataset_kwargs)

    def _build_net(self):
        return CharRNN(Tolstoi.vocab_size)

    # ----------------------------------------------------------------- state
    def reset_state(self) -> None:
        """Zero the LSTM state (done at the start of every pass)."""
        self._state = None
        self._next_state = None

    def _advance_state(self) -> None:
        """Make the state reached on the previous batch the start state of the next."""
        if self._next_state is not None:
            self._state = _detach(self._next_state)
            self._next_state = None

    def _start_phase(self, phase: str) -> None:
        super()._start_phase(phase)
        self.reset_state()

    def _get_next_batch(self):
        batch = super()._get_next_batch()
        self._advance_state()
        return batch

    # ------------------------------------------------------------ computation
    def _compute(self, inputs, targets):
        logits, self._next_state = self.net(inputs, self._state)
        return character_losses(logits, targets)

    def _eval_batches(self, phase: str):
        self.reset_state()
        for batch in self.data.batches(phase):  # stream order, training batch size
            self._advance_state()
            yield batch

    def evaluate(self, phase: str):
        """As :meth:`TestProblem.evaluate`, with the state carried through the pass
        and reset before and after it."""
        try:
            return super().evaluate(phase)
        finally:
            self.reset_state()

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The carried LSTM state (the state the next batch starts from)."""
        state = self._next_state if self._next_state is not None else self._state
        return {"lstm_state": _detach(state)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the carried LSTM state saved by :meth:`state_dict` (checkpoints)."""
        self._state = state.get("lstm_state")
        self._next_state = None


__all__ = ["TolstoiCharRNN"]
