"""Wrong answers to exercise 06 (quantization); each must lose points.

MUTANTS: mutant name -> {grade_id of an answer cell: the source that replaces that cell}.
FAILING: mutant name -> the graded test cells that must fail (all others must pass).
tests/test_exercises.py fills the student version with the solution's answers, swaps in a
mutant's cells, autogrades it and checks both.
"""

_DEQUANTIZE = '''

def dequantize(q, scale, zero_point):
    return (q.to(torch.int64) - zero_point).to(torch.float32) * scale
'''

_QUANTIZE = '''
def quantize(x, scale, zero_point, bits):
    q = torch.round(x / scale) + zero_point
    return torch.clamp(q, 0, 2 ** bits - 1).to(torch.int64)
'''

_FP8 = '''
def decode_fp8(patterns, fmt):
    exp_bits, man_bits = {"e4m3": (4, 3), "e5m2": (5, 2)}[fmt]
    bias = 2 ** (exp_bits - 1) - 1
    p = patterns.to(torch.int64)
    negative = ((p >> 7) & 1) == 1
    field = (p >> man_bits) & (2 ** exp_bits - 1)
    man = p & (2 ** man_bits - 1)
    fraction = man.to(torch.float64) / 2 ** man_bits
    normal = torch.exp2((field - bias).to(torch.float64)) * (1 + fraction)
    subnormal = 2.0 ** (1 - bias) * fraction
    magnitude = torch.where(field == 0, subnormal, normal)
    top = field == 2 ** exp_bits - 1
    if fmt == "e4m3":
        magnitude = torch.where(top & (man == 2 ** man_bits - 1), float("nan"), magnitude)
    else:
        magnitude = torch.where(top, torch.where(man == 0, float("inf"), float("nan")), magnitude)
    return torch.where(negative, -magnitude, magnitude).to(torch.float32)
'''

