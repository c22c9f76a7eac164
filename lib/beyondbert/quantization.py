"""Model quantization: float formats bit by bit, affine integer quantization, fake quantization.

- **Float formats** (fp32, fp16, bf16 and the 8-bit floats E4M3 / E5M2 of Micikevicius et al.,
  2022): :func:`decode_bits` splits real values into sign, exponent and mantissa fields through a
  bit view of the tensor; :func:`format_limits` computes a format's range, smallest normal and
  spacing near 1 from bit patterns (not from a table).
- **Affine quantization** ``q = clamp(round(x / scale) + zero_point, qmin, qmax)``,
  ``x_hat = (q - zero_point) * scale``, per tensor or per channel (:func:`quantize`,
  :func:`dequantize`, :func:`choose_qparams`, :class:`Observer`).
- **Fake quantization** with a straight-through estimator (:func:`fake_quantize`): the forward
  pass rounds, the backward pass lets the gradient through inside the range and zeroes it outside
  (Bengio et al., 2013; Jacob et al., 2018).
- **Models**: :class:`FakeQuantLinear` and :func:`prepare_qat` (quantization-aware training and
  simulated post-training quantization), :class:`DynamicInt8Linear` / :func:`quantize_dynamic_int8`
  (dynamic int8 inference written out) and :func:`torch_dynamic_int8` (PyTorch's kernels).

Conventions: ``signed=False`` uses the unsigned range ``[0, 2**bits - 1]`` (asymmetric, with a
zero-point); ``signed=True`` the signed range ``[-2**(bits-1), 2**(bits-1) - 1]``. Symmetric
quantization uses zero-point 0 and the *restricted* range ``±(2**(bits-1) - 1)``, so that ``x`` and
``-x`` quantize to opposite integers.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_tensor

# Smallest scale choose_qparams returns: a constant-zero tensor gets this scale (and is then
# reconstructed exactly as zeros) instead of a division by zero.
MIN_SCALE = float(torch.finfo(torch.float32).eps)


# ---------------------------------------------------------------------------------------------
# Floating-point formats
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: 1 sign bit, ``exponent_bits``, ``mantissa_bits``."""

    name: str
    dtype: torch.dtype
    exponent_bits: int
    mantissa_bits: int

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def bias(self) -> int:
        """Exponent bias ``2**(E-1) - 1``: the stored field ``e`` means ``2**(e - bias)``."""
        return 2 ** (self.exponent_bits - 1) - 1


FORMATS: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("fp32", torch.float32, 8, 23),
        FloatFormat("fp16", torch.float16, 5, 10),
        FloatFormat("bf16", torch.bfloat16, 8, 7),
        FloatFormat("fp8 E4M3", torch.float8_e4m3fn, 4, 3),
        FloatFormat("fp8 E5M2", torch.float8_e5m2, 5, 2),
    )
}

# fp64 (IEEE double, 1/11/52) for comparison tables: not in FORMATS, whose formats the pages cast
# MiniLM into; float_format("fp64") finds it.
FP64 = FloatFormat("fp64", torch.float64, 11, 52)

_SIGNED_INT = {8: torch.int8, 16: torch.int16, 32: torch.int32, 64: torch.int64}


def float_format(fmt: str | torch.dtype | FloatFormat) -> FloatFormat:
    """The :class:`FloatFormat` named ``fmt`` (a key of ``FORMATS``) or of dtype ``fmt``."""
    if isinstance(fmt, FloatFormat):
        return fmt
    for f in (*FORMATS.values(), FP64):
        if fmt == f.name or fmt == f.dtype:
            return f
    raise ValueError(f"unknown float format {fmt!r}: expected one of {[*FORMATS, FP64.name]} or "
                     f"their dtypes")


def to_bits(x: torch.Tensor, fmt: str | torch.dtype | FloatFormat) -> torch.Tensor:
    """The bit patterns of ``x`` cast to ``fmt``, as non-negative int64 (same shape as ``x``).

    fp64's 64-bit patterns do not fit a non-negative int64: they are returned as the signed
    (two's complement) int64 with the same bits.
    """
    f = float_format(fmt)
    check_tensor(x, "x")
    raw = x.to(f.dtype).view(_SIGNED_INT[f.bits]).to(torch.int64)
    if f.bits == 64:
        return raw
    return raw & ((1 << f.bits) - 1)  # two's complement -> the unsigned bit pattern


