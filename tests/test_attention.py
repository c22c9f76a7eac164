"""Attention: masks, scaled dot-product attention (parity with PyTorch), multi-head shapes."""

import math

import pytest
import torch

from beyondbert.attention import (
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)


def test_causal_mask_is_lower_triangular():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool and mask.shape == (4, 4)
    assert torch.equal(mask, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]).bool())


def test_padding_mask_broadcast_shape():
    mask = padding_mask(torch.tensor([[1, 1, 0], [1, 0, 0]]))
    assert mask.shape == (2, 1, 1, 3) and mask.dtype == torch.bool


@pytest.mark.parametrize("use_mask", [False, True])
def test_matches_torch_sdpa(use_mask):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))
    mask = causal_mask(5) if use_mask else None
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ours, ref, atol=1e-6)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 5))


def test_scale_is_one_over_sqrt_d():
    q = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    k = torch.tensor([[[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    v = torch.eye(2).unsqueeze(0)
    _, weights = scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(torch.tensor([2.0 / math.sqrt(4), 0.0]), dim=0)
    assert torch.allclose(weights[0, 0], expected)


def test_masked_keys_get_exactly_zero_weight_and_empty_rows_no_nan():
    q = k = v = torch.randn(1, 3, 4)
    mask = torch.tensor([[True, False, False], [True, True, False], [False, False, False]])
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert weights[0, 0, 1] == 0 and weights[0, 0, 2] == 0
    assert torch.equal(weights[0, 2], torch.zeros(3)) and torch.equal(out[0, 2], torch.zeros(4))
    assert not torch.isnan(out).any()


def test_bad_inputs_name_expected_and_given():
    q = torch.randn(1, 2, 4)
    with pytest.raises(ValueError, match="last dimension"):
        scaled_dot_product_attention(q, torch.randn(1, 2, 3), torch.randn(1, 2, 3))
    with pytest.raises(ValueError, match="bool"):
        scaled_dot_product_attention(q, q, q, torch.ones(2, 2))
    with pytest.raises(ValueError, match="floating-point"):
        scaled_dot_product_attention(q.long(), q.long(), q.long())
    with pytest.raises(ValueError, match="positive int"):
        causal_mask(0)
    with pytest.raises(ValueError, match=r"\(batch, seq\)"):
        padding_mask(torch.ones(3))


def test_multi_head_attention_shapes_and_divisibility():
    mha = MultiHeadAttention(dim=32, num_heads=4)
    out, weights = mha(torch.randn(2, 6, 32))
    assert out.shape == (2, 6, 32) and weights.shape == (2, 4, 6, 6)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(dim=30, num_heads=4)
