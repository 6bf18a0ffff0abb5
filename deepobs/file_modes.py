"""Permissions of files written through a temporary file.

``tempfile.mkstemp`` creates files readable by their owner only (0600), which an atomic
write then renames into place; a result folder shared with colleagues would hold files
they cannot read. :func:`follow_umask` gives such a file the mode an ordinary ``open``
would have given it (0666 minus the umask, usually 0644 or 0664).
"""

from __future__ import annotations

import os
import threading

_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows
    (``/proc/self/status``), else by setting and restoring it under a lock."""
    try:
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def follow_umask(descriptor: int) -> None:
    """Give the open file ``descriptor`` the mode of an ordinarily created file."""
    if hasattr(os, "fchmod"):
        os.fchmod(descriptor, 0o666 & ~current_umask())


__all__ = ["current_umask", "follow_umask"]