def from_bits(pattern: torch.Tensor, fmt: str | torch.dtype | FloatFormat) -> torch.Tensor:
    """Tensor of dtype ``fmt`` whose bit patterns are ``pattern`` (ints in ``[0, 2**bits)``)."""
    f = float_format(fmt)
    pattern = torch.as_tensor(pattern, dtype=torch.int64)
    if f.bits == 64:  # an int64 already holds every 64-bit pattern (two's complement)
        return pattern.view(f.dtype)
    if pattern.numel() and (pattern.min() < 0 or pattern.max() >= 1 << f.bits):
        raise ValueError(f"{f.name} bit patterns must lie in [0, 2**{f.bits}), got "
                         f"[{int(pattern.min())}, {int(pattern.max())}]")
    signed = torch.where(pattern >= 1 << (f.bits - 1), pattern - (1 << f.bits), pattern)
    return signed.to(_SIGNED_INT[f.bits]).view(f.dtype)


def encode_fields(sign: int, exponent: int, mantissa: int,
                  fmt: str | torch.dtype | FloatFormat) -> torch.Tensor:
    """The 0-d tensor of format ``fmt`` with the given sign, exponent and mantissa fields."""
    f = float_format(fmt)
    for name, value, width in (("sign", sign, 1), ("exponent", exponent, f.exponent_bits),
                               ("mantissa", mantissa, f.mantissa_bits)):
        if not 0 <= value < 1 << width:
            raise ValueError(f"{name} field of {f.name} must be in [0, {(1 << width) - 1}], "
                             f"got {value}")
    pattern = (sign << (f.bits - 1)) | (exponent << f.mantissa_bits) | mantissa
    if f.bits == 64 and pattern >= 1 << 63:
        pattern -= 1 << 64  # the same bits as a signed int64
    return from_bits(torch.tensor(pattern), f)


def decode_bits(x: torch.Tensor, fmt: str | torch.dtype | FloatFormat) -> dict[str, torch.Tensor]:
    """Split ``x`` (cast to ``fmt``) into its fields and rebuild the value from them.

    Returns int64 tensors ``sign``, ``exponent``, ``mantissa`` (the stored fields) and a float64
    ``value`` = ``(-1)**s * 2**(e - bias) * (1 + m / 2**M)`` for normal numbers,
    ``(-1)**s * 2**(1 - bias) * (m / 2**M)`` for subnormals (``e = 0``). Infinities and NaNs
    (whose meaning depends on the format) are returned as the cast value itself.
    """
    f = float_format(fmt)
    bits = to_bits(x, f)
    sign = (bits >> (f.bits - 1)) & 1
    exponent = (bits >> f.mantissa_bits) & ((1 << f.exponent_bits) - 1)
    mantissa = bits & ((1 << f.mantissa_bits) - 1)
    fraction = mantissa.double() / 2.0 ** f.mantissa_bits
    normal = exponent > 0
    magnitude = torch.where(normal, torch.ldexp(1.0 + fraction, (exponent - f.bias).double()),
                            torch.ldexp(fraction, torch.tensor(1.0 - f.bias, dtype=torch.float64)))
    value = torch.where(sign == 1, -magnitude, magnitude)
    cast = x.to(f.dtype).double()
    value = torch.where(torch.isfinite(cast), value, cast)
    return {"sign": sign, "exponent": exponent, "mantissa": mantissa, "value": value}


