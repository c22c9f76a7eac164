"""beyondbert.quantization: float formats, affine quantization, observers, fake quantization,
dynamic int8 — with parity against torch.quantize_per_tensor / quantize_per_channel,
torch.fake_quantize_per_tensor_affine and torch.ao.quantization.quantize_dynamic."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from beyondbert import quantization as Q
from beyondbert.seeding import seed_everything


@pytest.fixture(autouse=True)
def _seed():
    seed_everything(0)


def _torch_quantized(fn, *args):
    """Call a torch quantized-tensor constructor without its deprecation warning (only that)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
                                category=UserWarning)
        return fn(*args)


# ---- float formats ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8 E4M3", "fp8 E5M2"])
def test_decode_bits_rebuilds_every_finite_value_of_small_formats(name):
    fmt = Q.FORMATS[name]
    x = Q.from_bits(torch.arange(2 ** fmt.bits), fmt)  # every bit pattern of the format
    decoded = Q.decode_bits(x, fmt)
    finite = torch.isfinite(x.double())
    assert torch.equal(decoded["value"][finite], x.double()[finite])
    assert torch.equal(Q.to_bits(x, fmt), torch.arange(2 ** fmt.bits))


def test_decode_bits_fp32_fields_of_a_known_value():
    d = Q.decode_bits(torch.tensor([-6.5, 1.0]), "fp32")  # -6.5 = -1.625 * 2**2
    assert d["sign"].tolist() == [1, 0]
    assert d["exponent"].tolist() == [127 + 2, 127]
    assert d["mantissa"].tolist() == [int(0.625 * 2 ** 23), 0]
    x = torch.randn(10_000) * 1e3
    assert torch.equal(Q.decode_bits(x, "fp32")["value"], x.double())


@pytest.mark.parametrize("name", list(Q.FORMATS))
def test_format_limits_agree_with_torch_finfo(name):
    fmt = Q.FORMATS[name]
    limits, finfo = Q.format_limits(fmt), torch.finfo(fmt.dtype)
    assert limits["max"] == finfo.max
    assert limits["smallest_normal"] == finfo.smallest_normal
    assert limits["spacing_at_1"] == finfo.eps


def test_e4m3_has_no_infinity_and_e5m2_does():
    assert Q.format_limits("fp8 E4M3")["max"] == 448.0
    assert Q.format_limits("fp8 E5M2")["max"] == 57344.0
    assert torch.isinf(Q.encode_fields(0, 31, 0, "fp8 E5M2").float())  # IEEE-style infinity
    assert Q.encode_fields(0, 15, 6, "fp8 E4M3").float() == 448.0        # top exponent is a number


def test_cast_report_counts_overflow_and_underflow():
    x = torch.tensor([1e-9, 1.0, 1e5, 2.0])
    report = Q.cast_report(x, "fp16")
    assert report["overflow"] == pytest.approx(0.25) and report["underflow"] == pytest.approx(0.25)


def test_bad_format_and_fields_raise():
    with pytest.raises(ValueError, match="unknown float format"):
        Q.float_format("fp7")
    with pytest.raises(ValueError, match="exponent field"):
        Q.encode_fields(0, 16, 0, "fp8 E4M3")


# ---- affine quantization ---------------------------------------------------------------------

def test_quantize_matches_torch_quantize_per_tensor():
    x = torch.randn(50_000) * 3
    for scale, zp, signed, dtype in ((0.0237, 10, False, torch.quint8), (0.05, 0, True, torch.qint8),
                                     (0.011, -7, True, torch.qint8)):
        ours = Q.quantize(x, scale, zp, bits=8, signed=signed)
        ref = _torch_quantized(torch.quantize_per_tensor, x, scale, zp, dtype)
        assert torch.equal(ours, ref.int_repr().to(torch.int64))
        assert torch.allclose(Q.dequantize(ours, scale, zp), ref.dequantize(), atol=0)


def test_quantize_matches_torch_quantize_per_channel():
    w = torch.randn(16, 64) * torch.logspace(-2, 1, 16)[:, None]
    scale, zp = Q.choose_qparams(w.min(1).values, w.max(1).values, bits=8, symmetric=True)
    ours = Q.quantize(w, scale, zp, bits=8, signed=True, axis=0)
    ref = _torch_quantized(torch.quantize_per_channel, w, scale.double(), zp, 0, torch.qint8)
    assert torch.equal(ours, ref.int_repr().to(torch.int64))
    assert torch.allclose(Q.dequantize(ours, scale, zp, axis=0), ref.dequantize().float(), atol=1e-7)


def test_asymmetric_qparams_cover_the_range_and_keep_zero_exact():
    x = torch.linspace(-0.3, 2.7, 101)
    scale, zp = Q.choose_qparams(x.min(), x.max(), bits=8)
    assert scale == pytest.approx(3.0 / 255) and int(zp) == round(0.3 / (3.0 / 255))
    q = Q.quantize(x, scale, zp)
    assert q.min() == 0 and q.max() == 255
    assert Q.dequantize(Q.quantize(torch.zeros(3), scale, zp), scale, zp).abs().max() == 0
    error = (Q.dequantize(q, scale, zp) - x).abs().max()
    assert error <= scale / 2 + 1e-7


