"""Per-step learning-rate schedules, as a factor of each parameter group's base lr.

A schedule is a pure function of the global step, so a resumed run needs no scheduler
state: the runner calls :meth:`LRSchedule.apply` with the step number before every
optimizer step. Pure Python (no torch), so the CLI, the tuner and the analyzer can
use it too. The user guide is docs/schedules.md.

Definitions. N = num_epochs, S = steps_per_epoch, T = N·S optimizer steps, numbered
s = 0 .. T-1; f(s) multiplies the base lr of the step numbered s. Step counts from
epochs round halves up: W = ⌊warmup_epochs·S + ½⌋ warmup steps, K =
⌊decay_fraction·T + ½⌋ decay steps, R = max(1, ⌊restart_epochs·S + ½⌋). m =
final_lr_factor.

* warmup: f(s) = (s+1)/W for s < W. The first step runs at lr/W, not at 0 (a step at
  lr 0 would be wasted), and the last warmup step, s = W-1, is at the full base lr.
  This is torch's ``LinearLR(start_factor=1/W, total_iters=W-1)``.
* decay from step a to the last step: p(s) = 0 for s < a, else min(1, (s-a)/(T-1-a))
  (p = 1 when a >= T-1); cosine decay: m + (1-m)·(1+cos(π·p))/2; linear decay:
  m + (1-m)·(1-p). So the decay is 1 at step a, reaches m at the last step s = T-1,
  and stays at m after it.
* ``constant``: f(s) = 1.
* ``step`` (DeepOBS): f(s) = lr_sched_factors[i] for the largest i with
  lr_sched_epochs[i] <= ⌊s/S⌋, else 1 (per epoch, the numbers of DeepOBS's
  LearningRateScheduleRunner).
* ``cosine``: cosine decay from a = 0.
* ``warmup_cosine``: warmup, then cosine decay from a = W.
* ``warmup_linear``: warmup, then linear decay from a = W.
* ``wsd`` (warmup-stable-decay): warmup, 1 until step T-K, then linear decay from
  a = T-K.
* ``trapezoidal``: the same shape as ``wsd`` (linear warmup, constant, linear decay), with
  the defaults of a tenth of the run for the warmup and for the decay.
* ``cosine_wr`` (SGDR, Loshchilov & Hutter): cycles of R, R·M, R·M², ... steps
  (M = restart_multiplier); at position c of a cycle of length L,
  f = m + (1-m)·(1+cos(π·c/L))/2. Crowded Valley's cosine_wr is R = 10 epochs, M = 2.
* ``onecycle``: torch's ``OneCycleLR`` (cosine annealing, no momentum cycling) as a
  factor of its max lr: with e1 = pct_start·T - 1, f rises from 1/div_factor at s = 0
  to 1 at s = e1, then falls to 1/(div_factor·final_div_factor) at s = T-1, both
  halves (a+b)/2 + (a-b)/2·cos(π·q) from a to b with q the phase's progress.

``epoch_factors()[e]`` is f(e·S), the factor at the first step of epoch e, and the last
entry f(T), after the last step: the rate of each evaluation point.
"""

from __future__ import annotations

import math
from typing import Optional

from deepobs.errors import ConfigurationError

#: The schedule names, in the order the docs list them.
SCHEDULES = ("constant", "step", "cosine", "warmup_cosine", "warmup_linear", "wsd",
             "cosine_wr", "trapezoidal", "onecycle")

# One specification per parameter name: a name means the same thing in every schedule.
_WARMUP = {"type": float, "default": None,
           "help": "length of the linear warmup in epochs (fractions allowed); "
                   "default: a tenth of the run"}
_FINAL = {"type": float, "default": 0.0,
          "help": "the factor of the base lr the decay ends at, in [0, 1]"}