def format_limits(fmt: str | torch.dtype | FloatFormat) -> dict[str, float]:
    """A format's key numbers, computed from bit patterns.

    ``max``: largest finite value (the highest positive bit pattern that decodes to a finite
    number, found by bisection: positive floats grow with their bit pattern);
    ``smallest_normal`` (exponent field 1, mantissa 0); ``smallest_subnormal`` (pattern 1);
    ``spacing_at_1``: distance from 1.0 to the next value (machine epsilon ``2**-M``);
    ``decimal_digits``: ``-log10(spacing_at_1 / 2)``, the relative rounding error in digits.
    """
    f = float_format(fmt)

    def value(pattern: int) -> float:
        return float(from_bits(torch.tensor(pattern), f).double())

    low, high = 0, (1 << (f.bits - 1)) - 1  # positive patterns; `low` is finite (0.0)
    while low < high:  # largest finite positive pattern
        mid = (low + high + 1) // 2
        if math.isfinite(value(mid)):
            low = mid
        else:
            high = mid - 1
    one = encode_fields(0, f.bias, 0, f)
    after_one = encode_fields(0, f.bias, 1, f)
    spacing = float(after_one.double() - one.double())
    return {
        "max": value(low),
        "smallest_normal": float(encode_fields(0, 1, 0, f).double()),
        "smallest_subnormal": value(1),
        "spacing_at_1": spacing,
        "decimal_digits": float(-torch.log10(torch.tensor(spacing / 2, dtype=torch.float64))),
    }


def cast_report(x: torch.Tensor, fmt: str | torch.dtype | FloatFormat) -> dict[str, float]:
    """What casting the float32 tensor ``x`` to ``fmt`` does to it.

    ``overflow``: fraction of finite values that become inf/NaN or are clipped to the format's
    maximum (|x| above it); ``underflow``: fraction of non-zero values that become 0;
    ``subnormal``: fraction landing among the subnormals; ``median_rel_error`` and
    ``max_rel_error`` of the non-zero values that stay in range.
    """
    f = float_format(fmt)
    check_tensor(x, "x")
    x = x.detach().float().flatten()
    limits = format_limits(f)
    y = x.to(f.dtype).float()
    nonzero = x != 0
    over = x.abs() > limits["max"]
    under = nonzero & (y == 0)
    sub = nonzero & (y != 0) & (y.abs() < limits["smallest_normal"])
    ok = nonzero & ~over & ~under & torch.isfinite(y)
    rel = ((y[ok] - x[ok]) / x[ok]).abs()
    return {
        "overflow": float(over.float().mean()),
        "underflow": float(under.float().sum() / nonzero.float().sum().clamp(min=1)),
        "subnormal": float(sub.float().sum() / nonzero.float().sum().clamp(min=1)),
        "median_rel_error": float(rel.median()) if rel.numel() else 0.0,
        "max_rel_error": float(rel.max()) if rel.numel() else 0.0,
    }


# ---------------------------------------------------------------------------------------------
# Affine (scale, zero-point) quantization
# ---------------------------------------------------------------------------------------------

def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int from 1 to 8, got {bits!r}")
    return bits


def qrange(bits: int, signed: bool = False) -> tuple[int, int]:
    """Integer range ``(qmin, qmax)``: ``[0, 2**bits-1]`` or ``[-2**(bits-1), 2**(bits-1)-1]``."""
    _check_bits(bits)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def _check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf: quantization needs finite values "
                         f"(clean the input or clip it first)")
    return x


def _per_axis(param: torch.Tensor | float, x: torch.Tensor, axis: int | None,
              name: str) -> torch.Tensor:
    """``param`` as a tensor that broadcasts against ``x``: a scalar, or one value per channel
    (a 0-d per-channel parameter is shared by every channel)."""
    p = torch.as_tensor(param)
    if axis is None:
        if p.numel() != 1:
            raise ValueError(f"per-tensor {name} must be a single number, got shape "
                             f"{tuple(p.shape)} (pass axis=... for per-channel)")
        return p.reshape(())
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"axis {axis} is out of range for a tensor with {x.dim()} dimensions")
    axis = axis % x.dim()
    if p.dim() == 0:  # one number shared by every channel (e.g. zero-point 0)
        return p
    if tuple(p.shape) != (x.shape[axis],):
        raise ValueError(f"per-channel {name} must have shape ({x.shape[axis]},) (one per entry "
                         f"of axis {axis}), got {tuple(p.shape)}")
    shape = [1] * x.dim()
    shape[axis] = -1
    return p.reshape(shape)


