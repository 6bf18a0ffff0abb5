"""TensorFlow-1 semantics in PyTorch: "same" padding, legacy bilinear resize, TF initialisers.

DeepOBS's published models are TF 1.12 graphs; these helpers make the PyTorch
modules compute and initialise the same functions (docs/design.md, decision 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: Standard deviation of a standard normal truncated to [-2, 2]
#: (scipy.stats.truncnorm.std(-2, 2)); TF divides by it so that its truncated
#: Glorot/He normals keep the intended variance.
TRUNCATED_NORMAL_STD = 0.87962566103423978

PADDINGS = ("same", "valid")


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return padding


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple:
    """(before, after) zero padding of TF's "same" along one axis.

    TF makes the output ``ceil(size / stride)`` long and, when the total pad is odd,
    puts the extra row/column after (bottom/right), unlike PyTorch's symmetric pad.
    """
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _same_pads(x: torch.Tensor, kernel, stride, dilation=(1, 1)) -> tuple:
    top, bottom = same_padding(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[-1], kernel[1], stride[1], dilation[1])
    return left, right, top, bottom


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` with TF padding: ``"same"`` (asymmetric when needed) or ``"valid"``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding: str = "same", bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias)
        self.tf_padding = _check_padding(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution, with TF "same" padding (asymmetric where TF pads so) or "valid"."""
        if self.tf_padding == "same":
            left, right, top, bottom = _same_pads(x, self.kernel_size, self.stride, self.dilation)
            if left == right and top == bottom:  # symmetric: let the conv pad (faster)
                return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation)
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with TF's ``"same"``: output = input × stride.

    TF's "same" transposed convolution is the adjoint of a "same" convolution from
    the output size, i.e. the full transposed convolution cropped by that
    convolution's (possibly asymmetric) padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding: str = "same", bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        self.tf_padding = _check_padding(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The transposed convolution, cropped to TF's "same" or "valid" output size."""
        full = F.conv_transpose2d(x, self.weight, self.bias, self.stride)
        if self.tf_padding == "valid":
            return full
        out_h, out_w = x.shape[-2] * self.stride[0], x.shape[-1] * self.stride[1]
        top, _ = same_padding(out_h, self.kernel_size[0], self.stride[0])
        left, _ = same_padding(out_w, self.kernel_size[1], self.stride[1])
        return full[..., top:top + out_h, left:left + out_w]


class MaxPool2d(nn.Module):
    """Max pooling with TF padding; "same" pads with −∞, so pads never win."""

    def __init__(self, kernel_size, stride, padding: str = "same"):
        super().__init__()
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = _check_padding(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Max pooling with TF "same" (padding with -inf) or "valid" semantics."""
        if self.padding == "same":
            x = F.pad(x, _same_pads(x, self.kernel_size, self.stride), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


class AvgPool2d(nn.Module):
    """Average pooling with TF padding; "same" averages over the real pixels only."""

    def __init__(self, kernel_size, stride, padding: str = "same"):
        super().__init__()
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = _check_padding(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Average pooling with TF "same" (padding not counted) or "valid" semantics."""
        if self.padding == "valid":
            return F.avg_pool2d(x, self.kernel_size, self.stride)
        pads = _same_pads(x, self.kernel_size, self.stride)
        if pads[0] == pads[1] and pads[2] == pads[3]:
            return F.avg_pool2d(x, self.kernel_size, self.stride, padding=(pads[2], pads[0]),
                                count_include_pad=False)
        sums = F.avg_pool2d(F.pad(x, pads), self.kernel_size, self.stride)
        ones = torch.ones_like(x[:1, :1])
        counts = F.avg_pool2d(F.pad(ones, pads), self.kernel_size, self.stride)
        return sums / counts

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


def _legacy_bilinear_matrix(in_size: int, out_size: int, device, dtype) -> torch.Tensor:
    """(out, in) interpolation weights of TF 1's bilinear resize (align_corners=False).

    TF 1.x maps output pixel i to source coordinate i·in/out (no half-pixel
    offset, unlike PyTorch's ``interpolate``), clamping the upper neighbour.
    """
    source = torch.arange(out_size, dtype=torch.float64) * (in_size / out_size)
    lower = source.floor().long().clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    frac = source - lower.double()
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)
    weights.index_put_((rows, lower), 1.0 - frac, accumulate=True)
    weights.index_put_((rows, upper), frac, accumulate=True)
    return weights.to(device=device, dtype=dtype)


def resize_bilinear(x: torch.Tensor, size) -> torch.Tensor:
    """Resize NCHW images as TF 1.x's ``tf.image.resize_images`` (bilinear) does."""
    out_h, out_w = _pair(size)
    in_h, in_w = x.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return x
    rows = _legacy_bilinear_matrix(in_h, out_h, x.device, x.dtype)
    cols = _legacy_bilinear_matrix(in_w, out_w, x.device, x.dtype)
    return rows @ x @ cols.T


class ResizeBilinear(nn.Module):
    """Module form of :func:`resize_bilinear` (VGG resizes to 224, Inception to 299)."""

    def __init__(self, size):
        super().__init__()
        self.size = _pair(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` resized bilinearly to ``size``, as TF's resize."""
        return resize_bilinear(x, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


# ------------------------------------------------------------------ initialisers
def _fans(tensor: torch.Tensor) -> tuple:
    """(fan_in, fan_out) as TF computes them; a 1-D tensor has fan_in = fan_out = length."""
    if tensor.dim() == 1:
        return tensor.shape[0], tensor.shape[0]
    return nn.init._calculate_fan_in_and_fan_out(tensor)


@torch.no_grad()
def truncated_normal_(tensor: torch.Tensor, std: float, mean: float = 0.0) -> torch.Tensor:
    """TF's ``truncated_normal_initializer``: N(mean, std²) re-drawn outside ±2·std."""
    return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=mean - 2 * std, b=mean + 2 * std)


@torch.no_grad()
def glorot_normal_(tensor: torch.Tensor) -> torch.Tensor:
    """TF 1.12's ``glorot_normal``: a normal truncated at ±2σ, σ corrected for the cut.

    ``glorot_normal`` is ``VarianceScaling(1, "fan_avg", "normal")``, which TF 1.x
    (from 1.10 on; the baselines used 1.12) draws from a *truncated* normal whose
    σ = sqrt(2 / (fan_in + fan_out)) / 0.8796, so that the variance after the cut is
    2 / (fan_in + fan_out). PyTorch's ``xavier_normal_`` is untruncated.
    """
    fan_in, fan_out = _fans(tensor)
    std = math.sqrt(2.0 / (fan_in + fan_out)) / TRUNCATED_NORMAL_STD
    return truncated_normal_(tensor, std)


@torch.no_grad()
def glorot_uniform_(tensor: torch.Tensor) -> torch.Tensor:
    """TF's ``glorot_uniform`` (the default of ``tf.layers`` and ``get_variable``):
    U(±sqrt(6 / (fan_in + fan_out))); also defined for 1-D tensors, as in TF."""
    fan_in, fan_out = _fans(tensor)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return tensor.uniform_(-limit, limit)


@torch.no_grad()
def init_layer(layer: nn.Module, weight_init, bias: float = 0.0) -> nn.Module:
    """Initialise ``layer.weight`` with ``weight_init`` and its bias with a constant."""
    weight_init(layer.weight)
    if getattr(layer, "bias", None) is not None:
        layer.bias.fill_(bias)
    return layer


def tf_batch_norm_momentum(tf_momentum: float) -> float:
    """PyTorch's ``momentum`` (weight of the new batch) for TF's decay ``tf_momentum``."""
    return 1.0 - tf_momentum


__all__ = [
    "AvgPool2d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "ResizeBilinear",
    "glorot_normal_", "glorot_uniform_", "init_layer", "resize_bilinear", "same_padding",
    "tf_batch_norm_momentum", "truncated_normal_",
]
