"""Timing by alternation (medians of interleaved repeats) and peak memory of a call.

On a shared machine the load changes from second to second; running the variants
in turn, rotating which goes first, and taking medians makes their ratios fair.
"""

from __future__ import annotations

import statistics
import threading
import psutil
import torch


class PeakMemory:
    """Peak memory while the block runs: resident set size (sampled every 2 ms) on CPU,
    ``max_memory_allocated`` on a GPU. ``peak`` is in bytes, ``extra`` is the growth
    over the value at the start."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0
        self.extra = 0
        self._stop = threading.Event()

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        process = psutil.Process()
        self._start = self.peak = process.memory_info().rss

        def sample():
            while not self._stop.wait(0.002):
                self.peak = max(self.peak, process.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, psutil.Process().memory_info().rss)
        self.extra = self.peak - self._start
        return False


def alternate(variants: dict, repeats: int, device: torch.device, min_seconds: float = 1.0,
              max_repeats: int = 50) -> dict:
    """Run every variant ``repeats`` times in turn (rotating the order) after one
    warm-up each; more times (up to ``max_repeats``) when a run is so short that
    ``repeats`` runs would take less than ``min_seconds`` (noise). ``variants`` maps a
    name to a callable returning ``{part: seconds}``.

    Returns ``{name: {"parts": {part: median s}, "total": median s, "runs": [{part: s}],
    "peak_bytes": ..., "extra_bytes": ...}}``.
    """
    names = list(variants)
    runs = {name: [] for name in names}
    memory = {}
    longest = 0.0
    for name in names:  # warm-up, and the memory figure (first run: allocator state fresh)
        with PeakMemory(device) as peak:
            longest = max(longest, sum(variants[name]().values()))
        memory[name] = (peak.peak, peak.extra)
    repeats = max(repeats, min(max_repeats, int(min_seconds / max(longest, 1e-6))))
    for repeat in range(repeats):
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            runs[name].append(variants[name]())
    results = {}
    for name in names:
        parts = {part: statistics.median(run[part] for run in runs[name]) for part in runs[name][0]}
        results[name] = {"parts": parts, "total": statistics.median(sum(run.values()) for run in runs[name]),
                         "runs": runs[name], "peak_bytes": memory[name][0], "extra_bytes": memory[name][1]}
    return results


def paired_ratio(results: dict, numerator: str, denominator: str, parts=None) -> float:
    """Median over the repeats of ``numerator / denominator``, each repeat's two runs
    taken side by side (summing ``parts``, or everything)."""

    def seconds(run):
        return sum(run[part] for part in parts) if parts else sum(run.values())

    pairs = zip(results[numerator]["runs"], results[denominator]["runs"])
    return statistics.median(seconds(a) / seconds(b) for a, b in pairs)


def paired_overhead(results: dict, variant: str, floor: str) -> float:
    """Median over the repeats of ``variant``'s epoch minus the floor's, side by side:
    the seconds the harness adds to the model's own arithmetic."""
    pairs = zip(results[variant]["runs"], results[floor]["runs"])
    return statistics.median(sum(a.values()) - sum(b.values()) for a, b in pairs)