_SPECS = {
    "lr_sched_epochs": {"type": int, "nargs": "+", "default": None,
                        "help": "epochs at which the lr changes (DeepOBS step schedule)"},
    "lr_sched_factors": {"type": float, "nargs": "+", "default": None,
                         "help": "the factor of the base lr from each of lr_sched_epochs on"},
    "warmup_epochs": _WARMUP,
    "final_lr_factor": _FINAL,
    "decay_fraction": {"type": float, "default": None,
                       "help": "fraction of the run's steps for the final linear decay, "
                               "in (0, 1]; default 0.2 (wsd), 0.1 (trapezoidal)"},
    "restart_epochs": {"type": float, "default": 10.0,
                       "help": "length of the first cosine cycle in epochs (SGDR's T_0)"},
    "restart_multiplier": {"type": int, "default": 2,
                           "help": "each cycle is this many times longer than the last "
                                   "(SGDR's T_mult), >= 1"},
    "pct_start": {"type": float, "default": 0.3,
                  "help": "fraction of the run spent rising to the max lr, in (0, 1)"},
    "div_factor": {"type": float, "default": 25.0,
                   "help": "the lr starts at max lr / div_factor"},
    "final_div_factor": {"type": float, "default": 1e4,
                         "help": "the lr ends at max lr / (div_factor * final_div_factor)"},
}
_PARAMETERS = {
    "constant": (),
    "step": ("lr_sched_epochs", "lr_sched_factors"),
    "cosine": ("final_lr_factor",),
    "warmup_cosine": ("warmup_epochs", "final_lr_factor"),
    "warmup_linear": ("warmup_epochs", "final_lr_factor"),
    "wsd": ("warmup_epochs", "decay_fraction", "final_lr_factor"),
    "cosine_wr": ("restart_epochs", "restart_multiplier", "final_lr_factor"),
    "trapezoidal": ("warmup_epochs", "decay_fraction", "final_lr_factor"),
    "onecycle": ("pct_start", "div_factor", "final_div_factor"),
}
#: Defaults that depend on the schedule (the spec's default is None there).
_SCHEDULE_DEFAULTS = {"wsd": {"decay_fraction": 0.2}, "trapezoidal": {"decay_fraction": 0.1}}


