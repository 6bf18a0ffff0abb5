"""Finding an optimizer by name and describing its hyperparameters.

``--optimizer NAME`` resolves, in order (DESIGN.md decision 8): a name registered in
deepobs, a ``torch.optim`` class (case-insensitive), a ``pytorch_optimizer`` optimizer
or wrapper (SAM, GSAM, WSAM, FriendlySAM, LookSAM, BSAM, Lookahead, ScheduleFreeWrapper
...) when that package is installed, a dotted import path (``mypkg.opt.MyOpt``,
imported from the current folder too, as ``python`` does).
Hyperparameters use DeepOBS's format: ``{name: {"type": type, "default": value}}``;
every default of the signature is kept as it is (``inf``, ``None``, tuples, strings,
booleans), and :func:`parse_hyperparameter_value` reads one from the command line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import os
import sys
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


def _annotation_text(annotation) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _annotated_type(annotation):
    """The hyperparameter type an annotation names (``float | None`` -> float), else object."""
    text = _annotation_text(annotation).lower()
    for name, value_type in (("bool", bool), ("float", float), ("int", int), ("tuple", tuple),
                             ("betas", tuple), ("str", str), ("literal[", str)):
        if name in text:
            return value_type
    return object


def _value_type(value, annotation=inspect.Parameter.empty):
    """The type of a hyperparameter: from its default, except that an int default of a
    parameter annotated as float (``momentum: float = 0``) is a float; a None default
    takes the annotated type (``object``: any Python literal)."""
    if value is None:
        return _annotated_type(annotation)
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return float if "float" in _annotation_text(annotation) else int
    if isinstance(value, (float, torch.Tensor)) and getattr(value, "numel", lambda: 1)() == 1:
        return float
    if isinstance(value, str):
        return str
    if isinstance(value, tuple) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in value):
        return tuple
    return None


def _runner_supplied(build: Callable) -> set:
    """Constructor arguments the runner supplies itself (deepobs.runners.optimizer_setup)."""
    from deepobs.runners import optimizer_setup as setup

    names = {"self", "params", "parameters", "rho_scheduler", *setup.CONTEXT_ARGUMENTS,
             *setup.MODEL_ARGUMENTS, *setup.NAMED_PARAMETER_ARGUMENTS}
    wrapped = setup.wrapper_argument(build)
    if wrapped is not None:
        names.add(wrapped.name)
    return names


def hyperparameters_from_signature(build: Callable) -> dict:
    """DeepOBS-style hyperparameters read from a constructor's signature and defaults.

    Every default that is a literal (numbers including ``inf``, booleans, strings,
    tuples of numbers, None) is kept as it is. Arguments without a default are
    required hyperparameters, unless the runner supplies them (the model, parameters,
    a wrapper's base optimizer, BSAM's ``num_data`` ...). Defaults that are objects
    (dtypes, functions) are left to the optimizer.
    """
    target = build.__init__ if inspect.isclass(build) else build
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return {}
    supplied = _runner_supplied(build)
    hyperparameters = {}
    for index, parameter in enumerate(parameters):
        if parameter.name in supplied or parameter.name in IMPLEMENTATION_ARGUMENTS:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if index == (1 if inspect.isclass(build) else 0) and parameter.default is inspect.Parameter.empty:
            continue  # the first argument takes the parameters, whatever its name
        if parameter.default is inspect.Parameter.empty:
            annotated = _annotated_type(parameter.annotation)
            hyperparameters[parameter.name] = {"type": float if annotated is object else annotated}
            continue
        value_type = _value_type(parameter.default, parameter.annotation)
        if value_type is None:
            continue
        default = parameter.default
        if isinstance(default, torch.Tensor) or (value_type is float and default is not None):
            default = float(default)
        hyperparameters[parameter.name] = {"type": value_type, "default": default}
    return hyperparameters


_WORDS = {"none": None, "null": None, "true": True, "false": False, "inf": math.inf, "+inf": math.inf,
          "infinity": math.inf, "-inf": -math.inf, "-infinity": -math.inf, "nan": math.nan}


def _literal(text: str):
    """A Python literal, with the command-line spellings inf, None/null, true/false."""
    stripped = text.strip()
    if stripped.lower() in _WORDS:
        return _WORDS[stripped.lower()]
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    if "," in stripped or " " in stripped:  # 0.9,0.99 / 0.9 0.99 / (inf, 1)
        parts = [part for part in stripped.strip("()[]").replace(",", " ").split() if part]
        if parts:
            return tuple(_literal(part) for part in parts)
    return stripped


def parse_hyperparameter_value(text: str, entry: dict):
    """The value of one hyperparameter read from a command-line string.

    ``entry`` is its ``{"type": ..., "default": ...}``. Accepted: numbers and ``inf``,
    ``-inf`` for floats; ``true/false/yes/no/1/0`` for booleans; ``(0.9, 0.99)``,
    ``0.9,0.99`` for tuples; ``None`` where the default is None; any Python literal for
    type ``object``. Raises ValueError (argparse turns it into a one-line error).
    """
    value_type = entry.get("type", float)
    if value_type is str:  # a string stays as written ('none' is a string, not None) ...
        return None if text.strip() == "None" and entry.get("default", "") is None else text
    value = _literal(text)
    if value is None:
        if "default" in entry and entry["default"] is None or value_type is object:
            return None
        raise ValueError(f"None is not allowed here: {text!r}")
    if value_type is bool:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        words = {"yes": True, "no": False, "on": True, "off": False}
        if isinstance(value, str) and value.lower() in words:
            return words[value.lower()]
        raise ValueError(f"not a boolean: {text!r} (true or false)")
    if value_type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"invalid float value: {text!r}")
        return float(value)
    if value_type is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"invalid int value: {text!r}")
        return value
    if value_type is tuple:
        value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f"not a tuple of numbers: {text!r} (e.g. '(0.9, 0.99)')")
        default = entry.get("default")
        if isinstance(default, tuple) and len(default) != len(value):
            raise ValueError(f"expected {len(default)} numbers, got {text!r}")
        return tuple(float(v) if isinstance(d, float) else v
                     for v, d in zip(value, default if isinstance(default, tuple) else value))
    return value


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _torch_optimizers() -> dict:
    return {
        name.lower(): obj for name, obj in vars(torch.optim).items()
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
        and obj is not torch.optim.Optimizer
    }


def _from_pytorch_optimizer(name: str):
    """pytorch_optimizer's optimizer ``name``, or one of its wrappers and other
    optimizer classes that ``load_optimizer`` does not list (SAM, Lookahead ...)."""
    try:
        import pytorch_optimizer
    except ImportError:
        return None
    try:
        return pytorch_optimizer.load_optimizer(name)
    except Exception:  # the package signals unknown names with various errors
        pass
    key = name.lower()
    for attribute, value in vars(pytorch_optimizer).items():
        if attribute.lower() == key and inspect.isclass(value) and issubclass(value, torch.optim.Optimizer):
            return value
    return None


def _is_dotted_path(path: str) -> bool:
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    return bool(module_name) and all(part.isidentifier() for part in (*module_name.split("."), attribute))


def _from_import_path(path: str):
    """The object at a dotted path, imported from the current folder too (as ``python``
    does); a module that fails to import raises a ConfigurationError with its error."""
    if not _is_dotted_path(path):
        return None  # not a dotted path (e.g. "../..", "a..b"): nothing to import
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the module exists but fails on import: say why
        raise ConfigurationError(f"cannot import {module_name} for --optimizer {path}: "
                                 f"{type(error).__name__}: {first_line(error)}") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    if not hasattr(module, attribute):
        raise ConfigurationError(f"module {module_name} has no attribute {attribute!r} (--optimizer {path})")
    return getattr(module, attribute)


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
    return OptimizerSpec(name=getattr(build, "__name__", name.rpartition(".")[2]), build=build,
                         hyperparameters=hyperparameters_from_signature(build))


def list_optimizers() -> dict:
    """``{name: description}`` of the registered and the ``torch.optim`` optimizers."""
    names = {key: spec.description for key, spec in _OPTIMIZERS.items()}
    for key, cls in sorted(_torch_optimizers().items()):
        names.setdefault(key, f"torch.optim.{cls.__name__}")
    return names


def build_optimizer(spec_build: Callable, params, hyperparams: dict, name: Optional[str] = None):
    """Build an optimizer; any error of the constructor (a rejected value, a missing
    argument) becomes a one-line ConfigurationError naming the optimizer."""
    try:
        return spec_build(params, **hyperparams)
    except ConfigurationError:
        raise
    except (ValueError, TypeError) as error:  # a rejected value, a missing argument
        shown = {k: v for k, v in hyperparams.items() if isinstance(v, (int, float, str, bool, tuple, type(None)))}
        who = f"{name}: " if name else ""
        unset = [k for k, v in hyperparams.items() if v is None and k in ("lr", "learning_rate")]
        hint = f" (its default {unset[0]} is None: give one, e.g. --{unset[0]} 1e-3)" if unset else ""
        raise ConfigurationError(f"{who}bad hyperparameters {shown}: {first_line(error)}{hint}") from None
    except Exception as error:  # a missing package, a missing process group ...
        raise ConfigurationError(f"{name or 'the optimizer'} could not be built: "
                                 f"{type(error).__name__}: {first_line(error)}") from None


def _adam(params, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Adam with TensorFlow's hyperparameter names, as in the published baselines."""
    return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=epsilon)


