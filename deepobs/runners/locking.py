"""A per-run lock file, so that two processes never run the same setting and seed at once."""

from __future__ import annotations

import errno
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are then not protected against twins
    fcntl = None


class RunLockedError(RuntimeError):
    """Another live process holds the lock of this run."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``<setting>/.random_seed__<seed>.lock``.

    The kernel drops the lock when its holder dies, even by SIGKILL, so a killed run
    never blocks its resumption. The file itself stays (deleting it would let two
    processes lock two different files of the same name).

    Use as a context manager; raises :class:`RunLockedError` when the lock is held.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._descriptor = None

    def acquire(self) -> "RunLock":
        """Take the lock; raises RunLockedError if another process holds it."""
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            self._descriptor = descriptor
            return self
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _read_holder(self.path)
                raise RunLockedError(
                    f"another process{holder} is running this setting and seed (lock {str(self.path)!r})"
                ) from None
            raise
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor
        return self

    def release(self) -> None:
        """Give the lock back (nothing if it is not held)."""
        if self._descriptor is not None:
            if fcntl is not None:
                fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._descriptor is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def _read_holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def lock_path(run_folder, random_seed: int) -> Path:
    """``<setting>/.random_seed__<seed>.lock`` (hidden: not a result)."""
    return Path(run_folder) / f".random_seed__{random_seed}.lock"