def test_quantize_clamps_values_outside_the_range():
    q = Q.quantize(torch.tensor([-10.0, 0.0, 10.0]), 0.01, 128, bits=8)
    assert q.tolist() == [0, 128, 255]
    q4 = Q.quantize(torch.tensor([-10.0, 10.0]), 0.1, 0, bits=4, signed=True)
    assert q4.tolist() == [-8, 7]


def test_error_shrinks_with_bits_and_per_channel_beats_per_tensor_with_outlier_rows():
    w = torch.randn(32, 128)
    w[0] *= 50  # one row with a much larger range: per-tensor scale is set by it
    errors = {b: Q.quantization_error(w, b, symmetric=True) for b in (2, 4, 8)}
    assert errors[8] < errors[4] < errors[2]
    for b in (4, 8):  # the error of the 31 ordinary rows
        rows = {}
        for axis in (None, 0):
            q, scale, zp = Q.quantize_tensor(w, b, symmetric=True, axis=axis)
            w_hat = Q.dequantize(q, scale, zp, axis)
            rows[axis] = float((w_hat - w)[1:].norm() / w[1:].norm())
        assert rows[0] < rows[None] / 5


def test_percentile_observer_ignores_an_outlier():
    x = torch.randn(10_000)
    x[0] = 100.0
    minmax = Q.Observer(bits=8)
    pct = Q.Observer(bits=8, percentile=99.9)
    minmax.update(x)
    pct.update(x)
    assert float(minmax.qparams()[0]) > 10 * float(pct.qparams()[0])


def test_per_channel_observer_gives_one_scale_per_row():
    obs = Q.Observer(bits=8, symmetric=True, axis=0)
    w = torch.randn(5, 7)
    obs.update(w)
    scale, zp = obs.qparams()
    assert scale.shape == (5,) and torch.equal(zp, torch.zeros(5, dtype=torch.int64))
    assert torch.allclose(scale, w.abs().max(1).values / 127)


@pytest.mark.parametrize("bits", [0, 9, -1, 2.0, True])
def test_bits_outside_1_to_8_raise(bits):
    with pytest.raises(ValueError, match="bits must be an int from 1 to 8"):
        Q.quantize(torch.randn(3), 0.1, 0, bits=bits)


