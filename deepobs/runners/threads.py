"""How many CPU threads a run uses: what the machine grants it, less what others keep busy.

Torch's default (one thread per core) collapses on a shared machine: its threads wait
for each other at every operation, and one of them always waits for a core that another
process holds (mnist_mlp, 2 cores, one busy: 3 min with 2 threads, 16 s with 1). So the
default counts the cores this process may use (CPU affinity, a cgroup quota,
``SLURM_CPUS_PER_TASK``) and subtracts the cores other processes keep busy right now
(sampled from /proc/stat for a tenth of a second). ``--threads N``,
``OMP_NUM_THREADS`` or the process's own ``torch.set_num_threads`` choose explicitly.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Optional

import torch


def granted_cores() -> tuple:
    """``(cores, why)``: the cores this process may use and what limits them."""
    limits = []
    try:
        limits.append((len(os.sched_getaffinity(0)), "CPU affinity"))
    except (AttributeError, OSError):
        limits.append((os.cpu_count() or 1, "cores"))
    quota = _cgroup_quota()
    if quota is not None:
        limits.append((quota, "cgroup CPU quota"))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        limits.append((int(slurm), "SLURM_CPUS_PER_TASK"))
    return min(limits)


def _cgroup_quota() -> Optional[int]:
    """The CPU quota of this process's cgroup in whole cores (v2 ``cpu.max`` or v1), or None."""
    candidates = [(Path("/sys/fs/cgroup/cpu.max"), None),
                  (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))]
    for quota_file, period_file in candidates:
        try:
            words = quota_file.read_text().split()
            if period_file is not None:
                words = [words[0], period_file.read_text().split()[0]]
        except (OSError, IndexError):
            continue
        if len(words) >= 2 and words[0] not in ("max", "-1"):
            try:
                return max(1, math.ceil(int(words[0]) / int(words[1])))
            except (ValueError, ZeroDivisionError):
                return None
    return None


_LAST_SAMPLE: dict = {}
#: A sample is reused for this long (runs started one after another in one process).
SAMPLE_REUSE_SECONDS = 10.0


def busy_cores(seconds: float = 0.1) -> float:
    """Cores kept busy by all processes over ``seconds`` (from /proc/stat; 0 if unreadable);
    a sample younger than SAMPLE_REUSE_SECONDS is reused."""
    now = time.monotonic()
    if _LAST_SAMPLE and now - _LAST_SAMPLE["at"] < SAMPLE_REUSE_SECONDS:
        return _LAST_SAMPLE["busy"]
    busy = _sample_busy_cores(seconds)
    _LAST_SAMPLE.update(at=time.monotonic(), busy=busy)
    return busy


def _sample_busy_cores(seconds: float) -> float:
    """Busy cores of the whole machine over the window, less this process's own
    (idle torch threads may still spin after a run)."""
    def sample():
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        values = [int(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        own_before, wall_before = time.process_time(), time.monotonic()
        total_before, idle_before = sample()
        time.sleep(seconds)
        total_after, idle_after = sample()
        own, wall = time.process_time() - own_before, time.monotonic() - wall_before
    except (OSError, ValueError, IndexError):
        return 0.0
    elapsed = total_after - total_before
    if elapsed <= 0 or wall <= 0:
        return 0.0
    everyone = (1 - (idle_after - idle_before) / elapsed) * (os.cpu_count() or 1)
    return max(0.0, everyone - own / wall)


#: torch's thread count when deepobs was imported, and whether a run of this process
#: (or of the process it was forked from) has already chosen. The count is chosen once,
#: when the first run starts, and only if the process's own code has not set one with
#: ``torch.set_num_threads``; later runs keep it. (Forked children matter: a child forked
#: after its parent used a pool of several threads hangs in its first parallel operation,
#: so a child's own ``torch.set_num_threads(1)`` must be kept.)
_TORCH_THREADS = {"at_import": torch.get_num_threads(), "chosen": False}


def apply_threads(requested: Optional[int] = None) -> Optional[str]:
    """Set torch's CPU threads for a run (see :func:`choose_threads`); returns the note."""
    threads, note = choose_threads(requested)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    _TORCH_THREADS["chosen"] = True
    return note


def choose_threads(requested: Optional[int] = None) -> tuple:
    """``(threads, note)``: ``requested`` if given, else ``OMP_NUM_THREADS`` if set, else
    the count already in force when this process chose before or its own code set one,
    else the granted cores less the busy ones (at least 1). ``note`` is a one-line hint
    when other work leaves this run fewer cores than it was granted, else None."""
    if requested is not None:
        return requested, None
    environment = os.environ.get("OMP_NUM_THREADS", "")
    if environment.isdigit() and int(environment) > 0:
        return int(environment), None
    current = torch.get_num_threads()
    if _TORCH_THREADS["chosen"] or current != _TORCH_THREADS["at_import"]:
        return current, None
    granted, why = granted_cores()
    if granted == 1:
        return 1, None
    busy = busy_cores()
    idle = max(1, min(granted, (os.cpu_count() or granted) - round(busy)))
    if idle < granted:
        return idle, (f"note: other work keeps {granted - idle} of the {granted} cores this run may use "
                      f"({why}) busy; using {idle} thread{'s' if idle > 1 else ''} (--threads N to choose)")
    return granted, None
