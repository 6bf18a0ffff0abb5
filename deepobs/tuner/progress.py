"""Progress of a whole sweep: runs done, failed and remaining, and the time left."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Optional, TextIO

from deepobs.tuner.runs import RunOutcome


def format_seconds(seconds: Optional[float]) -> str:
    """``0:01:23`` (or ``?`` when unknown)."""
    if seconds is None:
        return "?"
    return str(timedelta(seconds=round(seconds)))


class SweepProgress:
    """Counts outcomes and estimates the time left from the sweep's own throughput.

    Runs found finished (``exists``) count as done but not towards the throughput,
    so a resumed sweep does not look faster than it is.

    Args:
        total: runs in the sweep (may grow, e.g. when reruns of the best setting are added).
        stream: where one line per finished run is written (None: silent).
    """

    def __init__(self, total: int = 0, stream: Optional[TextIO] = sys.stderr):
        self.total = total
        self.stream = stream
        self.done = 0
        self.failed = 0
        self.existed = 0
        self.executed = 0
        self.elsewhere = 0
        self.started = time.perf_counter()

    def add(self, runs: int) -> None:
        """Add runs to the total."""
        self.total += runs

    @property
    def remaining(self) -> int:
        """Runs neither done nor failed yet."""
        return max(self.total - self.done - self.failed, 0)

    def eta_seconds(self) -> Optional[float]:
        """Remaining runs divided by the throughput of the runs executed so far."""
        if not self.executed:
            return None
        elapsed = time.perf_counter() - self.started
        return self.remaining * elapsed / self.executed

    def update(self, outcome: RunOutcome) -> None:
        """Count one outcome and write its line."""
        if outcome.status == "failed":
            self.failed += 1
            self.executed += 1
        else:
            self.done += 1
            if outcome.status == "exists":
                self.existed += 1
            else:
                self.executed += 1
        if self.stream is not None:
            print(self.line(outcome), file=self.stream, flush=True)

    def running_elsewhere(self, run) -> None:
        """Note a run that another process holds (another driver, a requeued job): it is
        waited for, not failed."""
        self.elsewhere += 1
        if self.stream is not None:
            print(f"[{self.counts()}] {run.label()}: running elsewhere (another process holds it); waiting",
                  file=self.stream, flush=True)

    def counts(self) -> str:
        """The progress counters and ETA as one line."""
        return (f"{self.done + self.failed}/{self.total} | done {self.done} | failed {self.failed} "
                f"| remaining {self.remaining} | ETA {format_seconds(self.eta_seconds())}")

    def line(self, outcome: RunOutcome) -> str:
        """The progress line written for one finished run."""
        if outcome.status == "failed":
            what = f"FAILED: {outcome.error}"
        elif outcome.status == "exists":
            what = "done elsewhere" if outcome.extra.get("elsewhere") else "already done"
        else:
            what = f"done in {outcome.seconds:.1f} s"
        return f"[{self.counts()}] {outcome.run.label()}: {what}"

    def as_dict(self) -> dict:
        """For the sweep's progress.json."""
        return {"total": self.total, "done": self.done, "failed": self.failed,
                "already_done": self.existed, "waited_for_elsewhere": self.elsewhere,
                "remaining": self.remaining,
                "elapsed_seconds": time.perf_counter() - self.started,
                "eta_seconds": self.eta_seconds()}
