"""What a run has measured and where it stands: the per-epoch lists (TrainingLog) and the
position and objects a checkpoint is made of (RunProgress)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Optional

from deepobs.runners import checkpoint


class TrainingLog:
    """The per-epoch lists of a run, and its divergence record."""

    def __init__(self, tproblem):
        self.has_accuracy = tproblem.has_accuracy
        self.phases = ["train_eval", "valid", "test"] if tproblem.data.has_validation else ["train_eval", "test"]
        self.losses = {phase: [] for phase in self.phases}
        self.accuracies = {phase: [] for phase in self.phases}
        self.minibatch_train_losses: list = []
        self.train_times: list = []
        self.eval_times: list = []
        #: The learning rate at each evaluation point (the first step of each epoch).
        self.learning_rates: list = []
        self.diverged_at: Optional[dict] = None
        self.divergence_reason = "loss"
        #: Per-epoch lists of the problem's extra metrics, by result key.
        self.extra_metrics: dict = {}

    def diverge(self, reason: str, step: int) -> int:
        """Note what became non-finite ("loss", "parameters", "gradients"); returns ``step``."""
        self.divergence_reason = reason
        return step

    def state_dict(self) -> dict:
        """The lists measured so far (for checkpoints)."""
        return {"losses": self.losses, "accuracies": self.accuracies,
                "minibatch_train_losses": self.minibatch_train_losses,
                "train_times": self.train_times, "eval_times": self.eval_times,
                "extra_metrics": self.extra_metrics, "learning_rates": self.learning_rates}

    def load_state_dict(self, state: dict) -> None:
        """Restore the lists saved by :meth:`state_dict` (checkpoints)."""
        for name, value in state.items():
            setattr(self, name, value)

    def record(self, phase: str, loss: float, accuracy: Optional[float]) -> None:
        """Append one evaluation's loss (and accuracy, if any) of ``phase``."""
        self.losses[phase].append(loss)
        if accuracy is not None:
            self.accuracies[phase].append(accuracy)

    def record_extras(self, phase: str, metrics: dict) -> None:
        """Append a problem's extra metrics (``TestProblem.extra_metrics``) of ``phase``."""
        prefix = {"train_eval": "train", "valid": "valid", "test": "test"}[phase]
        for name, value in metrics.items():
            self.extra_metrics.setdefault(f"{prefix}_{name}", []).append(float(value))

    def mark_diverged(self, epoch: int, step: int, num_epochs: int) -> None:
        """Record the divergence and pad every per-epoch list to num_epochs+1 entries with
        its epoch-0 value, as DeepOBS does, so that tools expecting full lists work."""
        self.diverged_at = {"epoch": epoch, "step": step, "reason": self.divergence_reason}
        for lists in (self.losses, self.accuracies, self.extra_metrics):
            for values in lists.values():
                if values:
                    values.extend([values[0]] * (num_epochs + 1 - len(values)))

    def write_tensorboard(self, writer, epoch: int) -> None:
        """Write the last evaluation's losses and accuracies to a TensorBoard writer."""
        for phase in self.phases:
            writer.add_scalar(f"{phase}/loss", self.losses[phase][-1], epoch)
            if self.accuracies[phase]:
                writer.add_scalar(f"{phase}/accuracy", self.accuracies[phase][-1], epoch)

    def output(self) -> dict:
        """The per-epoch lists and divergence record under their result-file keys."""
        key = {"train_eval": "train", "valid": "valid", "test": "test"}
        output = {f"{key[phase]}_losses": self.losses[phase] for phase in self.phases}
        output["minibatch_train_losses"] = self.minibatch_train_losses
        if self.has_accuracy:
            output.update({f"{key[phase]}_accuracies": self.accuracies[phase] for phase in self.phases})
        output.update(self.extra_metrics)
        output["diverged"] = self.diverged_at is not None
        output["diverged_at"] = self.diverged_at
        output["train_times"] = self.train_times
        output["eval_times"] = self.eval_times
        output["learning_rates"] = self.learning_rates
        return output


#: On a log file (not a terminal), a progress line at most this often (seconds).
PLAIN_PROGRESS_INTERVAL = 30.0
_LAST_PLAIN_LINE = {"at": time.monotonic()}


def progress_bar(total: int, description: str, quiet: bool, initial: int = 0):
    """A tqdm bar on a terminal; on a log file, a :class:`PlainProgress` (rate-limited
    lines, so that a job's log shows it is alive); None when quiet."""
    if quiet:
        return None
    if not sys.stderr.isatty():
        return PlainProgress(total, description, initial)
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainProgress(total, description, initial)
    return tqdm(total=total, desc=description, leave=False, file=sys.stderr, initial=initial)