MUTANTS = {
    # Task 1 -----------------------------------------------------------------------------------
    # the slides' formula as written: round(x / s + z) with no clamp
    "quantize_without_clamping": {"quantize_dequantize": '''
def quantize(x, scale, zero_point, bits):
    return torch.round(x / scale + zero_point).to(torch.int64)
''' + _DEQUANTIZE},
    # subtracts the zero-point instead of adding it
    "quantize_zero_point_wrong_sign": {"quantize_dequantize": '''
def quantize(x, scale, zero_point, bits):
    q = torch.round(x / scale) - zero_point
    return torch.clamp(q, 0, 2 ** bits - 1).to(torch.int64)
''' + _DEQUANTIZE},
    # truncates towards minus infinity instead of rounding to the nearest level
    "quantize_floor_instead_of_round": {"quantize_dequantize": '''
def quantize(x, scale, zero_point, bits):
    q = torch.floor(x / scale) + zero_point
    return torch.clamp(q, 0, 2 ** bits - 1).to(torch.int64)
''' + _DEQUANTIZE},
    # adds the zero-point back instead of removing it
    "dequantize_zero_point_wrong_sign": {"quantize_dequantize": _QUANTIZE + '''

def dequantize(q, scale, zero_point):
    return (q.to(torch.int64) + zero_point).to(torch.float32) * scale
'''},
    # the library's implementation: beyondbert.quantization is hidden from student code, so the
    # import fails and every test of task 1 fails
    "quantize_imports_beyondbert": {"quantize_dequantize": '''
from beyondbert.quantization import dequantize, quantize
'''},
    # Task 2 -----------------------------------------------------------------------------------
    # one scale for the whole matrix (per tensor), repeated for every row
    "per_tensor_instead_of_per_channel": {"quantize_weight_per_channel": '''
def quantize_weight_per_channel(weight, bits):
    qmax = 2 ** (bits - 1) - 1
    scale = weight.abs().max() / qmax
    scales = torch.full((weight.shape[0],), float(scale) if scale > 0 else 1.0)
    q = torch.clamp(torch.round(weight / scales[:, None]), -qmax, qmax).to(torch.int64)
    return q, scales
'''},
    # divides by 2**(bits-1) (the unrestricted signed range) instead of 2**(bits-1) - 1
    "per_channel_scale_off_by_one_level": {"quantize_weight_per_channel": '''
def quantize_weight_per_channel(weight, bits):
    qmax = 2 ** (bits - 1) - 1
    scales = weight.abs().amax(dim=1) / 2 ** (bits - 1)
    scales = torch.where(scales > 0, scales, torch.ones_like(scales))
    q = torch.clamp(torch.round(weight / scales[:, None]), -qmax, qmax).to(torch.int64)
    return q, scales
'''},
    # forgets the all-zero row: 0 / 0 = NaN
    "per_channel_nan_on_zero_row": {"quantize_weight_per_channel": '''
def quantize_weight_per_channel(weight, bits):
    qmax = 2 ** (bits - 1) - 1
    scales = weight.abs().amax(dim=1) / qmax
    q = torch.clamp(torch.round(weight / scales[:, None]), -qmax, qmax).to(torch.int64)
    return q, scales
'''},
    # a wrapper written in the notebook that calls the library: still no credit
    "per_channel_wraps_beyondbert": {"quantize_weight_per_channel": '''
import beyondbert.quantization


def quantize_weight_per_channel(weight, bits):
    q, scales, _ = beyondbert.quantization.quantize_tensor(weight, bits, symmetric=True, axis=0)
    return q, scales
'''},
    # Task 3 -----------------------------------------------------------------------------------
    # the true derivative of rounding: zero everywhere, so nothing would ever train
    "ste_blocks_all_gradients": {"fake_quantize_ste": '''
def fake_quantize_ste(x, grad_output, scale, zero_point, bits):
    codes = torch.clamp(torch.round(x / scale) + zero_point, 0, 2 ** bits - 1)
    return (codes - zero_point) * scale, torch.zeros_like(grad_output)
'''},
    # identity gradient everywhere, also where the value was clamped
    "ste_passes_all_gradients": {"fake_quantize_ste": '''
def fake_quantize_ste(x, grad_output, scale, zero_point, bits):
    codes = torch.clamp(torch.round(x / scale) + zero_point, 0, 2 ** bits - 1)
    return (codes - zero_point) * scale, grad_output.clone()
'''},
    # tests the range on x instead of on the rounded code: wrong within half a step of the ends
    "ste_mask_on_unrounded_x": {"fake_quantize_ste": '''
def fake_quantize_ste(x, grad_output, scale, zero_point, bits):
    codes = torch.round(x / scale) + zero_point
    y = (torch.clamp(codes, 0, 2 ** bits - 1) - zero_point) * scale
    low, high = (0 - zero_point) * scale, (2 ** bits - 1 - zero_point) * scale
    inside = (x >= low) & (x <= high)
    return y, torch.where(inside, grad_output, torch.zeros_like(grad_output))
'''},
    # forward pass without the clamp (the gradient mask is right)
    "ste_forward_without_clamping": {"fake_quantize_ste": '''
def fake_quantize_ste(x, grad_output, scale, zero_point, bits):
    codes = torch.round(x / scale) + zero_point
    inside = (codes >= 0) & (codes <= 2 ** bits - 1)
    return (codes - zero_point) * scale, torch.where(inside, grad_output, torch.zeros_like(grad_output))
'''},
    # wraps on uint8 codes: (q - z) * s is right for int64 codes, but uint8 - int stays uint8
    "dequantize_uint8_overflow": {"quantize_dequantize": _QUANTIZE + '''

def dequantize(q, scale, zero_point):
    return ((q - zero_point) * scale).to(torch.float32)
'''},
    # PyTorch's own fake quantization: refused by name in the sandbox and in the set-up cell
    "ste_uses_torch_fake_quantize": {"fake_quantize_ste": '''
def fake_quantize_ste(x, grad_output, scale, zero_point, bits):
    x = x.clone().requires_grad_()
    y = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 2 ** bits - 1)
    y.backward(grad_output)
    return y.detach(), x.grad
'''},
    # Task 4 -----------------------------------------------------------------------------------
    # the slides' 1/3/4 layout for "E4M3": 3 exponent bits (bias 3) and 4 mantissa bits
    "fp8_layout_1_3_4": {"decode_fp8": _FP8.replace('{"e4m3": (4, 3), "e5m2": (5, 2)}', '{"e4m3": (3, 4), "e5m2": (5, 2)}')},
    # IEEE conventions for E4M3 too: exponent all ones is inf / NaN, so 0x78 and 448 are lost
    "fp8_e4m3_as_ieee": {"decode_fp8": _FP8.replace('if fmt == "e4m3":', 'if False:')},
    # no subnormals: the implicit 1 also when the exponent field is 0
    "fp8_no_subnormals": {"decode_fp8": _FP8.replace("torch.where(field == 0, subnormal, normal)", "normal")},
    # the bias off by one (2 ** (E - 1) instead of 2 ** (E - 1) - 1)
    "fp8_bias_off_by_one": {"decode_fp8": _FP8.replace("bias = 2 ** (exp_bits - 1) - 1", "bias = 2 ** (exp_bits - 1)")},
}

