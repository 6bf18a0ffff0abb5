"""Learning-rate schedules (placeholder: constant and DeepOBS's step schedule)."""

from __future__ import annotations

import math

from deepobs.errors import ConfigurationError

_PARAMETERS = {
    "constant": {},
    "step": {"lr_sched_epochs": {"type": list, "help": "epochs at which the learning rate changes"},
             "lr_sched_factors": {"type": list, "help": "factors of the base learning rate from those epochs on"}},
}
SCHEDULES = tuple(_PARAMETERS)


def schedule_parameters(name: str) -> dict:
    return dict(_PARAMETERS[name])


def all_schedule_parameters() -> set:
    return {p for params in _PARAMETERS.values() for p in params}


def check_schedule(name: str, params: dict, num_epochs: int) -> dict:
    if name not in _PARAMETERS:
        raise ConfigurationError(f"unknown learning-rate schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
    unknown = sorted(set(params) - set(_PARAMETERS[name]))
    if unknown:
        raise ConfigurationError(f"schedule {name} takes no parameter {', '.join(unknown)}")
    if name == "step":
        epochs, factors = params.get("lr_sched_epochs"), params.get("lr_sched_factors")
        if epochs is None or factors is None:
            raise ConfigurationError("give both lr_sched_epochs and lr_sched_factors, or neither")
        epochs = [int(e) for e in epochs]
        factors = [float(f) for f in factors]
        if len(epochs) != len(factors):
            raise ConfigurationError(f"lr_sched_epochs {epochs} and lr_sched_factors {factors} must have the same length")
        if any(e < 1 for e in epochs) or epochs != sorted(set(epochs)):
            raise ConfigurationError(f"lr_sched_epochs must be increasing epochs >= 1, got {epochs}")
        if any(not math.isfinite(f) or f < 0 for f in factors):
            raise ConfigurationError(f"lr_sched_factors must be finite and >= 0, got {factors}")
        return {"lr_sched_epochs": epochs, "lr_sched_factors": factors}
    return {}


class LRSchedule:
    def __init__(self, name, params, steps_per_epoch, num_epochs):
        self.name, self.params = name, dict(params)
        self.steps_per_epoch, self.num_epochs = steps_per_epoch, num_epochs
        self.is_constant = name == "constant"

    def factor(self, step: int) -> float:
        if self.name == "constant":
            return 1.0
        epoch = step // self.steps_per_epoch
        factor = 1.0
        for start, value in zip(self.params["lr_sched_epochs"], self.params["lr_sched_factors"]):
            if epoch >= start:
                factor = value
        return factor

    def epoch_factors(self) -> list:
        return [self.factor(e * self.steps_per_epoch) for e in range(self.num_epochs + 1)]

    def apply(self, param_groups, step: int) -> None:
        factor = self.factor(step)
        for group in param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor
