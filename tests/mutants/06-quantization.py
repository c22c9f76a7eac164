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
}

FAILING = {
    "quantize_without_clamping": {"test_quantize_clamping"},
    "quantize_zero_point_wrong_sign": {"test_quantize_basics", "test_quantize_clamping"},
    "quantize_floor_instead_of_round": {"test_quantize_basics", "test_quantize_clamping"},
    "dequantize_zero_point_wrong_sign": {"test_dequantize"},
    "quantize_imports_beyondbert": {"test_quantize_basics", "test_quantize_clamping",
                                    "test_dequantize"},
    "per_tensor_instead_of_per_channel": {"test_per_channel_values", "test_per_channel_outlier",
                                          "test_per_channel_zero_row"},
    "per_channel_scale_off_by_one_level": {"test_per_channel_values"},
    "per_channel_nan_on_zero_row": {"test_per_channel_zero_row"},
    "per_channel_wraps_beyondbert": {"test_per_channel_shapes", "test_per_channel_values",
                                     "test_per_channel_outlier", "test_per_channel_zero_row"},
    "ste_blocks_all_gradients": {"test_ste_gradient_inside", "test_ste_gradient_outside"},
    "ste_passes_all_gradients": {"test_ste_gradient_outside"},
    "ste_mask_on_unrounded_x": {"test_ste_gradient_outside"},
    "ste_forward_without_clamping": {"test_ste_forward"},
}
