"""When a run counts as diverged: one definition for the analyzer, its plots and the tuner.

A run diverged when the runner flagged it (a loss, a parameter or a gradient became NaN
or infinite and the run stopped), or when one of its loss curves is not finite or rises
above :data:`LOSS_BOUND` times its epoch-0 (untrained) value. The bound catches runs that
blow up without overflowing (a validation loss of 4e19 is finite): drawn as ordinary
points they would stretch every axis until the other curves look flat. Diverged runs are
left out of means and ranked last; plots mark them instead of scaling an axis to them.
The rule is documented in docs/results.md ("Diverged runs").
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

#: A loss above this many times its epoch-0 value means the run diverged. Training and
#: held-out losses of a sane run stay within a small factor of their untrained value
#: (overfitting raises a validation loss by a few times, not a thousand).
LOSS_BOUND = 1000.0

#: The per-epoch curves the rule looks at.
LOSS_KEYS = ("train_losses", "valid_losses", "test_losses")


def divergence_epoch(curve: Optional[Sequence[float]]) -> Optional[int]:
    """The first epoch whose loss is not finite or above LOSS_BOUND x the epoch-0 loss;
    None when there is none (or no curve)."""
    if curve is None or len(curve) == 0:
        return None
    values = [math.nan if v is None else float(v) for v in curve]
    start = values[0]
    bound = LOSS_BOUND * abs(start) if math.isfinite(start) and start != 0 else math.inf
    for epoch, value in enumerate(values):
        if not math.isfinite(value) or value > bound:
            return epoch
    return None


def run_divergence(data: Mapping) -> tuple:
    """``(diverged, epoch)`` of one run's result dict (v1.1 or v1.2 keys).

    ``epoch`` is where its curves stop being usable: the runner's ``diverged_at`` epoch
    when it flagged the run (the lists after it are padding), else the first epoch a loss
    curve broke the rule, else None.
    """
    flagged = bool(data.get("diverged", False))
    at = data.get("diverged_at")
    if flagged and isinstance(at, Mapping) and at.get("epoch") is not None:
        return True, int(at["epoch"])
    epochs = [e for e in (divergence_epoch(data.get(key)) for key in LOSS_KEYS) if e is not None]
    if epochs:
        return True, min(epochs)
    return flagged, None