def _check_qparams(scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> None:
    if not (torch.isfinite(scale).all() and (scale > 0).all()):
        raise ValueError(f"scale must be finite and > 0, got {scale.flatten()[:4].tolist()}…")
    if zero_point.is_floating_point() and not torch.equal(zero_point, zero_point.round()):
        raise ValueError("zero_point must be an integer")
    if ((zero_point < qmin) | (zero_point > qmax)).any():
        raise ValueError(f"zero_point must lie in the integer range [{qmin}, {qmax}]")


def quantize(x: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | int = 0,
             bits: int = 8, signed: bool = False, axis: int | None = None) -> torch.Tensor:
    """``clamp(round(x / scale) + zero_point, qmin, qmax)`` (round half to even).

    x: any shape, float; scale, zero_point: numbers, or ``(x.shape[axis],)`` per channel.
    Returns the integers, same shape, int64.
    """
    _check_finite(x, "x")
    qmin, qmax = qrange(bits, signed)
    scale_t = _per_axis(scale, x, axis, "scale").to(x.dtype)
    zp = _per_axis(zero_point, x, axis, "zero_point")
    _check_qparams(scale_t, zp, qmin, qmax)
    return torch.clamp(torch.round(x / scale_t) + zp.to(torch.int64), qmin, qmax).to(torch.int64)


def dequantize(q: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | int = 0,
               axis: int | None = None) -> torch.Tensor:
    """``(q - zero_point) * scale`` as float32 (same shape as ``q``)."""
    check_tensor(q, "q")
    scale_t = _per_axis(scale, q, axis, "scale").to(torch.float32)
    zp = _per_axis(zero_point, q, axis, "zero_point")
    return (q.to(torch.int64) - zp.to(torch.int64)).to(torch.float32) * scale_t


def choose_qparams(min_val: torch.Tensor | float, max_val: torch.Tensor | float, bits: int = 8,
                   symmetric: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, zero_point)`` that map ``[min_val, max_val]`` onto the integer grid.

    Asymmetric (unsigned range): the range is widened to contain 0 (so 0.0 is exact),
    ``scale = (max - min) / (2**bits - 1)``, ``zero_point = -round(min / scale)``.
    Symmetric (signed, restricted range, zero-point 0; needs ``bits >= 2``):
    ``scale = max(|min|, |max|) / (2**(bits-1) - 1)``.
    A zero range (a constant-zero tensor) gets scale ``MIN_SCALE`` instead of 0.
    Works elementwise: per-channel ranges give per-channel parameters.
    """
    _check_bits(bits)
    lo, hi = torch.as_tensor(min_val, dtype=torch.float32), torch.as_tensor(max_val, dtype=torch.float32)
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise ValueError("min_val and max_val must be finite (the observed tensor held NaN/inf)")
    if (lo > hi).any():
        raise ValueError("min_val must be <= max_val")
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    if symmetric:
        if bits < 2:
            raise ValueError("symmetric quantization needs bits >= 2 (1 bit has no level on "
                             "each side of 0); use symmetric=False for 1 bit")
        qmax = 2 ** (bits - 1) - 1
        scale = torch.clamp(torch.maximum(-lo, hi) / qmax, min=MIN_SCALE)
        return scale, torch.zeros_like(scale, dtype=torch.int64)
    qmin, qmax = qrange(bits, signed=False)
    scale = torch.clamp((hi - lo) / (qmax - qmin), min=MIN_SCALE)
    zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax).to(torch.int64)
    return scale, zero_point


class Observer:
    """Watches tensors and proposes ``(scale, zero_point)`` from their range.

    ``axis=None``: one range for the whole tensor; ``axis=k``: one per entry of dimension ``k``
    (per channel, e.g. ``axis=0`` = per output row of a Linear weight).
    ``percentile=None``: the range is the running min and max over every observed tensor;
    ``percentile=p`` (e.g. 99.99): the mean over observed tensors of their ``100-p`` and ``p``
    percentiles, which ignores rare outliers (values beyond are clamped when quantizing).
    """

    def __init__(self, bits: int = 8, symmetric: bool = False, axis: int | None = None,
                 percentile: float | None = None) -> None:
        _check_bits(bits)
        if percentile is not None and not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
        self.bits, self.symmetric, self.axis, self.percentile = bits, symmetric, axis, percentile
        self.min_val: torch.Tensor | None = None
        self.max_val: torch.Tensor | None = None
        self.count = 0

    def _range(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.flatten() if self.axis is None else x.movedim(self.axis, 0).flatten(1)
        dim = None if self.axis is None else 1
        if self.percentile is None:
            if dim is None:
                return flat.min(), flat.max()
            return flat.min(dim=1).values, flat.max(dim=1).values
        q = torch.tensor([1 - self.percentile / 100, self.percentile / 100], dtype=flat.dtype)
        if flat.shape[-1] > 2 ** 24:  # torch.quantile's input limit: use a strided sample
            flat = flat[..., :: flat.shape[-1] // 2 ** 23 + 1]
        lo, hi = (torch.quantile(flat, q) if dim is None else torch.quantile(flat, q, dim=1))
        return lo, hi

    def update(self, x: torch.Tensor) -> None:
        """Fold the range of ``x`` into the running range (NaN/inf raise ``ValueError``)."""
        x = _check_finite(x.detach().float(), "observed tensor")
        lo, hi = self._range(x)
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        elif self.percentile is None:
            self.min_val, self.max_val = torch.minimum(self.min_val, lo), torch.maximum(self.max_val, hi)
        else:  # running mean of the per-tensor percentiles
            n = self.count
            self.min_val = (self.min_val * n + lo) / (n + 1)
            self.max_val = (self.max_val * n + hi) / (n + 1)
        self.count += 1

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, zero_point)`` for the range seen so far (scalars, or one per channel)."""
        if self.min_val is None:
            raise RuntimeError("the observer has seen no tensor yet: call update(x) first")
        return choose_qparams(self.min_val, self.max_val, self.bits, self.symmetric)


def quantize_tensor(x: torch.Tensor, bits: int = 8, symmetric: bool = False,
                    axis: int | None = None, percentile: float | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Observe ``x`` and quantize it: returns ``(q, scale, zero_point)``."""
    observer = Observer(bits, symmetric, axis, percentile)
    observer.update(x)
    scale, zero_point = observer.qparams()
    return quantize(x, scale, zero_point, bits, symmetric, axis), scale, zero_point


def quantization_error(x: torch.Tensor, bits: int = 8, symmetric: bool = False,
                       axis: int | None = None, percentile: float | None = None) -> float:
    """Relative reconstruction error ``||x - x_hat|| / ||x||`` after quantizing ``x``."""
    q, scale, zero_point = quantize_tensor(x, bits, symmetric, axis, percentile)
    x_hat = dequantize(q, scale, zero_point, axis)
    return float((x_hat - x.float()).norm() / x.float().norm().clamp(min=MIN_SCALE))


# ---------------------------------------------------------------------------------------------
# Fake quantization with a straight-through estimator
# ---------------------------------------------------------------------------------------------

class _FakeQuantizeSTE(torch.autograd.Function):
    """Forward: quantize then dequantize. Backward: pass the gradient where ``x`` was in range."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax):  # noqa: ANN001 - autograd signature
        unclamped = torch.round(x / scale) + zero_point
        ctx.save_for_backward((unclamped >= qmin) & (unclamped <= qmax))
        return (torch.clamp(unclamped, qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx, grad_output):  # noqa: ANN001 - autograd signature
        (inside,) = ctx.saved_tensors
        return grad_output * inside, None, None, None, None


def fake_quantize(x: torch.Tensor, scale: torch.Tensor | float, zero_point: torch.Tensor | int = 0,
                  bits: int = 8, signed: bool = False, axis: int | None = None) -> torch.Tensor:
    """``dequantize(quantize(x))`` in float, differentiable with a straight-through estimator.

    The gradient with respect to ``x`` is the incoming gradient where ``round(x / scale) +
    zero_point`` lies in ``[qmin, qmax]`` and 0 where it was clamped (as
    ``torch.fake_quantize_per_tensor_affine``). Same shape and dtype as ``x``.
    """
    _check_finite(x.detach(), "x")
    qmin, qmax = qrange(bits, signed)
    scale_t = _per_axis(scale, x, axis, "scale").to(x.dtype)
    zp = _per_axis(zero_point, x, axis, "zero_point")
    _check_qparams(scale_t, zp, qmin, qmax)
    return _FakeQuantizeSTE.apply(x, scale_t.detach(), zp.to(x.dtype), qmin, qmax)


class FakeQuantLinear(nn.Linear):
    """A Linear layer that computes with fake-quantized weights and inputs.

    Weights: symmetric, per output channel (``per_channel=False``: one scale for the whole
    matrix), ``bits`` bits, re-quantized from the float weights at every call (so training updates
    the float "shadow" weights). Inputs: asymmetric per tensor,
    ``act_bits`` bits, with an :class:`Observer`-style range that is updated while the layer is in
    training mode (exponential moving average with ``momentum``, as Q8BERT does) or while
    ``calibrating`` is True (running min/max), and frozen otherwise. ``act_bits=None`` leaves
    inputs in float.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 8,
                 act_bits: int | None = 8, momentum: float = 0.01,
                 per_channel: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.per_channel = bool(per_channel)
        self.bits = _check_bits(bits)
        self.act_bits = None if act_bits is None else _check_bits(act_bits)
        if bits < 2:
            raise ValueError("FakeQuantLinear quantizes weights symmetrically: bits must be >= 2")
        self.momentum = momentum
        self.calibrating = False
        self.quantize_enabled = True
        self.register_buffer("act_min", torch.tensor(float("inf")))
        self.register_buffer("act_max", torch.tensor(float("-inf")))

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 8, act_bits: int | None = 8,
                    momentum: float = 0.01, per_channel: bool = True) -> FakeQuantLinear:
        """A FakeQuantLinear holding a copy of ``linear``'s weights."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, bits,
                    act_bits, momentum, per_channel)
        layer.load_state_dict(linear.state_dict(), strict=False)
        return layer.to(linear.weight.dtype)

    def weight_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight.detach()
        if not self.per_channel:
            return choose_qparams(w.min(), w.max(), self.bits, symmetric=True)
        return choose_qparams(w.min(dim=1).values, w.max(dim=1).values, self.bits, symmetric=True)

    def _observe(self, x: torch.Tensor) -> None:
        lo, hi = x.detach().min().float(), x.detach().max().float()
        if self.calibrating or not torch.isfinite(self.act_min):
            self.act_min.copy_(torch.minimum(self.act_min, lo))
            self.act_max.copy_(torch.maximum(self.act_max, hi))
        else:
            self.act_min.lerp_(lo, self.momentum)
            self.act_max.lerp_(hi, self.momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize_enabled:
            return super().forward(x)
        if self.act_bits is not None:
            if self.training or self.calibrating:
                self._observe(x)
            if not torch.isfinite(self.act_min):
                raise RuntimeError("no input range observed yet: calibrate or train first")
            a_scale, a_zp = choose_qparams(self.act_min, self.act_max, self.act_bits)
            x = fake_quantize(x, a_scale, a_zp, self.act_bits)
        w_scale, w_zp = self.weight_qparams()
        w = fake_quantize(self.weight, w_scale, w_zp, self.bits, signed=True,
                          axis=0 if self.per_channel else None)
        return nn.functional.linear(x, w, self.bias)


def _replace_linears(model: nn.Module, make) -> nn.Module:  # noqa: ANN001 - a factory
    if type(model) is nn.Linear:
        return make(model)
    for name, child in model.named_children():
        setattr(model, name, _replace_linears(child, make))
    return model


def prepare_qat(model: nn.Module, bits: int = 8, act_bits: int | None = 8,
                momentum: float = 0.01, per_channel: bool = True) -> nn.Module:
    """A deep copy of ``model`` with every ``nn.Linear`` replaced by a :class:`FakeQuantLinear`.

    ``act_bits=None`` quantizes the weights only (weight-only PTQ in eval mode; QAT in training
    mode); ``per_channel=False`` gives each weight matrix one scale.
    """
    _check_bits(bits)
    return _replace_linears(copy.deepcopy(model),
                            lambda lin: FakeQuantLinear.from_linear(lin, bits, act_bits, momentum,
                                                                    per_channel))


@torch.no_grad()
def calibrate(model: nn.Module, batches) -> nn.Module:  # noqa: ANN001 - any iterable of inputs
    """Post-training calibration: run ``model`` on ``batches`` recording each FakeQuantLinear's
    input range (min/max), then freeze the ranges and put the model in eval mode."""
    layers = [m for m in model.modules() if isinstance(m, FakeQuantLinear)]
    if not layers:
        raise ValueError("calibrate needs a model prepared with prepare_qat (no FakeQuantLinear)")
    model.eval()
    for layer in layers:
        layer.calibrating = True
        layer.act_min.fill_(float("inf"))
        layer.act_max.fill_(float("-inf"))
    try:
        for batch in batches:
            model(batch)
    finally:
        for layer in layers:
            layer.calibrating = False
    return model


# ---------------------------------------------------------------------------------------------
# Dynamic int8 inference
# ---------------------------------------------------------------------------------------------

class DynamicInt8Linear(nn.Module):
    """Dynamic int8 Linear written out: int8 weights stored, inputs quantized on the fly.

    Weights: symmetric per output channel (int8 buffer + one float scale per row). At each call
    the input is quantized per tensor to uint8 from its own min and max (no calibration: that is
    what "dynamic" means), the integer product is accumulated and rescaled by
    ``input_scale * weight_scale``, and the float bias added. Shapes as ``nn.Linear``.
    ``reduce_range=True`` quantizes inputs to 7 bits, as PyTorch's x86 (fbgemm) kernels do to
    keep their 16-bit intermediate sums from overflowing.
    """

    def __init__(self, weight_q: torch.Tensor, weight_scale: torch.Tensor,
                 bias: torch.Tensor | None, reduce_range: bool = False) -> None:
        super().__init__()
        self.input_bits = 7 if reduce_range else 8
        self.out_features, self.in_features = weight_q.shape
        self.register_buffer("weight_q", weight_q.to(torch.int8))
        self.register_buffer("weight_scale", weight_scale.to(torch.float32))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> DynamicInt8Linear:
        q, scale, _ = quantize_tensor(linear.weight.detach(), bits=8, symmetric=True, axis=0)
        return cls(q, scale, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_q, x_scale, x_zp = quantize_tensor(x.detach(), bits=self.input_bits, symmetric=False)
        # Integer-valued float32 matmul: exact while the sums stay below 2**24 (true here:
        # |x_q - zp| <= 255, |w_q| <= 127, in_features <= 512 gives < 2**24).
        acc = (x_q - x_zp).to(torch.float32) @ self.weight_q.to(torch.float32).T
        out = acc * (x_scale * self.weight_scale)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every ``nn.Linear`` replaced by :class:`DynamicInt8Linear`."""
    return _replace_linears(copy.deepcopy(model), DynamicInt8Linear.from_linear)


def torch_dynamic_int8(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """PyTorch's dynamic int8 quantization of ``model``'s Linear layers (a new model).

    ``torch.ao.quantization.quantize_dynamic`` with per-channel weight scales by default (per
    tensor loses more accuracy on MiniLM). Its deprecation warnings (torchao is the successor)
    are silenced here, and only those.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, "
                                r"torch\.quantize_per_channel and other quantized tensor",
                                category=UserWarning)
        from torch.ao import quantization as tq

        qconfig = tq.per_channel_dynamic_qconfig if per_channel else tq.default_dynamic_qconfig
        return tq.quantize_dynamic(copy.deepcopy(model), {nn.Linear: qconfig}, dtype=torch.qint8)


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())`` (what the model takes on disk)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
