"""Runners: train an optimizer on a problem and write DeepOBS result files."""

from deepobs.runners.runner import LearningRateScheduleRunner, StandardRunner, seed_everything
from deepobs.runners.optimizers import register_optimizer, resolve_optimizer, list_optimizers

__all__ = ["StandardRunner", "LearningRateScheduleRunner", "seed_everything",
           "register_optimizer", "resolve_optimizer", "list_optimizers"]
