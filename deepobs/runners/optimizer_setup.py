"""Giving every optimizer what it needs: parameters or the model, closures, Hessians,
a base optimizer, a fallback for what a matrix optimizer does not take, train/eval modes.

:func:`prepare_optimizer` reads what an optimizer needs from the optimizer itself (its
constructor signature, its ``step`` signature, its methods, known base classes) and
from the small tables below, and returns a :class:`PreparedOptimizer`: one object the
runner drives (``train_step``, ``eval``/``train``, ``state_dict``) and that behaves
like a ``torch.optim.Optimizer`` for code written against one (``param_groups``,
``zero_grad``, ``step``), however many optimizers it holds.

Families (``PreparedOptimizer.family``; ``record["traits"]`` lists all that apply):

* ``plain``: ``build(params, **hyperparameters)``; ``zero_grad``, ``backward``, ``step``.
* ``model``: the constructor (or a factory ``build(model, **hyperparameters)``) takes
  the model, or named parameters (first argument named as in :data:`MODEL_ARGUMENTS`,
  :data:`NAMED_PARAMETER_ARGUMENTS`).
* ``fused_backward``: the update happens inside backward (LOMO, AdaLOMO: a
  ``fused_backward(loss, lr)`` method).
* ``closure``: ``step(closure)`` with a closure re-evaluating the same mini-batch
  (``closure`` has no default, or the class is in :data:`CLOSURE_OPTIMIZERS`).
* ``hessian``: ``backward(create_graph=True)`` (``step`` takes ``hessian``, or the
  class is in :data:`HESSIAN_OPTIMIZERS`).
* ``wrapper``: wraps a base optimizer (a required constructor argument named as in
  :data:`WRAPPER_ARGUMENTS`); the base is ``base`` or :data:`DEFAULT_BASE`.
* ``matrix``: Muon and relatives (:func:`matrix_kind`): hidden weight matrices to the
  optimizer, everything else to ``fallback`` (default :data:`DEFAULT_FALLBACK`).
* ``train_eval``: the optimizer has ``train()``/``eval()`` (schedule-free).

A trait, not a family: optimizers written for torch.distributed (:func:`uses_torch_distributed`)
get a one-process group when the run has none (``"single_process_group"``), so a plain
``deepobs-run`` runs them; under torchrun they use its group.
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings
from typing import Callable, Optional

import torch
from torch import nn

from deepobs.errors import ConfigurationError
from deepobs.runners import distributed
from deepobs.runners.optimizers import (OptimizerSpec, build_optimizer, first_line, resolve_optimizer)

#: Constructor arguments the runner supplies, and the ``context`` key it takes them from.
CONTEXT_ARGUMENTS = {
    "num_data": "num_train_examples",      # BSAM: size of the training set
    "num_iterations": "total_steps",       # Ranger21: length of the run in steps
    "num_training_steps": "total_steps",
    "total_steps": "total_steps",
}
#: First constructor argument names meaning "the model" (a factory's too).
MODEL_ARGUMENTS = ("model", "module", "net", "model_or_params")
#: First constructor argument names meaning "named parameters".
NAMED_PARAMETER_ARGUMENTS = ("named_parameters", "named_params")
#: Required constructor arguments naming the optimizer a wrapper wraps.
WRAPPER_ARGUMENTS = ("base_optimizer", "optimizer", "base")
#: Wrappers that build their base from a class and its keyword arguments (the others
#: take a built optimizer); also read from an annotation ``type[...]``/``OptimizerType``.
CLASS_TAKING_WRAPPERS = {"SAM", "WSAM", "LookSAM", "FriendlySAM"}
#: Closure optimizers whose ``step(closure)`` expects the gradient at the current weights to be
#: computed before the call (their documented usage: ``closure(); step(closure)``).
GRADIENT_FIRST_OPTIMIZERS = {"SAM", "LookSAM", "FriendlySAM", "BSAM"}
#: Optimizers that need ``step(closure)`` although ``closure`` has a default.
CLOSURE_OPTIMIZERS = {"SAM", "WSAM", "LookSAM", "FriendlySAM", "BSAM", "GSAM", "AliG", "LBFGS"}
#: Optimizers that need ``backward(create_graph=True)`` (besides ``step(..., hessian)``).
HESSIAN_OPTIMIZERS = {"AdaHessian", "Adahessian", "SophiaH", "AdaHessianGC"}
#: Optimizers that call torch.distributed (world size, rank, all_gather) in every step.
DISTRIBUTED_OPTIMIZERS = {"DistributedMuon", "DeMo"}
#: Base optimizer of a wrapper when none is given (``--base_optimizer``).
DEFAULT_BASE = "sgd"  # works under every wrapper (schedule-free's needs a base without
# per-parameter state initialised on an empty state: AdamW fails there)
#: Optimizer of the parameters a matrix optimizer does not take (``--fallback_optimizer``).
DEFAULT_FALLBACK = "adamw"
#: The perturbation radius GSAM gets when the runner supplies its ``rho_scheduler``.
GSAM_RHO = 0.05


# ---------------------------------------------------------------- inspection
def _signature(build: Callable) -> Optional[inspect.Signature]:
    try:
        return inspect.signature(build.__init__ if inspect.isclass(build) else build)
    except (TypeError, ValueError):
        return None


def _arguments(build: Callable) -> list:
    """The constructor's arguments (without ``self``, ``*args``, ``**kwargs``)."""
    signature = _signature(build)
    if signature is None:
        return []
    return [p for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _class_names(build: Callable) -> set:
    """Names of the class and its bases (a factory: its own name)."""
    if inspect.isclass(build):
        return {cls.__name__ for cls in build.__mro__}
    return {getattr(build, "__name__", "")}


def wrapper_argument(build: Callable) -> Optional[inspect.Parameter]:
    """The required argument taking the wrapped optimizer, or None (not a wrapper)."""
    for parameter in _arguments(build):
        if parameter.name in WRAPPER_ARGUMENTS and parameter.default is inspect.Parameter.empty:
            return parameter
    return None


def _wrapper_takes_class(build: Callable, parameter: inspect.Parameter) -> bool:
    """Whether the wrapper builds its base itself from a class (SAM: ``base_optimizer(
    self.param_groups, **kwargs)``) rather than taking a built optimizer."""
    if _class_names(build) & CLASS_TAKING_WRAPPERS:
        return True
    annotation = str(parameter.annotation)
    only_a_class = annotation.startswith("type[") or annotation == "OptimizerType"
    return only_a_class and "|" not in annotation and "Union" not in annotation


def matrix_kind(build: Callable) -> Optional[str]:
    """How a matrix optimizer takes parameters, or None for the others.

    ``"groups"``: pytorch_optimizer's Muon family (``MuonBase``): groups flagged
    ``use_muon``, higher-dimensional weights (conv kernels) flattened, and its own AdamW
    for the rest unless a fallback is given. ``"2d"``: ``torch.optim.Muon``,
    ``SpectralSphere`` and other classes named ``*Muon*``: 2-D weights only, the rest to
    the fallback optimizer.
    """
    names = _class_names(build)
    if "MuonBase" in names:
        return "groups"
    module = getattr(build, "__module__", "") or ""
    if "SpectralSphere" in names or (inspect.isclass(build) and "muon" in build.__name__.lower()) \
            or (module.startswith("torch.optim") and getattr(build, "__name__", "") == "Muon"):
        return "2d"
    return None


def _step_parameters(optimizer) -> dict:
    try:
        return dict(inspect.signature(optimizer.step).parameters)
    except (TypeError, ValueError):
        return {}


def uses_torch_distributed(build: Callable) -> bool:
    """Written for torch.distributed: a known one (:data:`DISTRIBUTED_OPTIMIZERS`), or its
    module imports ``torch.distributed`` itself (Keller Jordan's ``muon.Muon``)."""
    if _class_names(build) & DISTRIBUTED_OPTIMIZERS:
        return True
    module = sys.modules.get(getattr(build, "__module__", "") or "")
    if module is None or module.__name__.startswith(("torch.", "deepobs.")):
        return False
    return any(value is torch.distributed for value in vars(module).values())


def needs_closure(optimizer) -> bool:
    """``step``'s ``closure`` has no default, or the class is a known closure optimizer."""
    closure = _step_parameters(optimizer).get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        return True
    return bool(_class_names(type(optimizer)) & CLOSURE_OPTIMIZERS)


def needs_create_graph(optimizer) -> bool:
    """Hessian-based: ``step`` takes ``hessian``, or the class is a known one."""
    return "hessian" in _step_parameters(optimizer) or bool(_class_names(type(optimizer)) & HESSIAN_OPTIMIZERS)


def has_modes(optimizer) -> bool:
    """The optimizer has its own ``train()``/``eval()`` (schedule-free)."""
    return all(callable(getattr(optimizer, name, None)) for name in ("train", "eval"))


def uses_fused_backward(optimizer) -> bool:
    """The update happens in ``fused_backward(loss, lr)`` (LOMO, AdaLOMO)."""
    return callable(getattr(optimizer, "fused_backward", None))


# ---------------------------------------------------------- matrix splitting
def split_matrix_parameters(model: nn.Module, flatten: bool) -> tuple[list, list]:
    """``(matrices, rest)`` as lists of ``(name, parameter)``.

    Matrices: 2-D weights of hidden layers (with ``flatten``, higher-dimensional ones
    too, e.g. conv kernels). Not matrices, as the Muon authors recommend: biases and
    norm gains (fewer than 2 dimensions), embeddings (``nn.Embedding``/``EmbeddingBag``
    weights) and the output layer (the weight of the last ``nn.Linear`` of the model).
    """
    excluded = set()
    last_linear = None
    for module in model.modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            excluded.add(id(module.weight))
        if isinstance(module, nn.Linear):
            last_linear = module
    if last_linear is not None:
        excluded.add(id(last_linear.weight))
    matrices, rest = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        is_matrix = parameter.ndim == 2 or (flatten and parameter.ndim > 2)
        (matrices if is_matrix and id(parameter) not in excluded else rest).append((name, parameter))
    return matrices, rest


def _describe(named: list) -> list:
    return [{"name": name, "shape": list(p.shape)} for name, p in named]


# ------------------------------------------------------------ the optimizer
class PreparedOptimizer(torch.optim.Optimizer):
    """The optimizer(s) of one run behind one interface (see the module docstring).

    A subclass of ``torch.optim.Optimizer`` only so that code checking for one (e.g.
    ``torch.optim.lr_scheduler``) accepts it; everything is delegated.

    Attributes:
        optimizers: the top-level optimizers (the main one, then the fallback).
        family: the main family (see the module docstring).
        record: JSON-able description written to the result.
    """

    def __init__(self, optimizers: list, family: str, record: dict, *, closure: bool = False,
                 gradient_first: bool = False, create_graph: bool = False, modes: bool = False,
                 fused_backward: bool = False, gsam: bool = False):
        # torch.optim.Optimizer.__init__ is not called: there is no parameter list of our own.
        self.optimizers = list(optimizers)
        self.family = family
        self.record = record
        self.defaults = dict(getattr(self.optimizers[0], "defaults", {}) or {})
        self._closure = closure
        self._gradient_first = gradient_first
        self._create_graph = create_graph
        self._modes = modes
        self._fused_backward = fused_backward
        self._gsam = gsam
        self._stepped = False
        self._mode = None
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}
        self._optimizer_state_dict_pre_hooks = {}
        self._optimizer_state_dict_post_hooks = {}
        self._optimizer_load_state_dict_pre_hooks = {}
        self._optimizer_load_state_dict_post_hooks = {}

    # -- torch.optim.Optimizer's interface
    @property
    def param_groups(self) -> list:
        """All parameter groups of all optimizers (a schedule sets each group's ``lr``)."""
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    @param_groups.setter
    def param_groups(self, value) -> None:  # torch.optim.Optimizer.__setstate__ and friends
        raise AttributeError("the parameter groups of a PreparedOptimizer belong to its optimizers")

    @property
    def state(self) -> dict:
        """The per-parameter state of all optimizers."""
        merged = {}
        for optimizer in self.optimizers:
            merged.update(getattr(optimizer, "state", {}))
        return merged

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter of every optimizer."""
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Optional[Callable] = None):
        """One step of every optimizer (the closure goes to the main one only)."""
        main, *others = self.optimizers
        loss = main.step(closure) if closure is not None else main.step()
        for optimizer in others:
            optimizer.step()
        return loss

    def add_param_group(self, param_group: dict) -> None:
        """Add a group to the main optimizer."""
        self.optimizers[0].add_param_group(param_group)

    def state_dict(self) -> dict:
        """The main optimizer's state dict; with a fallback or train/eval modes, the
        states of all optimizers and the mode under deepobs keys."""
        if len(self.optimizers) == 1 and not self._modes:
            return self.optimizers[0].state_dict()
        state = {"deepobs_optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}
        if self._modes:
            state["deepobs_mode"] = self._mode
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what :meth:`state_dict` returned (the mode too: the model's weights
        in a checkpoint are those of that mode)."""
        if len(self.optimizers) == 1 and not self._modes:
            self.optimizers[0].load_state_dict(state_dict)
            self._stepped = True
            return
        states = state_dict.get("deepobs_optimizers") if isinstance(state_dict, dict) else None
        if not isinstance(states, list) or len(states) != len(self.optimizers):
            raise ValueError(f"expected the states of {len(self.optimizers)} optimizer(s)")
        for optimizer, state in zip(self.optimizers, states):
            optimizer.load_state_dict(state)
        self._stepped = True  # a checkpoint is written after evaluations or steps: state exists
        if self._modes and state_dict.get("deepobs_mode") in ("train", "eval"):
            self._mode = state_dict["deepobs_mode"]
            for optimizer in self.optimizers:
                # A mode flag kept outside the state dict (schedulefree.ScheduleFreeWrapper)
                # must say what the loaded weights are, without converting them.
                if isinstance(getattr(optimizer, "train_mode", None), bool):
                    optimizer.train_mode = self._mode == "train"

    def __repr__(self) -> str:
        return f"PreparedOptimizer({self.family}: {', '.join(type(o).__name__ for o in self.optimizers)})"

    def __getstate__(self):
        return self.__dict__

    def __setstate__(self, state):
        self.__dict__.update(state)

    # -- modes
    def train(self) -> None:
        """Training mode (schedule-free: the weights at the training point ``y``)."""
        if self._modes and self._mode != "train":
            for optimizer in self.optimizers:
                if has_modes(optimizer):
                    optimizer.train()
            self._mode = "train"

    def eval(self) -> None:
        """Evaluation mode (schedule-free: the averaged weights ``x``). Before the first
        step there is nothing to average (and SPlus has no state yet): no change."""
        if self._modes and self._mode != "eval" and self._stepped:
            for optimizer in self.optimizers:
                if has_modes(optimizer):
                    optimizer.eval()
            self._mode = "eval"

    # -- one training step
    def train_step(self, batch_fn: Callable) -> torch.Tensor:
        """One full optimizer step on one mini-batch; returns its loss (at the weights
        before the step). ``batch_fn()`` returns ``(loss, accuracy)`` of the same batch
        at every call."""
        if self._stepped:
            return self._train_step(batch_fn)
        try:
            loss = self._train_step(batch_fn)
        except ConfigurationError:
            raise
        except (RuntimeError, ValueError, TypeError, NotImplementedError, AttributeError, KeyError,
                IndexError, AssertionError, ZeroDivisionError) as error:
            names = " + ".join(type(o).__name__ for o in self.optimizers)
            raise ConfigurationError(f"{names} failed in its first step on this problem: "
                                     f"{first_line(error)}") from None
        self._stepped = True
        return loss

    def _backward(self, loss: torch.Tensor) -> None:
        if self._create_graph:
            with warnings.catch_warnings():  # the reference cycle is cut by zero_grad(set_to_none)
                warnings.simplefilter("ignore", UserWarning)
                loss.backward(create_graph=True)
        else:
            loss.backward()

    def _train_step(self, batch_fn: Callable) -> torch.Tensor:
        if self._fused_backward:
            return self._fused_step(batch_fn)
        if not self._closure:
            self.zero_grad(set_to_none=True)
            loss, _ = batch_fn()
            self._backward(loss)
            self.step()
            return loss.detach()
        losses = []

        def closure():
            with torch.enable_grad():  # optimizers call closures inside torch.no_grad()
                self.zero_grad(set_to_none=True)
                loss, _ = batch_fn()
                self._backward(loss)
            losses.append(loss.detach())
            return loss

        if self._gsam:
            main = self.optimizers[0]
            main.update_rho_t()
            main.step(lambda: (None, closure()))
            for optimizer in self.optimizers[1:]:
                optimizer.step()
            return losses[0]
        if self._gradient_first:
            closure()
        result = self.step(closure)
        if losses:
            return losses[0]
        return result.detach() if isinstance(result, torch.Tensor) else torch.tensor(float(result))

    def _fused_step(self, batch_fn: Callable) -> torch.Tensor:
        main = self.optimizers[0]
        loss, _ = batch_fn()
        if getattr(main, "clip_grad_norm", None):
            main.grad_norm(loss)  # the clipping factor, from a first backward (retained graph)
        lr = self.param_groups[0]["lr"] if self.param_groups else getattr(main, "lr")
        main.fused_backward(loss, lr)
        return loss.detach()


