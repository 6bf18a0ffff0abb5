"""BK-Core: the diagonal of the resolvent (H − zI)⁻¹ of a batched tridiagonal H in O(N).

The diagonal is computed with the ratio (continued-fraction) recursion of
the ResNet-BK section of docs/testproblems.md instead of the continuants θ, φ: the ratios stay bounded
by 1/Im z for a real symmetric H, so nothing overflows, even in complex64 at
N = 65,536. Two implementations give the same numbers:

* ``"sequential"``: the recursion as a Python loop over positions (the reference);
* ``"parallel"``: an associative scan over Möbius maps (2×2 matrices, rescaled after
  every product so that they cannot overflow), O(N) work and O(log N) depth within
  chunks of :data:`SCAN_CHUNK` positions, the chunks run one after the other.

Two modes: ``causal=True`` returns the left ratio gL_k = [(H_{1:k,1:k} − z)⁻¹]_kk,
which depends only on the diagonal entries 1..k (the feature of the causal language
model); ``causal=False`` returns the two-sided diagonal G_kk.

Gradients are exact (autograd through either implementation) unless the
``"hybrid"`` gradient is asked for: the original project's diagonal approximation
blended with its heuristic term, kept only for ablations (see :class:`HybridGradient`).
"""

from __future__ import annotations

from typing import Union

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from deepobs.errors import ConfigurationError

METHODS = ("sequential", "parallel")
GRADIENTS = ("exact", "hybrid")

# Smallest |G²| the hybrid heuristic divides by (the original's floor).
_HYBRID_MIN_SQUARE = 1e-3


# --------------------------------------------------------------------------- checks
def _check_choice(name: str, value: str, allowed: tuple) -> str:
    if value not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.float64, torch.complex128):
        return torch.complex128
    return torch.complex64


def _off_diagonal_products(diag: torch.Tensor, upper, lower) -> torch.Tensor:
    """b_k·c_k broadcast to (..., N−1): the only way the off-diagonals enter G_kk."""
    n = diag.shape[-1]
    upper = torch.as_tensor(upper, dtype=diag.dtype, device=diag.device)
    lower = upper if lower is None else torch.as_tensor(lower, dtype=diag.dtype, device=diag.device)
    products = upper * lower
    if products.dim() == 0:
        products = products.expand(n - 1)
    if products.shape[-1] != n - 1:
        raise ConfigurationError(
            f"off-diagonals must have N−1 = {n - 1} entries along the last axis, "
            f"got shape {tuple(products.shape)}")
    return products.expand(*diag.shape[:-1], n - 1)


# ----------------------------------------------------------------- left ratios
def left_ratios_sequential(shifted: torch.Tensor, products: torch.Tensor) -> torch.Tensor:
    """gL_k = 1/(s_k − p_{k−1}·gL_{k−1}), gL_1 = 1/s_1, as a Python loop (the reference).

    Args:
        shifted: s = diag − z, complex, shape (..., N).
        products: p_k = b_k·c_k, shape (..., N−1).
    """
    ratio = 1.0 / shifted[..., 0]
    ratios = [ratio]
    for k in range(1, shifted.shape[-1]):
        ratio = 1.0 / (shifted[..., k] - products[..., k - 1] * ratio)
        ratios.append(ratio)
    return torch.stack(ratios, dim=-1)


def _rescale(*parts):
    """Divide the entries of a 2×2 matrix (or column) by the largest of them.

    A Möbius map is scale-free, so this changes no result but keeps every product
    bounded. The scale is detached: every result is invariant to it, so its gradient
    contribution is exactly zero and need not be computed.
    """
    with torch.no_grad():
        largest = torch.view_as_real(torch.stack(parts, dim=-1)).abs().amax((-2, -1))
        scale = largest.clamp_min(torch.finfo(largest.dtype).tiny).reciprocal()
    return tuple(part * scale for part in parts)


def _compose(later, earlier):
    """The Möbius map ``later ∘ earlier`` (matrix product later·earlier), rescaled."""
    la, lb, lc, ld = later
    ea, eb, ec, ed = earlier
    return _rescale(la * ea + lb * ec, la * eb + lb * ed, lc * ea + ld * ec, lc * eb + ld * ed)


def _apply(maps, column):
    """``maps`` applied to a constant map [[0, top], [0, bottom]]: its new column, rescaled."""
    a, b, c, d = maps
    top, bottom = column
    return _rescale(a * top + b * bottom, c * top + d * bottom)


