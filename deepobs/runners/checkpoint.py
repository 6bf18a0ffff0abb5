"""Checkpoints of a run in progress, written atomically next to its result, and the
configuration hash and provenance every result file records.

A checkpoint holds everything the rest of the run depends on: model, optimizer and
scheduler states, every random stream (torch, CUDA, NumPy, Python, the data set's
order / train-eval / augmentation generators, extra problem state such as an LSTM's
hidden state) and the partial result lists. A run resumed from it continues exactly
where it stopped: on the CPU, a run killed at any point and resumed gives the same
numbers, bit for bit, as the same run uninterrupted.

Exit statuses of ``deepobs-run`` (also used by the sweep executors):

* 0 :data:`EXIT_OK` - the run finished (or was skipped because its result exists);
* 1 :data:`EXIT_FAILED` - the run failed (e.g. the disk is full); previous files intact;
* 2 :data:`EXIT_BAD_INPUT` - bad input (one line on stderr, nothing written);
* 3 :data:`EXIT_LOCKED` - another process is running the same setting and seed;
* 75 :data:`EXIT_INTERRUPTED` - stopped by SIGTERM/SIGINT after writing a checkpoint:
  interrupted, resumable; run the same command again with ``--resume``;
* 130 - stopped by SIGINT (twice, or without a checkpoint): not resumable.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from deepobs.errors import ConfigurationError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_LOCKED = 3
EXIT_INTERRUPTED = 75  # BSD sysexits' EX_TEMPFAIL: "try again later"
EXIT_NOT_RESUMABLE = 130

#: Bumped when the checkpoint layout changes; older checkpoints are then refused.
CHECKPOINT_FORMAT = 2


class RunInterrupted(Exception):
    """Raised by a runner stopped by a signal (SIGTERM, SIGINT) after the current step.

    Attributes:
        signal_number: the signal that stopped the run.
        checkpoint_path: the checkpoint just written, or None when the run writes no files
            (``no_logs``) and so cannot be resumed.
    """

    def __init__(self, signal_number: int, checkpoint_path: Optional[Path]):
        self.signal_number = signal_number
        self.checkpoint_path = checkpoint_path
        where = f"checkpoint written to {checkpoint_path}; resume with --resume" if checkpoint_path \
            else "no checkpoint (the run writes no files)"
        super().__init__(f"interrupted by signal {signal_number}: {where}")

    @property
    def resumable(self) -> bool:
        """True when a checkpoint was written, so the run can be resumed."""
        return self.checkpoint_path is not None

    @property
    def exit_status(self) -> int:
        """The exit status of ``deepobs-run``: 75 when resumable, else 130."""
        return EXIT_INTERRUPTED if self.resumable else EXIT_NOT_RESUMABLE


class CheckpointError(ConfigurationError):
    """A checkpoint that cannot be resumed: another configuration, format or unreadable."""


# ------------------------------------------------------------------ configuration
def config_hash(config: dict) -> str:
    """A short, stable hash of a configuration dict (sorted-key JSON, SHA-256, 16 hex)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_GIT_COMMIT: dict = {}


def git_commit() -> Optional[str]:
    """The git commit of the deepobs source tree (``+dirty`` if modified), None outside git."""
    if "value" not in _GIT_COMMIT:
        source = Path(__file__).resolve().parent.parent.parent
        value = None
        try:
            if not (source / ".git").exists():  # an installed copy: no commit to report
                raise OSError("not a git checkout")
            head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                  text=True, timeout=10)
            if head.returncode == 0:
                value = head.stdout.strip()
                dirty = subprocess.run(
                    ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "--", "deepobs"],
                    capture_output=True, text=True, timeout=10)
                if dirty.returncode == 0 and dirty.stdout.strip():
                    value += "+dirty"
        except (OSError, subprocess.SubprocessError):
            value = None
        _GIT_COMMIT["value"] = value
    return _GIT_COMMIT["value"]