class PlainProgress:
    """Progress as plain lines on stderr, at most one every PLAIN_PROGRESS_INTERVAL seconds
    across all bars of the process."""

    def __init__(self, total: int, description: str, initial: int = 0):
        self.total, self.description, self.done = total, description, initial
        self.postfix = ""
        self.started = time.monotonic()

    def set_postfix_str(self, text: str) -> None:
        """What the pass is doing now (e.g. the evaluation phase)."""
        self.postfix = text

    def update(self, count: int = 1) -> None:
        """Count ``count`` more items; print a line if the last one is old enough."""
        self.done += count
        now = time.monotonic()
        if now - _LAST_PLAIN_LINE["at"] >= PLAIN_PROGRESS_INTERVAL:
            _LAST_PLAIN_LINE["at"] = now
            share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
            postfix = f", {self.postfix}" if self.postfix else ""
            print(f"{self.description}: {self.done}/{self.total}{share}{postfix}, "
                  f"{now - self.started:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to clean up (the interface of a tqdm bar)."""


class EvaluationStopped(Exception):
    """A signal arrived during an evaluation; it is abandoned and redone on resume."""


@dataclass
class RunProgress:
    """Where a run stands, and the objects a checkpoint is made of.

    ``pending`` holds a checkpoint being resumed until the interrupted training pass
    has been re-drawn: the data order of that pass is drawn again from the generator
    state of its start, the batches already trained on are skipped, and only then are
    the random streams set to their state at the checkpoint.
    """

    tproblem: object
    optimizer: object
    log: TrainingLog
    epoch: int = 0
    step: int = 0
    evaluated: bool = False
    epoch_started: float = 0.0
    train_time_before: float = 0.0
    pass_start_data: Optional[dict] = None
    pending: Optional[dict] = field(default=None, repr=False)

    def resume_from(self, state: dict) -> None:
        """Load model, optimizer and lists; streams follow in :meth:`start_pass`."""
        try:
            self.tproblem.net.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise checkpoint.CheckpointError(
                f"the checkpoint does not fit this run's model or optimizer ({first_line}); "
                "use --overwrite to start again") from None
        self.log.load_state_dict(state["log"])
        self.epoch, self.step, self.evaluated = state["epoch"], state["step"], state["evaluated"]
        self.train_time_before = state["epoch_train_time"]
        self.pending = state
        if not self.evaluated:  # stopped before (or during) an evaluation: redo it from here
            self._restore_streams(state)
            self.pending = None

    def before_evaluation(self) -> None:
        """Remember the streams and list lengths, in case a signal stops the evaluation."""
        log = self.log
        self._before_evaluation = {
            "rng": checkpoint.capture_rng_state(), "data": self.tproblem.data.state_dict(),
            "problem": self.tproblem.state_dict(),
            "lengths": {name: {key: len(values) for key, values in lists.items()}
                        for name, lists in (("losses", log.losses), ("accuracies", log.accuracies),
                                            ("extra_metrics", getattr(log, "extra_metrics", {})))},
        }

    def undo_evaluation(self) -> None:
        """Return to the state before the stopped evaluation (it is redone on resume)."""
        saved = self._before_evaluation
        self._restore_streams(saved)
        for name, lengths in saved["lengths"].items():
            lists = getattr(self.log, name)
            for key in list(lists):
                del lists[key][lengths.get(key, 0):]
                if key not in lengths and name == "extra_metrics":
                    del lists[key]
        self.evaluated = False

    def start_pass(self) -> int:
        """Start (or re-enter) the training pass of this epoch; returns its first step."""
        data = self.tproblem.data
        pending, self.pending = self.pending, None
        if pending is not None:
            data.load_state_dict(pending["data_pass_start"])
        self.pass_start_data = data.state_dict()
        self.tproblem.train_init_op()
        if pending is None:
            return 0
        for _ in range(pending["step"]):  # re-draw the batches trained on before the stop
            self.tproblem.get_batch_loss_and_accuracy_func()
        self._restore_streams(pending)
        return pending["step"]

    def _restore_streams(self, state: dict) -> None:
        self.tproblem.data.load_state_dict(state["data"])
        self.tproblem.load_state_dict(state["problem"])
        checkpoint.restore_rng_state(state["rng"])

    def epoch_train_time(self) -> float:
        return self.train_time_before + time.perf_counter() - self.epoch_started

    def next_epoch(self) -> None:
        self.epoch, self.step, self.evaluated, self.train_time_before = self.epoch + 1, 0, False, 0.0

    def snapshot(self, wall_time: float, resumed_at: list) -> dict:
        """Everything a checkpoint holds (tensors and plain containers)."""
        data_now = self.tproblem.data.state_dict()
        mid_pass = self.step > 0
        return {
            "epoch": self.epoch, "step": self.step, "evaluated": self.evaluated,
            "model": self.tproblem.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "log": self.log.state_dict(),
            "rng": checkpoint.capture_rng_state(),
            "data": data_now,
            "data_pass_start": self.pass_start_data if mid_pass else data_now,
            "problem": self.tproblem.state_dict(),
            "epoch_train_time": self.epoch_train_time() if mid_pass else 0.0,
            "wall_time": wall_time,
            "resumed_at": resumed_at,
        }