def _interleave(even: torch.Tensor, odd: torch.Tensor) -> torch.Tensor:
    """[e0, o0, e1, o1, ...] along the last axis (len(even) = len(odd) or one more)."""
    paired = torch.stack([even[..., : odd.shape[-1]], odd], dim=-1).flatten(-2)
    if even.shape[-1] > odd.shape[-1]:
        paired = torch.cat([paired, even[..., -1:]], dim=-1)
    return paired


def _prefix_columns(maps):
    """Second columns (top, bottom) of the prefix compositions P_k = M_k ∘ … ∘ M_1.

    The first map must be constant ([[0, b], [0, d]]), hence so is every prefix and
    its second column is all it holds. Work-efficient recursive doubling: adjacent
    pairs are composed, the pairs' prefixes found recursively, and the even positions
    filled in from them: O(N) work, O(log N) depth. The prefix at k is built from maps
    1..k only, so the scan is exactly causal.
    """
    if maps[0].shape[-1] == 1:
        return maps[1], maps[3]
    even = tuple(m[..., 0::2] for m in maps)
    odd = tuple(m[..., 1::2] for m in maps)
    pairs = _compose(odd, tuple(m[..., : odd[0].shape[-1]] for m in even))
    pair_top, pair_bottom = _prefix_columns(pairs)
    later = tuple(m[..., 1:] for m in even)
    count = later[0].shape[-1]
    top, bottom = _apply(later, (pair_top[..., :count], pair_bottom[..., :count]))
    even_top = torch.cat([even[1][..., :1], top], dim=-1)
    even_bottom = torch.cat([even[3][..., :1], bottom], dim=-1)
    return _interleave(even_top, pair_top), _interleave(even_bottom, pair_bottom)


#: Positions per scan chunk: chunks run one after the other, so the working set of a
#: chunk (and of its backward pass) stays in cache and the time stays linear in N.
SCAN_CHUNK = 16_384


