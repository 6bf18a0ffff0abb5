"""Where a result came from, beyond deepobs's and torch's versions: the package of the
optimizer (its version can change the numbers as much as torch's) and the kind of
machine (a baseline is reproducible bit for bit only on the same kind)."""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Callable, Optional


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    """Top-level module -> distributions, read once per process: scanning every installed
    package takes about 0.4 s, which a sweep's worker would otherwise pay on every run."""
    return metadata.packages_distributions()


def optimizer_package(build: Callable) -> Optional[dict]:
    """``{"name", "version"}`` of the installed distribution that defines ``build``
    (``torch`` for torch.optim, ``pytorch_optimizer``, ...); None for code outside any
    installed package (a user's own module)."""
    module = getattr(build, "__module__", None) or ""
    top = module.split(".")[0]
    if not top or top == "__main__":
        return None
    names = _distributions().get(top) or [top]
    for name in names:
        try:
            return {"name": name, "version": metadata.version(name)}
        except metadata.PackageNotFoundError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """The machine kind: CPU model, logical cores, operating system."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        lines = []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or platform.machine()
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.platform(terse=True)}