# -------------------------------------------------------------- preparation
def _context_arguments(build: Callable, context: dict, name: str) -> dict:
    """The constructor arguments the runner supplies (:data:`CONTEXT_ARGUMENTS`)."""
    supplied = {}
    for parameter in _arguments(build):
        key = CONTEXT_ARGUMENTS.get(parameter.name)
        if key is None:
            continue
        if context.get(key) is None:
            if parameter.default is inspect.Parameter.empty:
                raise ConfigurationError(f"{name} needs {parameter.name} ({key}), which this run does not know")
            continue
        supplied[parameter.name] = int(context[key])
    return supplied


def _first_argument(build: Callable) -> Optional[str]:
    arguments = _arguments(build)
    return arguments[0].name if arguments else None


def _parameters_for(build: Callable, model: nn.Module, parameters: Optional[list] = None):
    """What the constructor's first argument asks for, and how it was passed."""
    first = _first_argument(build)
    if first in MODEL_ARGUMENTS:
        if parameters is not None:
            raise ConfigurationError(f"{_name(build)} takes the whole model; it cannot be given part of it")
        return model, "model"
    if parameters is None:
        parameters = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if first in NAMED_PARAMETER_ARGUMENTS:
        return list(parameters), "named_parameters"
    return [p for _, p in parameters], "parameters"


