"""Data sets: raw files (or generated data) held in memory as tensors, split and batched."""

from deepobs.datasets.base import DataSet, Split, carve_validation
from deepobs.datasets.quadratic import Quadratic
from deepobs.datasets.two_d import TwoD

__all__ = ["DataSet", "Split", "carve_validation", "Quadratic", "TwoD"]
