"""DeepOBS result files: folder and file names, number formatting, atomic writes.

Layout (docs/results.md)::

    <output_dir>/<testproblem>/<optimizer_name>/<setting>/random_seed__<seed>__<time>.json
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

from deepobs.errors import ConfigurationError


def float2str(value: float) -> str:
    """DeepOBS's float format: 10-decimal scientific notation, mantissa zeros stripped.

    >>> float2str(0.01), float2str(0.99), float2str(10 ** -4.8)
    ('1.e-02', '9.9e-01', '1.5848931925e-05')
    """
    mantissa, exponent = f"{float(value):.10e}".split("e")
    return f"{mantissa.rstrip('0')}e{exponent}"


def format_value(value) -> str:
    """A value as it appears in a setting folder name: floats by :func:`float2str`
    (infinities as ``inf``), tuples joined by ``_``, everything else by ``str``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return float2str(value) if math.isfinite(value) else str(value)
    if isinstance(value, (tuple, list)):
        return "_".join(format_value(item) for item in value) if value else "empty"
    return str(value)


def setting_name_v11(num_epochs: int, batch_size: int, learning_rate: float, hyperparams: dict,
                     weight_decay: Optional[float] = None, lr_sched_epochs=None,
                     lr_sched_factors=None) -> str:
    """The v1.1 setting folder name (the published baselines' layout).

    ``hyperparams`` excludes the learning rate, which comes last as ``lr__<lr>`` or,
    with a schedule, ``lr_schedule__0_<lr>_<e1>_<lr·f1>...``.
    """
    name = f"num_epochs__{num_epochs}__batch_size__{batch_size}__"
    if weight_decay is not None:
        name += f"weight_decay__{format_value(float(weight_decay))}__"
    for key in sorted(hyperparams):
        name += f"{key}__{format_value(hyperparams[key])}__"
    if lr_sched_epochs is None:
        name += f"lr__{float2str(learning_rate)}"
    else:
        pieces = ["0", float2str(learning_rate)]
        for epoch, factor in zip(lr_sched_epochs, lr_sched_factors):
            pieces += [str(epoch), float2str(learning_rate * factor)]
        name += "lr_schedule__" + "_".join(pieces)
    return name


def run_file_name(random_seed: int, timestamp: Optional[float] = None) -> str:
    """``random_seed__<seed>__<YYYY-MM-DD-HH-MM-SS>.json``."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime(timestamp))
    return f"random_seed__{random_seed}__{stamp}.json"


def find_run(setting_dir, random_seed: int) -> Optional[Path]:
    """An existing result file of ``random_seed`` in a setting folder, if any."""
    matches = sorted(Path(setting_dir).glob(f"random_seed__{random_seed}__*.json"))
    return matches[0] if matches else None


def write_json_atomic(path, data: dict) -> Path:
    """Write ``data`` as indented JSON: to a temporary file first, then renamed into place,
    so a reader never sees a half-written file and a crash leaves no partial result.

    Non-finite numbers are written as ``NaN``/``Infinity``, like the published files.
    The file gets the mode of any other new file (the umask's), not mkstemp's 0600.
    """
    from deepobs.file_modes import follow_umask

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            follow_umask(stream.fileno())
            json.dump(data, stream, indent=4)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