def _name(build: Callable) -> str:
    return getattr(build, "__name__", type(build).__name__)


def _construct(build: Callable, parameters, arguments: dict, name: str):
    """``build(parameters, **arguments)``; by keyword when the parameters are not the
    first argument (``WSAM(model, params, ...)``)."""
    names = [p.name for p in _arguments(build)]
    keyword = next((n for n in ("params", "parameters") if n in names), None)
    if keyword is not None and names[0] != keyword:
        return build_optimizer(lambda given, **kw: build(**{keyword: given}, **kw), parameters, arguments,
                               name=name)
    return build_optimizer(build, parameters, arguments, name=name)


def _build(spec: OptimizerSpec, arguments, hyperparams: dict, **extra):
    return _construct(spec.build, arguments, {**hyperparams, **extra}, spec.name)


def _with_hidden_extras(spec: OptimizerSpec, model: nn.Module, context: dict) -> dict:
    """Runner-supplied arguments: context values, and the model where asked for."""
    extra = _context_arguments(spec.build, context, spec.name)
    names = {p.name for p in _arguments(spec.build)}
    if "model" in names and names & {"params", "parameters"}:
        extra["model"] = model  # besides the parameters: WSAM(model, params, ...), GSAM(..., model, ...)
    return extra


def _plain_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain_value(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return repr(value)


def prepare_optimizer(spec: OptimizerSpec, model: nn.Module, hyperparams: dict, *, context: dict,
                      base: Optional[tuple] = None, fallback: Optional[tuple] = None) -> PreparedOptimizer:
    """Build ``spec``'s optimizer for ``model`` as it needs (see the module docstring).

    Args:
        spec: the optimizer (``resolve_optimizer``).
        model: the model whose trainable parameters are optimized.
        hyperparams: the optimizer's hyperparameters (defaults filled in).
        context: what the runner knows: ``num_train_examples``, ``steps_per_epoch``,
            ``num_epochs``, ``total_steps``, ``batch_size`` (see :data:`CONTEXT_ARGUMENTS`).
        base: ``(spec, hyperparams)`` of the optimizer a wrapper wraps (default
            :data:`DEFAULT_BASE` with its defaults); an error for a non-wrapper.
        fallback: ``(spec, hyperparams)`` of the optimizer of the parameters a matrix
            optimizer does not take (default: :data:`DEFAULT_FALLBACK`, or for
            pytorch_optimizer's Muon family its own AdamW groups); an error for others.
    """
    build = spec.build
    record = {"optimizer": spec.name, "hyperparams": {k: _plain_value(v) for k, v in hyperparams.items()}}
    traits = []
    wrapped = wrapper_argument(build) if inspect.isclass(build) or callable(build) else None
    kind = matrix_kind(build)
    if base is not None and wrapped is None:
        raise ConfigurationError(f"{spec.name} does not wrap a base optimizer; --base_optimizer is for "
                                 "wrappers such as SAM or Lookahead")
    if fallback is not None and kind is None:
        raise ConfigurationError(f"{spec.name} trains every parameter itself; --fallback_optimizer is for "
                                 "matrix optimizers such as Muon")
    if uses_torch_distributed(build) and distributed.join_single_process_group():
        traits.append("single_process_group")
    extra = _with_hidden_extras(spec, model, context)
    gsam = "GSAM" in _class_names(build)
    if gsam:
        extra["rho_scheduler"] = _ConstantRho(GSAM_RHO)
    fallback_optimizer = None

    if wrapped is not None:
        traits.append("wrapper")
        base_spec, base_hyperparams = base if base is not None else _default(DEFAULT_BASE)
        if wrapper_argument(base_spec.build) is not None or matrix_kind(base_spec.build) is not None \
                or _first_argument(base_spec.build) in MODEL_ARGUMENTS:
            raise ConfigurationError(f"{base_spec.name} cannot be the base optimizer of {spec.name}: a base "
                                     "optimizer must take parameters (e.g. sgd, adamw)")
        record["base"] = {"optimizer": base_spec.name,
                          "hyperparams": {k: _plain_value(v) for k, v in base_hyperparams.items()}}
        parameters, passed = _parameters_for(base_spec.build, model)
        if _wrapper_takes_class(build, wrapped):
            arguments = {**hyperparams, **base_hyperparams, **extra, wrapped.name: base_spec.build}
            record["base"]["passed"] = "class and keyword arguments"
            main = _construct(build, parameters, arguments, spec.name)
        else:
            base_optimizer = _build(base_spec, parameters, base_hyperparams)
            record["base"]["passed"] = "instance"
            if _first_argument(build) == wrapped.name:  # Lookahead(optimizer, ...)
                main = build_optimizer(lambda opt, **kw: build(opt, **kw), base_optimizer,
                                       {**hyperparams, **extra}, name=spec.name)
            else:  # GSAM(params, base_optimizer, model, ...)
                main = _construct(build, parameters, {**hyperparams, **extra, wrapped.name: base_optimizer},
                                  spec.name)
        record["parameters"] = passed
    elif kind is not None:
        traits.append("matrix")
        matrices, rest = split_matrix_parameters(model, flatten=(kind == "groups"))
        if not matrices:
            raise ConfigurationError(
                f"{spec.name} has nothing to train here: the model has no hidden weight matrix "
                f"(its {len(rest)} parameter tensor(s) would all go to the fallback optimizer)")
        internal = kind == "groups" and fallback is None
        record["split"] = {"matrix": {"optimizer": spec.name, "count": len(matrices),
                                      "tensors": _describe(matrices)},
                           "fallback": {"count": len(rest), "tensors": _describe(rest)}}
        if kind == "groups":
            groups = [{"params": [p for _, p in matrices], "use_muon": True}]
            if internal and rest:
                groups.append({"params": [p for _, p in rest], "use_muon": False})
            main = _build(spec, groups, hyperparams, **extra)
            record["parameters"] = "param_groups (use_muon)"
        else:
            main = _build(spec, [p for _, p in matrices], hyperparams, **extra)
            record["parameters"] = "parameters"
        if internal:
            record["split"]["fallback"]["optimizer"] = f"{spec.name}'s own AdamW groups (adamw_* hyperparameters)"
        elif rest:
            fallback_spec, fallback_hyperparams = fallback if fallback is not None else _default(DEFAULT_FALLBACK)
            if matrix_kind(fallback_spec.build) is not None or wrapper_argument(fallback_spec.build) is not None:
                raise ConfigurationError(f"{fallback_spec.name} cannot be the fallback optimizer: it must "
                                         "train any parameter (e.g. adamw, sgd)")
            arguments, _ = _parameters_for(fallback_spec.build, model, rest)
            fallback_optimizer = _build(fallback_spec, arguments, fallback_hyperparams)
            record["split"]["fallback"].update(
                optimizer=fallback_spec.name,
                hyperparams={k: _plain_value(v) for k, v in fallback_hyperparams.items()})
    else:
        arguments, passed = _parameters_for(build, model)
        main = _build(spec, arguments, hyperparams, **extra)
        record["parameters"] = "factory(model)" if passed == "model" and not inspect.isclass(build) else passed
        if passed != "parameters":
            traits.append("model")

    if not isinstance(main, torch.optim.Optimizer) and not hasattr(main, "step"):
        raise ConfigurationError(f"{spec.name} did not return an optimizer (got {type(main).__name__})")
    flags = dict(closure=needs_closure(main), create_graph=needs_create_graph(main), modes=has_modes(main),
                 fused_backward=uses_fused_backward(main), gsam=gsam)
    flags["gradient_first"] = bool(_class_names(type(main)) & GRADIENT_FIRST_OPTIMIZERS)
    for trait, on in (("closure", flags["closure"]), ("hessian", flags["create_graph"]),
                      ("train_eval", flags["modes"]), ("fused_backward", flags["fused_backward"])):
        if on:
            traits.append(trait)
    if extra:
        record["runner_supplied"] = {k: _plain_value(v) if not isinstance(v, nn.Module) else "the model"
                                     for k, v in extra.items()}
    family = next((t for t in ("wrapper", "matrix", "hessian", "closure", "train_eval", "fused_backward", "model")
                   if t in traits), "plain")
    record["family"] = family
    record["traits"] = traits or ["plain"]
    optimizers = [main] + ([fallback_optimizer] if fallback_optimizer is not None else [])
    prepared = PreparedOptimizer(optimizers, family, record, **flags)
    prepared.train()
    return prepared


def _default(name: str) -> tuple:
    spec = resolve_optimizer(name)
    return spec, {k: v["default"] for k, v in spec.hyperparameters.items() if "default" in v}


def companion(value) -> Optional[tuple]:
    """A base or fallback optimizer as ``(OptimizerSpec, hyperparams)`` with defaults
    filled in, from a name, an OptimizerSpec, or ``(name or spec, hyperparams)``."""
    if value is None:
        return None
    given = {}
    if isinstance(value, tuple):
        value, given = value
    spec = resolve_optimizer(value) if isinstance(value, str) else value
    if not isinstance(spec, OptimizerSpec):
        raise ConfigurationError(f"a base or fallback optimizer is a name or an OptimizerSpec, got {value!r}")
    given = dict(given or {})
    unknown = sorted(set(given) - set(spec.hyperparameters))
    if unknown:
        raise ConfigurationError(f"unknown hyperparameter(s) {', '.join(unknown)} for {spec.name}; "
                                 f"allowed: {', '.join(sorted(spec.hyperparameters)) or 'none'}")
    missing = [k for k, v in spec.hyperparameters.items() if "default" not in v and k not in given]
    if missing:
        raise ConfigurationError(f"missing hyperparameter(s) for {spec.name}: {', '.join(missing)}")
    return spec, {**{k: v["default"] for k, v in spec.hyperparameters.items() if "default" in v}, **given}


class _ConstantRho:
    """GSAM's ``rho_scheduler`` when the runner supplies it: a constant radius."""

    def __init__(self, rho: float):
        self.rho = rho

    def step(self) -> float:
        return self.rho


def check_optimizer(spec: OptimizerSpec, hyperparams: dict, *, base: Optional[tuple] = None,
                    fallback: Optional[tuple] = None) -> None:
    """Reject bad hyperparameters before any data is loaded: the optimizer is built for
    a tiny stand-in model (a ConfigurationError names the problem)."""
    if _first_argument(spec.build) in MODEL_ARGUMENTS and not inspect.isclass(spec.build):
        return  # a factory may expect its own model: it is checked when the run builds it
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    context = {"num_train_examples": 1000, "steps_per_epoch": 100, "num_epochs": 10, "total_steps": 1000,
               "batch_size": 10}
    prepare_optimizer(spec, model, hyperparams, context=context, base=base, fallback=fallback)
