"""A sweep's own files: failures with their errors, progress, and the tuning summary.

They live in ``<output_dir>/.deepobs_tune/<sweep name>/``, beside the result tree but
never named ``random_seed__*.json``, so result loaders do not mistake them for runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Optional

from deepobs.runners.results import write_json_atomic
from deepobs.safe_names import join_under
from deepobs.tuner.runs import RunOutcome

STATE_FOLDER = ".deepobs_tune"


def state_dir(output_dir, sweep_name: str) -> Path:
    """Where a sweep keeps its own files (the name is checked to stay inside ``output_dir``)."""
    return join_under(output_dir, STATE_FOLDER, sweep_name, what="sweep name")


class SweepRecords:
    """Writes failure records, progress.json and summary.json of one sweep.

    Args:
        folder: the sweep's state folder (None: record nothing).
    """

    def __init__(self, folder: Optional[Path]):
        self.folder = Path(folder) if folder is not None else None

    def _failure_path(self, outcome: RunOutcome) -> Path:
        digest = hashlib.sha1(outcome.run.key().encode()).hexdigest()[:16]
        return join_under(self.folder / "failures", f"{outcome.run.testproblem}__{digest}.json",
                          what="failure record")

    def record(self, outcome: RunOutcome) -> None:
        """Keep a failed run's error; forget an old failure of a run that now worked."""
        if self.folder is None:
            return
        path = self._failure_path(outcome)
        if outcome.status == "failed":
            write_json_atomic(path, {
                "run": outcome.run.to_dict(), "key": outcome.run.key(), "command": outcome.run.command(),
                "error": outcome.error, "traceback": outcome.details,
                "time": time.strftime("%Y-%m-%d %H:%M:%S"), **outcome.extra})
        else:
            path.unlink(missing_ok=True)

    def failures(self) -> list:
        """The recorded failures (dicts), oldest first."""
        if self.folder is None or not (self.folder / "failures").is_dir():
            return []
        records = []
        for path in sorted((self.folder / "failures").glob("*.json")):
            try:
                with open(path) as stream:
                    record = json.load(stream)
            except (OSError, ValueError, RecursionError) as error:  # a damaged record still counts
                record = {"error": f"unreadable failure record {path.name}: {type(error).__name__}"}
            records.append(record if isinstance(record, dict) else {"error": f"damaged record {path.name}"})
        return sorted(records, key=lambda record: str(record.get("time", "")))

    def write(self, name: str, data: dict) -> Optional[Path]:
        """Write ``<folder>/<name>.json`` atomically."""
        if self.folder is None:
            return None
        return write_json_atomic(self.folder / f"{name}.json", data)