FAILING = {
    'quantize_without_clamping': {'test_quantize_clamping', 'test_quantize_clamping_bits'},
    'quantize_zero_point_wrong_sign': {
        'test_quantize_basics',
        'test_quantize_clamping_bits',
        'test_quantize_random'},
    'quantize_floor_instead_of_round': {
        'test_quantize_basics',
        'test_quantize_clamping_bits',
        'test_quantize_random'},
    'dequantize_zero_point_wrong_sign': {
        'test_dequantize',
        'test_dequantize_random',
        'test_dequantize_uint8'},
    'quantize_imports_beyondbert': {
        'test_dequantize',
        'test_dequantize_random',
        'test_dequantize_uint8',
        'test_quantize_basics',
        'test_quantize_clamping',
        'test_quantize_clamping_bits',
        'test_quantize_random'},
    'per_tensor_instead_of_per_channel': {
        'test_per_channel_bits',
        'test_per_channel_outlier',
        'test_per_channel_values',
        'test_per_channel_values_bits',
        'test_per_channel_zero_row'},
    'per_channel_scale_off_by_one_level': {
        'test_per_channel_values',
        'test_per_channel_values_bits'},
    'per_channel_nan_on_zero_row': {'test_per_channel_zero_row'},
    'per_channel_wraps_beyondbert': {
        'test_per_channel_bits',
        'test_per_channel_outlier',
        'test_per_channel_shapes',
        'test_per_channel_values',
        'test_per_channel_values_bits',
        'test_per_channel_zero_row'},
    'ste_blocks_all_gradients': {
        'test_ste_gradient_edges',
        'test_ste_gradient_inside',
        'test_ste_gradient_outside'},
    'ste_passes_all_gradients': {'test_ste_gradient_edges', 'test_ste_gradient_outside'},
    'ste_mask_on_unrounded_x': {'test_ste_gradient_edges'},
    'ste_forward_without_clamping': {'test_ste_forward', 'test_ste_forward_8bit'},
    'dequantize_uint8_overflow': {'test_dequantize_uint8'},
    'ste_uses_torch_fake_quantize': {
        'test_ste_forward',
        'test_ste_forward_8bit',
        'test_ste_gradient_edges',
        'test_ste_gradient_inside',
        'test_ste_gradient_outside'},
    'fp8_layout_1_3_4': {
        'test_fp8_all_patterns',
        'test_fp8_e4m3',
        'test_fp8_special',
        'test_fp8_subnormal'},
    'fp8_e4m3_as_ieee': {'test_fp8_all_patterns', 'test_fp8_e4m3', 'test_fp8_special'},
    'fp8_no_subnormals': {'test_fp8_all_patterns', 'test_fp8_subnormal'},
    'fp8_bias_off_by_one': {
        'test_fp8_all_patterns',
        'test_fp8_e4m3',
        'test_fp8_e5m2',
        'test_fp8_special',
        'test_fp8_subnormal'},
}