@pytest.mark.parametrize("scale", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_scale_raises(scale):
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        Q.quantize(torch.randn(3), scale, 0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_input_raises(bad):
    x = torch.tensor([1.0, bad])
    with pytest.raises(ValueError, match="NaN or inf"):
        Q.quantize(x, 0.1, 0)
    with pytest.raises(ValueError, match="NaN or inf"):
        Q.Observer().update(x)
    with pytest.raises(ValueError, match="NaN or inf"):
        Q.fake_quantize(x, 0.1, 0)


def test_constant_tensors_have_a_documented_safe_result():
    for value in (0.0, 3.0, -2.0):
        x = torch.full((4, 4), value)
        for symmetric in (False, True):
            q, scale, zp = Q.quantize_tensor(x, bits=8, symmetric=symmetric)
            x_hat = Q.dequantize(q, scale, zp)
            assert torch.isfinite(x_hat).all() and scale > 0
            assert torch.allclose(x_hat, x, atol=float(scale) / 2 + 1e-6)
    assert float(Q.choose_qparams(0.0, 0.0)[0]) == Q.MIN_SCALE


def test_other_bad_inputs_raise():
    with pytest.raises(ValueError, match="bits >= 2"):
        Q.choose_qparams(-1.0, 1.0, bits=1, symmetric=True)
    with pytest.raises(ValueError, match="zero_point must lie"):
        Q.quantize(torch.randn(3), 0.1, 300)
    with pytest.raises(ValueError, match="per-channel scale must have shape"):
        Q.quantize(torch.randn(3, 4), torch.ones(4), 0, axis=0)
    with pytest.raises(TypeError, match="floating-point"):
        Q.quantize(torch.arange(3), 0.1, 0)
    with pytest.raises(RuntimeError, match="seen no tensor"):
        Q.Observer().qparams()
    q1 = Q.quantize(torch.tensor([-1.0, 0.2, 0.9]), 1.0, 0, bits=1)  # 1 bit unsigned: {0, 1}
    assert q1.tolist() == [0, 0, 1]


# ---- fake quantization -----------------------------------------------------------------------

def test_fake_quantize_matches_torch_forward_and_backward():
    x = (torch.randn(5000) * 2).requires_grad_()
    grad = torch.randn(5000)
    ours = Q.fake_quantize(x, 0.02, 100, bits=8)
    ours.backward(grad)
    ours_grad, x.grad = x.grad.clone(), None
    ref = torch.fake_quantize_per_tensor_affine(x, 0.02, 100, 0, 255)
    ref.backward(grad)
    assert torch.equal(ours, ref) and torch.equal(ours_grad, x.grad)
    assert 0 < (ours_grad == 0).float().mean() < 1  # some values were clamped, some were not


def test_fake_quantize_per_channel_matches_torch():
    w = torch.randn(8, 32, requires_grad=True)
    scale = torch.rand(8) * 0.02 + 0.005
    zp = torch.zeros(8, dtype=torch.int32)
    grad = torch.randn(8, 32)
    Q.fake_quantize(w, scale, zp, bits=4, signed=True, axis=0).backward(grad)
    ours_grad, w.grad = w.grad.clone(), None
    ref = torch.fake_quantize_per_channel_affine(w, scale, zp, 0, -8, 7)
    ref.backward(grad)
    assert torch.allclose(Q.fake_quantize(w, scale, zp, 4, True, 0), ref, atol=1e-7)
    assert torch.equal(ours_grad, w.grad)


def test_qat_recovers_from_low_bit_weights_on_a_toy_regression():
    x = torch.randn(256, 16)
    target = x @ torch.randn(16, 1)
    model = nn.Linear(16, 1)
    qat = Q.prepare_qat(model, bits=3, act_bits=None)
    optimizer = torch.optim.Adam(qat.parameters(), lr=0.1)
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(qat(x), target)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * target.var().item()
    assert isinstance(qat, Q.FakeQuantLinear) and type(model) is nn.Linear  # a copy was changed


def test_calibrate_freezes_activation_ranges():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    ptq = Q.calibrate(Q.prepare_qat(model, bits=8), [torch.randn(16, 4) for _ in range(3)])
    first = ptq[0]
    lo, hi = float(first.act_min), float(first.act_max)
    ptq(torch.randn(16, 4) * 100)  # eval mode: the range does not move
    assert (float(first.act_min), float(first.act_max)) == (lo, hi)
    out = ptq(torch.randn(3, 4))
    assert torch.allclose(out, model(torch.randn(3, 4)) * 0 + out)  # shape (3, 2), finite
    assert out.shape == (3, 2) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="prepare_qat"):
        Q.calibrate(model, [torch.randn(2, 4)])


# ---- dynamic int8 ----------------------------------------------------------------------------

def test_dynamic_int8_linear_matches_torch_quantize_dynamic():
    """Same int8 weights and scales, 7-bit inputs as fbgemm: outputs agree to float rounding."""
    linear = nn.Linear(64, 48)
    x = torch.randn(10, 64)
    ref_layer = Q.torch_dynamic_int8(nn.Sequential(linear))[0]
    w = ref_layer.weight()
    ours = Q.DynamicInt8Linear(w.int_repr(), w.q_per_channel_scales().float(), ref_layer.bias(),
                               reduce_range=True)
    assert torch.allclose(ours(x), ref_layer(x), atol=1e-5)


def test_quantize_dynamic_int8_model_is_close_to_float_and_four_times_smaller():
    model = nn.Sequential(nn.Linear(128, 256), nn.GELU(), nn.Linear(256, 64))
    x = torch.randn(32, 128)
    quantized = Q.quantize_dynamic_int8(model)
    ref, out = model(x), quantized(x)
    assert ((out - ref).norm() / ref.norm()).item() < 0.02
    assert Q.model_size_bytes(quantized) < 0.3 * Q.model_size_bytes(model)
    assert type(model[0]) is nn.Linear  # the original is untouched


def test_torch_dynamic_int8_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Q.torch_dynamic_int8(nn.Sequential(nn.Linear(4, 4)))


def test_fp64_limits_and_fields_from_its_bits():
    limits, finfo = Q.format_limits("fp64"), torch.finfo(torch.float64)
    assert limits["max"] == finfo.max and limits["smallest_normal"] == finfo.smallest_normal
    assert limits["spacing_at_1"] == finfo.eps and limits["smallest_subnormal"] == 5e-324
    assert (Q.FP64.exponent_bits, Q.FP64.mantissa_bits) == (11, 52)
    x = torch.tensor([-6.5, 1.0, 1e-310, 0.1], dtype=torch.float64)
    d = Q.decode_bits(x, "fp64")
    assert d["sign"].tolist() == [1, 0, 0, 0] and d["exponent"][:3].tolist() == [1025, 1023, 0]
    assert torch.equal(d["value"], x)
    assert float(Q.encode_fields(1, 1023, 0, "fp64")) == -1.0


def test_fake_quant_linear_per_tensor_uses_one_scale():
    torch.manual_seed(0)
    lin = nn.Linear(6, 4)
    with torch.no_grad():
        lin.weight[0] *= 20   # an outlier row stretches a per-tensor grid
    x = torch.randn(3, 6)
    per_row = Q.prepare_qat(lin, bits=4, act_bits=None).eval()
    per_tensor = Q.prepare_qat(lin, bits=4, act_bits=None, per_channel=False).eval()
    scale, _ = per_tensor.weight_qparams()
    assert scale.numel() == 1 and per_row.weight_qparams()[0].shape == (4,)
    ref = lin(x)
    assert (per_tensor(x) - ref).norm() > (per_row(x) - ref).norm()
