"""Shared fixtures: where the team's real data lives, and a quiet CPU-only default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (or $DEEPOBS_SHARED_DATA)."""
    return Path(os.environ.get("DEEPOBS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real data folder; skips the test, saying why, when it is absent."""
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent (set DEEPOBS_SHARED_DATA to use another)")
    return folder
