"""A ceiling on the memory of a ``deepobs-run`` process on the CPU.

An optimizer that asks for more memory than the machine has (Kron's preconditioners on a
conv net ask for 12 GB at once) gets the process killed by the operating system: exit
status -9 and not one line saying why. With a ceiling on the process's address space the
allocation fails inside the process instead, and the run stops with a one-line error
naming the optimizer and the size it asked for.

The ceiling is what the process has mapped now plus the memory the machine has available
now (``/proc/meminfo``: MemAvailable + SwapFree). ``DEEPOBS_MEMORY_LIMIT`` sets the second
part in GiB instead (how much the run may add to what it has mapped); ``0`` turns it off. GPU runs get none (CUDA maps far more address space than it
uses), nor do systems without ``/proc`` or ``resource``; a lower limit already set (``ulimit
-v``) is kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from deepobs.errors import ConfigurationError

#: Environment variable: GiB the run may map beyond what it has mapped when the ceiling is set (0 = no ceiling).
LIMIT_ENV = "DEEPOBS_MEMORY_LIMIT"
GIB = 1024 ** 3


def _kib_fields(path: str) -> dict:
    """``{name: bytes}`` of a /proc file of ``Name: value kB`` lines; {} where it is absent."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {}
    return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines
            if line.split()[1:2] and line.split()[1].isdigit()}


def _meminfo_bytes(*keys: str) -> Optional[int]:
    values = _kib_fields("/proc/meminfo")
    return sum(values.get(key, 0) for key in keys) if values else None


def _mapped_bytes() -> int:
    """This process's current virtual size (VmSize)."""
    return _kib_fields("/proc/self/status").get("VmSize", 0)


def ceiling_bytes() -> Optional[int]:
    """The address-space ceiling for this process, or None for none."""
    value = os.environ.get(LIMIT_ENV, "").strip()
    if value:
        try:
            gib = float(value)
        except ValueError:
            raise ConfigurationError(f"{LIMIT_ENV}={value!r}: expected a number of GiB (0 = no limit)") from None
        if not gib >= 0:
            raise ConfigurationError(f"{LIMIT_ENV}={value!r}: expected a number of GiB >= 0 (0 = no limit)")
        if gib == 0:
            return None
        return _mapped_bytes() + int(gib * GIB)
    available = _meminfo_bytes("MemAvailable", "SwapFree")
    return None if not available else _mapped_bytes() + available


def limit_cpu_memory(device: Optional[str]) -> Optional[int]:
    """Set the ceiling for a CPU run (see the module docstring); returns it in bytes, or
    None when none was set."""
    try:
        import resource
    except ImportError:
        return None
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not str(device).startswith("cpu"):
        return None
    ceiling = ceiling_bytes()
    if ceiling is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and soft <= ceiling:
        return None
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    return ceiling