def _scan_left_ratios(shifted: torch.Tensor, products: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Forward of :func:`left_ratios_parallel` (no autograd graph is recorded)."""
    zero = torch.zeros_like(shifted[..., :1])
    previous = torch.cat([zero, products], dim=-1)
    maps = _rescale(torch.zeros_like(shifted), torch.ones_like(shifted), -previous, shifted)
    tops, bottoms, carried = [], [], None
    for start in range(0, shifted.shape[-1], chunk_size):
        chunk = tuple(m[..., start:start + chunk_size] for m in maps)
        if carried is not None:
            top, bottom = _apply(tuple(m[..., :1] for m in chunk), carried)
            chunk = (torch.cat([zero, chunk[0][..., 1:]], dim=-1), torch.cat([top, chunk[1][..., 1:]], dim=-1),
                     torch.cat([zero, chunk[2][..., 1:]], dim=-1), torch.cat([bottom, chunk[3][..., 1:]], dim=-1))
        top, bottom = _prefix_columns(chunk)
        carried = (top[..., -1:], bottom[..., -1:])
        tops.append(top)
        bottoms.append(bottom)
    return torch.cat(tops, dim=-1) / torch.cat(bottoms, dim=-1)


def linear_recurrence(coefficients: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """x_j = a_j·x_{j−1} + b_j along the last axis, x_0 = b_0, by recursive doubling.

    Args:
        coefficients: a_1..a_{N−1}, shape (..., N−1).
        inputs: b_0..b_{N−1}, shape (..., N).
    """
    if inputs.shape[-1] == 1:
        return inputs
    # Pad a_0 = 0 so that position j pairs a_j with b_j.
    padded = torch.cat([torch.zeros_like(inputs[..., :1]), coefficients], dim=-1)
    even_a, odd_a = padded[..., 0::2], padded[..., 1::2]
    even_b, odd_b = inputs[..., 0::2], inputs[..., 1::2]
    half = odd_a.shape[-1]
    pair_a = odd_a * even_a[..., :half]
    pair_x = linear_recurrence(pair_a[..., 1:], odd_a * even_b[..., :half] + odd_b)
    count = even_a.shape[-1] - 1
    even_x = torch.cat([even_b[..., :1], even_a[..., 1:] * pair_x[..., :count] + even_b[..., 1:]], dim=-1)
    return _interleave(even_x, pair_x)


class _ParallelLeftRatios(torch.autograd.Function):
    """Left ratios by the Möbius scan, with the exact adjoint as backward.

    Recording autograd through the scan would keep O(N) intermediate tensors per
    level alive until the backward pass; the adjoint needs only the ratios. With
    gL_k = 1/(s_k − p_{k−1}·gL_{k−1}) and λ the gradient with respect to gL:
    λ_{k−1} = g_{k−1} + conj(gL_k²·p_{k−1})·λ_k (a linear recurrence, scanned in
    parallel too), ∂L/∂s_k = −conj(gL_k²)·λ_k, ∂L/∂p_{k−1} = conj(gL_k²·gL_{k−1})·λ_k.
    """

    @staticmethod
    def forward(ctx, shifted, products, chunk_size):
        ratios = _scan_left_ratios(shifted, products, chunk_size)
        ctx.save_for_backward(ratios, products)
        return ratios

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_ratios):
        ratios, products = ctx.saved_tensors
        square = ratios * ratios
        coupling = (square[..., 1:] * products).conj()
        adjoint = linear_recurrence(coupling.flip(-1), grad_ratios.flip(-1)).flip(-1)
        grad_shifted = -square.conj() * adjoint
        grad_products = (square[..., 1:] * ratios[..., :-1]).conj() * adjoint[..., 1:]
        return grad_shifted, grad_products, None


def left_ratios_parallel(shifted: torch.Tensor, products: torch.Tensor,
                         chunk_size: int = SCAN_CHUNK) -> torch.Tensor:
    """The left ratios gL_k by an associative scan over Möbius maps.

    Step k is the map x ↦ 1/(s_k − p_{k−1}·x), i.e. the matrix [[0, 1], [−p_{k−1}, s_k]]
    (p_0 = 0, so the first map is the constant 1/s_1). With P_k the rescaled product
    of the first k matrices, gL_k = P_k[0, 1] / P_k[1, 1]: the second column is the
    direction of the continuants (θ_{k−1}, θ_k) without their magnitude. Sequences
    longer than ``chunk_size`` are scanned chunk by chunk, each chunk's first map
    composed with the prefix that ends the previous chunk. The gradient is exact
    (an adjoint scan, see :class:`_ParallelLeftRatios`); it is not twice differentiable.
    """
    products = products.to(shifted.dtype).expand(*shifted.shape[:-1], shifted.shape[-1] - 1)
    return _ParallelLeftRatios.apply(shifted, products, chunk_size)


def _left_ratios(shifted, products, method: str) -> torch.Tensor:
    if method == "sequential":
        return left_ratios_sequential(shifted, products)
    return left_ratios_parallel(shifted, products)


# ------------------------------------------------------------------- diagonal
def _exact_diagonal(diag, products, z, causal: bool, method: str) -> torch.Tensor:
    dtype = _complex_dtype(diag.dtype)
    shifted = diag.to(dtype) - torch.as_tensor(z, dtype=dtype, device=diag.device)
    products = products.to(dtype)
    if causal:
        return _left_ratios(shifted, products, method)
    # Left ratios of the sequence and of its mirror image (the right ratios) in one call.
    both = _left_ratios(torch.stack([shifted, shifted.flip(-1)]),
                        torch.stack([products, products.flip(-1)]), method)
    left, right = both[0], both[1].flip(-1)
    from_left = torch.cat([torch.zeros_like(shifted[..., :1]), products * left[..., :-1]], dim=-1)
    from_right = torch.cat([products * right[..., 1:], torch.zeros_like(shifted[..., :1])], dim=-1)
    return 1.0 / (shifted - from_left - from_right)


class HybridGradient(torch.autograd.Function):
    """The original project's "hybrid analytic gradient", with its conjugation fixed.

    Forward: the exact diagonal. Backward, for the upstream gradient g = ∂L/∂Re G +
    i·∂L/∂Im G: grad v_k = (1 − α)·(−Re(conj(g_k)·G_kk²)) + α·(−Re(conj(g_k)/G_kk²)).
    The first term keeps only ∂G_kk/∂v_k = −G_kk² (exact only when the off-diagonals
    are zero); the second is the original's heuristic ("hypothesis 7"), not a
    gradient. No gradient reaches the off-diagonals or z. For ablations only.
    """

    @staticmethod
    def forward(ctx, diag, products, z, causal, method, grad_blend):
        with torch.no_grad():
            result = _exact_diagonal(diag, products, z, causal, method)
        ctx.save_for_backward(result)
        ctx.grad_blend = grad_blend
        ctx.real_dtype = diag.dtype
        return result

    @staticmethod
    def backward(ctx, grad_output):
        (result,) = ctx.saved_tensors
        square = result * result
        upstream = grad_output.conj()
        diagonal_term = -(upstream * square).real
        grad = diagonal_term
        if ctx.grad_blend:
            magnitude = square.abs()
            floored = torch.where(magnitude < _HYBRID_MIN_SQUARE,
                                  square / magnitude.clamp_min(1e-30) * _HYBRID_MIN_SQUARE, square)
            heuristic_term = -(upstream / floored).real
            grad = (1.0 - ctx.grad_blend) * diagonal_term + ctx.grad_blend * heuristic_term
        if not ctx.real_dtype.is_complex:
            grad = grad.to(ctx.real_dtype)
        return grad, None, None, None, None, None


def resolvent_diagonal(diag: torch.Tensor, upper=1.0, lower=None, z: Union[complex, torch.Tensor] = 1j,
                       *, causal: bool = False, method: str = "parallel", gradient: str = "exact",
                       grad_blend: float = 0.0) -> torch.Tensor:
    """Diagonal of (H − zI)⁻¹ for tridiagonal H, batched over leading axes, in O(N).

    Args:
        diag: diagonal a_k of H, shape (..., N), real (float32 → complex64 result,
            float64 → complex128).
        upper: super-diagonal b_k, shape (..., N−1) or a scalar.
        lower: sub-diagonal c_k (default: ``upper``, i.e. symmetric H).
        z: complex shift (default i); a tensor may require grad (exact gradient only).
        causal: return the left ratio gL_k (depends on a_1..a_k and b_j c_j, j < k)
            instead of the two-sided G_kk.
        method: ``"parallel"`` (associative scan) or ``"sequential"`` (Python loop).
        gradient: ``"exact"`` (autograd) or ``"hybrid"`` (:class:`HybridGradient`).
        grad_blend: α of the hybrid gradient (0: its diagonal term alone).

    Returns:
        Complex tensor of shape (..., N).
    """
    _check_choice("method", method, METHODS)
    _check_choice("gradient", gradient, GRADIENTS)
    if diag.dim() < 1 or diag.shape[-1] < 1:
        raise ConfigurationError(f"diag must have shape (..., N) with N >= 1, got {tuple(diag.shape)}")
    products = _off_diagonal_products(diag, upper, lower)
    if gradient == "hybrid":
        if not 0.0 <= grad_blend <= 1.0:
            raise ConfigurationError(f"grad_blend must be in [0, 1], got {grad_blend}")
        return HybridGradient.apply(diag, products, z, causal, method, float(grad_blend))
    return _exact_diagonal(diag, products, z, causal, method)


class BKCore(nn.Module):
    """Resolvent diagonal of H = H0 + diag(v), H0 the 1-D Laplacian (−2 on the diagonal,
    1 beside it), at a fixed complex shift z: the sequence mixer of ResNet-BK.

    Args:
        z: complex shift (not learned); Im z > 0 bounds every output by 1/Im z.
        causal: left ratios gL_k (position k sees v_1..v_k) instead of G_kk.
        method: ``"parallel"`` or ``"sequential"`` (same numbers).
        gradient: ``"exact"`` or ``"hybrid"`` (ablation, see :class:`HybridGradient`).
        grad_blend: α of the hybrid gradient; a per-module setting, never global.
    """

    def __init__(self, z: complex = 1j, causal: bool = True, method: str = "parallel",
                 gradient: str = "exact", grad_blend: float = 0.0):
        super().__init__()
        self.z = complex(z)
        self.causal = bool(causal)
        self.method = _check_choice("method", method, METHODS)
        self.gradient = _check_choice("gradient", gradient, GRADIENTS)
        if not 0.0 <= grad_blend <= 1.0:
            raise ConfigurationError(f"grad_blend must be in [0, 1], got {grad_blend}")
        if grad_blend and gradient != "hybrid":
            raise ConfigurationError("grad_blend > 0 needs gradient='hybrid'")
        self.grad_blend = float(grad_blend)

    def forward(self, potential: torch.Tensor) -> torch.Tensor:
        """Complex diagonal (..., N) for the potential v of shape (..., N)."""
        return resolvent_diagonal(potential - 2.0, 1.0, None, self.z, causal=self.causal,
                                  method=self.method, gradient=self.gradient,
                                  grad_blend=self.grad_blend)

    def extra_repr(self) -> str:
        text = f"z={self.z}, causal={self.causal}, method={self.method!r}, gradient={self.gradient!r}"
        if self.gradient == "hybrid":
            text += f", grad_blend={self.grad_blend}"
        return text


__all__ = ["BKCore", "HybridGradient", "resolvent_diagonal", "left_ratios_sequential",
           "left_ratios_parallel", "linear_recurrence", "SCAN_CHUNK", "METHODS", "GRADIENTS"]