# ------------------------------------------------------------------ random streams
def capture_rng_state() -> dict:
    """The global random states: torch (CPU and every CUDA device), NumPy, Python."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["position"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state):
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


# ------------------------------------------------------------------ files
def checkpoint_path(run_folder, random_seed: int) -> Path:
    """``<setting>/random_seed__<seed>.checkpoint.pt``, next to the run's result."""
    return Path(run_folder) / f"random_seed__{random_seed}.checkpoint.pt"


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def save_atomic(path, state: dict, durable: bool = True) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename: a process killed
    at any moment leaves either the previous checkpoint or the new one, never a mix.

    ``durable`` adds the fsyncs (file, then folder) that make the new checkpoint survive
    an operating-system crash or power loss too; they cost milliseconds. The file gets
    the mode of any other new file (the umask's), not mkstemp's 0600.
    """
    from deepobs.file_modes import follow_umask

    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            follow_umask(stream.fileno())
            torch.save(state, stream)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)
    return path


def load(path) -> dict:
    """Read a checkpoint (tensors and plain containers only: no code is unpickled)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns (two lines) about foreign pickle protocols
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, foreign or hostile file
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable ({type(error).__name__}); "
                              "delete it or run with --overwrite to start again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} has an unknown format; "
                              "delete it or run with --overwrite to start again")
    return state


def remove_stale_temporaries(run_folder, random_seed: int) -> None:
    """Delete temporary files a killed writer of this seed left behind (only under the run lock)."""
    folder = Path(run_folder)
    for pattern in (f".random_seed__{random_seed}.checkpoint.pt.*.tmp",
                    f".random_seed__{random_seed}__*.json.*.tmp"):
        for stale in folder.glob(pattern):
            stale.unlink(missing_ok=True)


class Checkpointer:
    """Saves and restores one run's checkpoints.

    Args:
        path: the checkpoint file.
        config: what the checkpoint is bound to (the runner's ``checkpoint_identity``: the
            whole run configuration, seed and versions); a checkpoint of another one is refused.
        every_steps: also save every that many training steps (0: at epoch ends only).
        resume: continue from an existing checkpoint (else one is refused, see :meth:`load_existing`).
        durable_seconds: fsync a checkpoint when the last fsynced one is at least this old
            (and always when the run stops on a signal). Every checkpoint survives the
            death of the process; this bounds what an OS crash can lose while keeping
            checkpoints of millisecond epochs (quadratic, 2-D problems) cheap.
    """

    def __init__(self, path, config: dict, every_steps: int = 0, resume: bool = False,
                 durable_seconds: float = 10.0):
        self.path = Path(path)
        self.config = config
        self.hash = config_hash(config)
        self.every_steps = int(every_steps)
        self.resume = resume
        self.durable_seconds = float(durable_seconds)
        self.saved = 0
        self._last_durable = None

    def load_existing(self, overwrite: bool = False) -> Optional[dict]:
        """The checkpoint to resume from, or None to start from scratch.

        An existing checkpoint is resumed with ``resume``, discarded with ``overwrite``
        and otherwise refused, so that the progress of an interrupted run is never lost
        by accident.
        """
        if not self.path.exists():
            return None
        if overwrite and not self.resume:
            return None
        state = load(self.path)
        if not self.resume:
            raise CheckpointError(
                f"an interrupted run left a checkpoint at epoch {state['epoch']}, step {state['step']}: "
                f"{str(self.path)!r}; use --resume to continue it or --overwrite to start again")
        if state["config_hash"] != self.hash:
            differing = sorted(key for key in set(self.config) | set(state["config"])
                               if self.config.get(key) != state["config"].get(key))
            raise CheckpointError(
                f"checkpoint {str(self.path)!r} belongs to another configuration (differs in "
                f"{', '.join(differing) or 'its hash'}); use --overwrite to start again")
        return state

    def save(self, state: dict, final: bool = False) -> Path:
        """Write ``state`` (the runner's snapshot) atomically; ``final``: the run stops now."""
        state = {"format": CHECKPOINT_FORMAT, "config": self.config, "config_hash": self.hash, **state}
        now = time.monotonic()
        durable = final or self._last_durable is None or now - self._last_durable >= self.durable_seconds
        save_atomic(self.path, state, durable=durable)
        if durable:
            self._last_durable = now
        self.saved += 1
        return self.path

    def remove(self) -> None:
        """Delete the checkpoint (once the run's result is written)."""
        self.path.unlink(missing_ok=True)


__all__ = [
    "Checkpointer", "RunInterrupted", "CheckpointError",
    "config_hash", "git_commit", "capture_rng_state", "restore_rng_state", "checkpoint_path",
    "save_atomic", "load", "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_LOCKED",
    "EXIT_INTERRUPTED", "EXIT_NOT_RESUMABLE",
]