def _check_name(name) -> str:
    if name not in _PARAMETERS:
        raise ConfigurationError(f"unknown lr schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    return name


def schedule_parameters(name: str) -> dict:
    """The parameters of schedule ``name``: ``{param: {"type", "default", "help"[, "nargs"]}}``.

    ``type`` is the Python type of one value, ``nargs`` "+" marks a list; a default of
    None is filled by :func:`check_schedule` (see the help text).
    """
    _check_name(name)
    specs = {}
    for param in _PARAMETERS[name]:
        spec = dict(_SPECS[param])
        spec["default"] = _SCHEDULE_DEFAULTS.get(name, {}).get(param, spec["default"])
        specs[param] = spec
    return specs


def all_schedule_parameters() -> dict:
    """Every schedule parameter once (for command-line flags): the union of all schedules."""
    return {param: dict(spec) for param, spec in _SPECS.items()}


def _coerce(name: str, param: str, value, spec: dict):
    """``value`` as the spec's type (a list for nargs), or a one-line error."""
    if spec.get("nargs"):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigurationError(f"{param} of lr schedule {name!r} must be a list, got {value!r}")
        return [_coerce_one(name, param, item, spec["type"]) for item in value]
    return _coerce_one(name, param, value, spec["type"])


def _coerce_one(name: str, param: str, value, kind):
    allowed = "an integer" if kind is int else "a number"
    if isinstance(value, bool):
        raise ConfigurationError(f"{param} of lr schedule {name!r} must be {allowed}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{param} of lr schedule {name!r} must be {allowed}, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigurationError(f"{param} of lr schedule {name!r} must be finite, got {value!r}")
    if kind is int:
        if not number.is_integer():
            raise ConfigurationError(f"{param} of lr schedule {name!r} must be an integer, got {value!r}")
        return int(number)
    return number


def check_schedule(name: str, params: Optional[dict], num_epochs: int) -> dict:
    """Schedule ``name``'s parameters, validated, with defaults filled in.

    ``params`` may hold None for absent values and any other schedule's parameters
    set to None (a command line gives every flag); a value for a parameter the
    schedule does not take is an error. Raises a one-line ConfigurationError.
    """
    _check_name(name)
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 0:
        raise ConfigurationError(f"num_epochs must be an integer >= 0, got {num_epochs!r}")
    specs = schedule_parameters(name)
    params = dict(params or {})
    foreign = sorted(key for key, value in params.items() if key not in specs and value is not None)
    if foreign:
        takes = ", ".join(specs) if specs else "none"
        raise ConfigurationError(
            f"lr schedule {name!r} takes no parameter {', '.join(foreign)} (its parameters: {takes})")
    values = {}
    for param, spec in specs.items():
        value = params.get(param)
        values[param] = spec["default"] if value is None else _coerce(name, param, value, spec)
    if "warmup_epochs" in values and values["warmup_epochs"] is None:
        values["warmup_epochs"] = num_epochs / 10
    _CHECKS[name](name, values, num_epochs)
    return values


def _need(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


def _check_final(name: str, values: dict) -> None:
    final = values["final_lr_factor"]
    _need(0.0 <= final <= 1.0, f"final_lr_factor of lr schedule {name!r} must be in [0, 1], got {final}")


def _check_warmup(name: str, values: dict, num_epochs: int, decay_epochs: float = 0.0) -> None:
    warmup = values["warmup_epochs"]
    _need(warmup >= 0, f"warmup_epochs of lr schedule {name!r} must be >= 0, got {warmup}")
    if decay_epochs:
        _need(warmup + decay_epochs <= num_epochs,
              f"warmup_epochs {warmup} plus the decay ({values['decay_fraction']} of "
              f"{num_epochs} epochs) must fit in the run of {num_epochs} epochs")
    else:
        _need(warmup < num_epochs,
              f"warmup_epochs {warmup} must be shorter than the run ({num_epochs} epochs)")


def _check_step(name: str, values: dict, num_epochs: int) -> None:
    epochs, factors = values["lr_sched_epochs"], values["lr_sched_factors"]
    _need((epochs is None) == (factors is None), "give both lr_sched_epochs and lr_sched_factors, or neither")
    if epochs is None:
        return
    _need(len(epochs) == len(factors),
          f"lr_sched_epochs {epochs} and lr_sched_factors {factors} must have the same length")
    _need(all(e >= 1 for e in epochs) and epochs == sorted(set(epochs)),
          f"lr_sched_epochs must be increasing epochs >= 1, got {epochs}")
    _need(all(f >= 0 for f in factors), f"lr_sched_factors must be finite and >= 0, got {factors}")


def _check_decay(name: str, values: dict, num_epochs: int) -> None:
    _check_final(name, values)
    if "warmup_epochs" in values:
        _check_warmup(name, values, num_epochs)


def _check_stable_decay(name: str, values: dict, num_epochs: int) -> None:
    _check_final(name, values)
    fraction = values["decay_fraction"]
    _need(0 < fraction <= 1, f"decay_fraction of lr schedule {name!r} must be in (0, 1], got {fraction}")
    _check_warmup(name, values, num_epochs, decay_epochs=fraction * num_epochs)


def _check_restarts(name: str, values: dict, num_epochs: int) -> None:
    _check_final(name, values)
    _need(values["restart_epochs"] > 0,
          f"restart_epochs of lr schedule {name!r} must be > 0, got {values['restart_epochs']}")
    _need(values["restart_multiplier"] >= 1,
          f"restart_multiplier of lr schedule {name!r} must be an integer >= 1, "
          f"got {values['restart_multiplier']}")


def _check_onecycle(name: str, values: dict, num_epochs: int) -> None:
    _need(0 < values["pct_start"] < 1,
          f"pct_start of lr schedule {name!r} must be in (0, 1), got {values['pct_start']}")
    for param in ("div_factor", "final_div_factor"):
        _need(values[param] > 0, f"{param} of lr schedule {name!r} must be > 0, got {values[param]}")


_CHECKS = {
    "constant": lambda name, values, num_epochs: None,
    "step": _check_step,
    "cosine": _check_decay,
    "warmup_cosine": _check_decay,
    "warmup_linear": _check_decay,
    "wsd": _check_stable_decay,
    "trapezoidal": _check_stable_decay,
    "cosine_wr": _check_restarts,
    "onecycle": _check_onecycle,
}


def _steps(value: float) -> int:
    """A length in steps: the nearest integer, halves rounded up."""
    return int(math.floor(value + 0.5))


def step_factor(epoch: int, lr_sched_epochs, lr_sched_factors) -> float:
    """DeepOBS's step schedule: the factor of the last entry whose epoch is <= ``epoch`` (else 1)."""
    factor = 1.0
    for start, value in zip(lr_sched_epochs or (), lr_sched_factors or ()):
        if epoch >= start:
            factor = value
    return factor


class LRSchedule:
    """Schedule ``name`` with ``params`` over ``num_epochs`` epochs of ``steps_per_epoch`` steps.

    ``factor(step)`` is the factor of the base lr for the optimizer step numbered
    ``step`` (0-based, counted over the whole run); the module docstring defines it.
    """

    def __init__(self, name: str, params: Optional[dict], steps_per_epoch: int, num_epochs: int):
        self.name = name
        self.params = check_schedule(name, params, num_epochs)
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ConfigurationError(f"steps_per_epoch must be an integer >= 1, got {steps_per_epoch!r}")
        self.steps_per_epoch = steps_per_epoch
        self.num_epochs = num_epochs
        self.total_steps = steps_per_epoch * num_epochs
        #: A constant schedule leaves the optimizer's learning rates alone (no per-step work).
        self.is_constant = name == "constant"
        p, total = self.params, self.total_steps
        self.warmup_steps = _steps(p["warmup_epochs"] * steps_per_epoch) if "warmup_epochs" in p else 0
        self.decay_start = {"cosine": 0, "warmup_cosine": self.warmup_steps,
                            "warmup_linear": self.warmup_steps}.get(name, 0)
        if "decay_fraction" in p:
            self.decay_start = total - _steps(p["decay_fraction"] * total)
            if self.decay_start < self.warmup_steps:  # rounding of two lengths that fill the run
                self.decay_start = self.warmup_steps
        if name == "cosine_wr":
            self.restart_steps = max(1, _steps(p["restart_epochs"] * steps_per_epoch))
        if name == "onecycle":
            self.rise_end = p["pct_start"] * total - 1
            if self.rise_end <= 0:
                raise ConfigurationError(
                    f"lr schedule 'onecycle' needs pct_start * total steps > 1, got "
                    f"pct_start {p['pct_start']} of {total} steps")

    # ------------------------------------------------------------------ values
    def factor(self, step: int) -> float:
        """The factor of the base lr for the optimizer step numbered ``step`` (>= 0)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        name, p = self.name, self.params
        if name == "constant":
            return 1.0
        if name == "step":
            return float(step_factor(step // self.steps_per_epoch, p["lr_sched_epochs"], p["lr_sched_factors"]))
        if name == "cosine_wr":
            return self._restart_factor(step)
        if name == "onecycle":
            return self._onecycle_factor(step)
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = self._decay_progress(step)
        final = p["final_lr_factor"]
        if name in ("cosine", "warmup_cosine"):
            return final + (1.0 - final) * (1.0 + math.cos(math.pi * progress)) / 2.0
        return final + (1.0 - final) * (1.0 - progress)  # warmup_linear, wsd, trapezoidal

    def _decay_progress(self, step: int) -> float:
        start, last = self.decay_start, self.total_steps - 1
        if step < start:
            return 0.0
        if start >= last:
            return 1.0
        return min(1.0, (step - start) / (last - start))

    def _restart_factor(self, step: int) -> float:
        position, length = step, self.restart_steps
        while position >= length:  # exact integer walk through the cycles
            position -= length
            length *= self.params["restart_multiplier"]
        final = self.params["final_lr_factor"]
        return final + (1.0 - final) * (1.0 + math.cos(math.pi * position / length)) / 2.0

    def _onecycle_factor(self, step: int) -> float:
        p = self.params
        start = 1.0 / p["div_factor"]
        end = start / p["final_div_factor"]
        last = self.total_steps - 1
        if step <= self.rise_end:
            return _cosine_between(start, 1.0, step / self.rise_end)
        if step >= last:
            return end
        return _cosine_between(1.0, end, (step - self.rise_end) / (last - self.rise_end))

    def epoch_factors(self) -> list:
        """``num_epochs + 1`` factors: at the first step of each epoch, then after the last step."""
        return [self.factor(epoch * self.steps_per_epoch) for epoch in range(self.num_epochs + 1)]

    # ------------------------------------------------------------------ use
    def apply(self, param_groups, step: int) -> float:
        """Set each group's ``lr`` to its ``initial_lr`` times ``factor(step)``; returns the factor.

        ``initial_lr`` is stored from ``lr`` the first time (as torch's schedulers do), so
        groups with different base rates keep their ratio. A tensor ``lr`` (torch's
        capturable and fused optimizers) is filled in place, as torch's schedulers do.
        """
        factor = self.factor(step)
        for group in param_groups:
            if "initial_lr" not in group:
                group["initial_lr"] = float(group["lr"])
            rate = group["initial_lr"] * factor
            if hasattr(group["lr"], "fill_"):
                group["lr"].fill_(rate)
            else:
                group["lr"] = rate
        return factor

    def describe(self) -> dict:
        """The schedule for a result's ``training_params``: ``{"lr_schedule": name, **params}`` (JSON-able)."""
        return {"lr_schedule": self.name, **{key: (list(value) if isinstance(value, list) else value)
                                             for key, value in self.params.items()}}

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value}" for key, value in self.params.items())
        return f"LRSchedule({self.name}{', ' if settings else ''}{settings}; {self.total_steps} steps)"


def _cosine_between(start: float, end: float, progress: float) -> float:
    """Cosine annealing from ``start`` (progress 0) to ``end`` (progress 1), as torch's OneCycleLR."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * progress) + 1.0)