# The published baselines' optimizers (reference/deepobs.md §5), with their names.
# lr defaults: torch.optim.SGD's and Adam's own (1e-3), so that --lr may be left out.
register_optimizer("sgd", torch.optim.SGD, {"lr": {"type": float, "default": 1e-3}}, name="SGD",
                   description="plain SGD (baseline GradientDescentOptimizer)")
register_optimizer("momentum", torch.optim.SGD,
                   {"lr": {"type": float, "default": 1e-3}, "momentum": {"type": float, "default": 0.99},
                    "nesterov": {"type": bool, "default": False}},
                   name="Momentum", description="SGD with heavy-ball momentum 0.99 (baseline MomentumOptimizer)")
register_optimizer("nesterov", torch.optim.SGD,
                   {"lr": {"type": float, "default": 1e-3}, "momentum": {"type": float, "default": 0.99},
                    "nesterov": {"type": bool, "default": True}},
                   name="Nesterov", description="SGD with Nesterov momentum 0.99")
register_optimizer("adam", _adam,
                   {"lr": {"type": float, "default": 1e-3}, "beta1": {"type": float, "default": 0.9},
                    "beta2": {"type": float, "default": 0.999},
                    "epsilon": {"type": float, "default": 1e-8}},
                   name="Adam", description="Adam, TF names beta1/beta2/epsilon (baseline AdamOptimizer)")
