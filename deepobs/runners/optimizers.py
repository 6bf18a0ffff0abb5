"""Finding an optimizer by name and describing its hyperparameters.

``--optimizer NAME`` resolves, in order (DESIGN.md decision 8): a name registered in
deepobs, a ``torch.optim`` class (case-insensitive), a ``pytorch_optimizer`` optimizer
when that package is installed, a dotted import path (``mypkg.opt.MyOpt``).
Hyperparameters use DeepOBS's format: ``{name: {"type": type, "default": value}}``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from deepobs.errors import ConfigurationError
from deepobs.registry import close_matches

#: Constructor arguments that select an implementation, not a hyperparameter.
IMPLEMENTATION_ARGUMENTS = {"foreach", "fused", "differentiable", "capturable"}


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build an optimizer and which hyperparameters it takes.

    Attributes:
        name: the name written to results (``optimizer_name``), e.g. ``Momentum``.
        build: ``build(params, **hyperparams)`` returns a ``torch.optim.Optimizer``
            (an optimizer class is such a callable).
        hyperparameters: DeepOBS-style ``{name: {"type": ..., "default": ...}}``;
            entries without ``default`` are required.
        description: one line for ``deepobs-run --list-optimizers``.
    """

    name: str
    build: Callable
    hyperparameters: dict = field(default_factory=dict)
    description: str = ""


_OPTIMIZERS: dict = {}


def register_optimizer(key: str, build: Callable, hyperparameters: Optional[dict] = None,
                       name: Optional[str] = None, description: str = "") -> OptimizerSpec:
    """Register an optimizer under ``key`` (looked up case-insensitively).

    Args:
        key: the ``--optimizer`` name.
        build: optimizer class or ``build(params, **hyperparams)`` function.
        hyperparameters: DeepOBS-style dict; default: read from ``build``'s signature.
        name: the name written to results (default: ``build.__name__``).
        description: one line shown by ``deepobs-run --list-optimizers``.
    """
    spec = OptimizerSpec(
        name=name or build.__name__,
        build=build,
        hyperparameters=hyperparameters if hyperparameters is not None else hyperparameters_from_signature(build),
        description=description,
    )
    _OPTIMIZERS[key.lower()] = spec
    return spec


def _value_type(value, annotation=inspect.Parameter.empty):
    """The type of a hyperparameter: from its default, except that an int default of a
    parameter annotated as float (``momentum: float = 0``) is a float."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        annotated = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
        return float if "float" in str(annotated) else int
    if isinstance(value, (float, torch.Tensor)):
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, tuple) and value and all(isinstance(v, (int, float)) for v in value):
        return tuple
    return None


def hyperparameters_from_signature(build: Callable) -> dict:
    """DeepOBS-style hyperparameters read from a constructor's signature and defaults.

    Arguments without a usable default (None, objects) are left out, except ``lr``,
    which is a required float when it has no default.
    """
    target = build.__init__ if inspect.isclass(build) else build
    hyperparameters = {}
    for parameter in list(inspect.signature(target).parameters.values()):
        if parameter.name in ("self", "params") or parameter.name in IMPLEMENTATION_ARGUMENTS:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.default is inspect.Parameter.empty:
            if parameter.name == "lr":
                hyperparameters["lr"] = {"type": float}
            continue
        value_type = _value_type(parameter.default, parameter.annotation)
        if value_type is None:
            continue
        default = parameter.default
        if isinstance(default, torch.Tensor) or value_type is float:
            default = float(default)
        hyperparameters[parameter.name] = {"type": value_type, "default": default}
    return hyperparameters


def _torch_optimizers() -> dict:
    return {
        name.lower(): obj for name, obj in vars(torch.optim).items()
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
        and obj is not torch.optim.Optimizer
    }


def _from_pytorch_optimizer(name: str):
    try:
        import pytorch_optimizer
    except ImportError:
        return None
    try:
        return pytorch_optimizer.load_optimizer(name)
    except Exception:  # the package signals unknown names with various errors
        return None


def _from_import_path(path: str):
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    if not module_name or not all(part.isidentifier() for part in (*module_name.split("."), attribute)):
        return None  # not a dotted path (e.g. "../..", "a..b"): nothing to import
    try:
        module = importlib.import_module(module_name)
    except Exception:  # a module that is missing or fails on import is not an optimizer
        return None
    return getattr(module, attribute, None)


def resolve_optimizer(name: str) -> OptimizerSpec:
    """The optimizer called ``name`` (see the module docstring for the lookup order)."""
    key = name.lower()
    if key in _OPTIMIZERS:
        return _OPTIMIZERS[key]
    torch_optimizers = _torch_optimizers()
    build = torch_optimizers.get(key) or _from_pytorch_optimizer(name) or _from_import_path(name)
    if build is None or not callable(build):
        choices = list(_OPTIMIZERS) + list(torch_optimizers)
        raise ConfigurationError(
            f"unknown optimizer {name!r}{close_matches(key, choices)} "
            "(deepobs-run --list-optimizers shows the names; a dotted path like "
            "mypkg.opt.MyOpt also works)"
        )
    return OptimizerSpec(name=build.__name__, build=build,
                         hyperparameters=hyperparameters_from_signature(build))


def list_optimizers() -> dict:
    """``{name: description}`` of the registered and the ``torch.optim`` optimizers."""
    names = {key: spec.description for key, spec in _OPTIMIZERS.items()}
    for key, cls in sorted(_torch_optimizers().items()):
        names.setdefault(key, f"torch.optim.{cls.__name__}")
    return names


def build_optimizer(spec_build: Callable, params, hyperparams: dict):
    """Build an optimizer; a rejected hyperparameter value becomes a ConfigurationError."""
    try:
        return spec_build(params, **hyperparams)
    except (ValueError, TypeError) as error:
        raise ConfigurationError(f"bad hyperparameters {hyperparams}: {error}") from None


def _adam(params, lr, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Adam with TensorFlow's hyperparameter names, as in the published baselines."""
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=epsilon)


# The published baselines' optimizers (reference/deepobs.md §5), with their names.
register_optimizer("sgd", torch.optim.SGD, {"lr": {"type": float}}, name="SGD",
                   description="plain SGD (baseline GradientDescentOptimizer)")
register_optimizer("momentum", torch.optim.SGD,
                   {"lr": {"type": float}, "momentum": {"type": float, "default": 0.99},
                    "nesterov": {"type": bool, "default": False}},
                   name="Momentum", description="SGD with heavy-ball momentum 0.99 (baseline MomentumOptimizer)")
register_optimizer("nesterov", torch.optim.SGD,
                   {"lr": {"type": float}, "momentum": {"type": float, "default": 0.99},
                    "nesterov": {"type": bool, "default": True}},
                   name="Nesterov", description="SGD with Nesterov momentum 0.99")
register_optimizer("adam", _adam,
                   {"lr": {"type": float}, "beta1": {"type": float, "default": 0.9},
                    "beta2": {"type": float, "default": 0.999},
                    "epsilon": {"type": float, "default": 1e-8}},
                   name="Adam", description="Adam, TF names beta1/beta2/epsilon (baseline AdamOptimizer)")
