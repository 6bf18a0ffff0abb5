"""Process-wide settings: where data lives, which split protocols exist, the device."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

#: Split protocols (docs/design.md, decision 3): "1.2" carves a held-out validation split,
#: "1.1" trains on the full training set, as the published baselines did.
PROTOCOLS = ("1.2", "1.1")
DEFAULT_PROTOCOL = "1.2"

DATA_DIR_ENV = "DEEPOBS_DATA_DIR"
DEFAULT_DATA_DIR = "data_deepobs"


def check_protocol(protocol) -> str:
    """Return ``protocol`` as a string, or raise ValueError naming the allowed ones."""
    from deepobs.errors import ConfigurationError

    protocol = str(protocol)
    if protocol not in PROTOCOLS:
        raise ConfigurationError(f"unknown protocol {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    return protocol


def get_data_dir(data_dir: Optional[str] = None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$DEEPOBS_DATA_DIR``, else ./data_deepobs."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
