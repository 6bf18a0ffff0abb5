"""Whether a run has diverged: non-finite losses, parameters or gradients, found cheaply."""

from __future__ import annotations

import math
from typing import Optional

import torch


def _finite_loss(loss: torch.Tensor) -> bool:
    """Whether every element of ``loss`` (a scalar from the default step) is finite."""
    if loss.numel() == 1:
        return math.isfinite(loss.item())
    return bool(torch.isfinite(loss).all())


def non_finite_state(net) -> Optional[str]:
    """"gradients" or "parameters" if one of them holds a NaN or an infinity, else None.

    ``net`` is a module or a list of its parameters (a runner lists them once per pass:
    walking the module tree costs more than the test for small models). First a cheap
    screen over all gradients and parameters at once, with one device sync: their sums
    (on a CPU; 2-norms elsewhere) are non-finite if an element is. Only a non-finite
    screen (a NaN or an infinity, or an overflow of huge finite values) is confirmed
    per group with the exact max-abs norms, which on a CPU are some 50× slower than a
    sum (7.5 ms for mnist_mlp's 1.3 M parameters).
    """
    parameters = float_parameters(net) if isinstance(net, torch.nn.Module) else net
    gradients = [p.grad for p in parameters if p.grad is not None and p.grad.is_floating_point()]
    with torch.no_grad():
        if _screen_finite(gradients + parameters):
            return None
        for reason, tensors in (("gradients", gradients), ("parameters", parameters)):
            if tensors and not _all_finite(tensors):
                return reason
    return None


def float_parameters(net: torch.nn.Module) -> list:
    """The non-empty floating-point parameters of ``net``."""
    return [p for p in net.parameters() if p.is_floating_point() and p.numel()]


def _screen_finite(tensors: list) -> bool:
    """True if every element is finite; False also when a sum merely overflows."""
    if not tensors:
        return True
    if tensors[0].device.type == "cpu":  # Python floats: cheaper than more dispatches
        return math.isfinite(sum(t.sum().item() for t in tensors))
    try:
        norms = torch._foreach_norm(tensors, ord=2)  # one fused kernel on an accelerator
    except (RuntimeError, TypeError, AttributeError):  # sparse or odd tensors
        norms = [t.norm() for t in tensors]
    return math.isfinite(float(torch.stack([n.float() for n in norms]).sum()))


def _all_finite(tensors: list) -> bool:
    """Exact: every element of every tensor is finite."""
    try:
        norms = torch._foreach_norm(tensors, ord=math.inf)
    except (RuntimeError, TypeError, AttributeError):  # sparse or odd tensors
        norms = [t.abs().max() for t in tensors]
    return bool(torch.isfinite(torch.stack([n.float() for n in norms])).all())

