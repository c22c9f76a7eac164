"""Transformer++ pieces: RMSNorm (vs torch.nn.RMSNorm), RoPE (vs complex numbers), SwiGLU and the
pre-norm block (vs transformers' LlamaDecoderLayer with the same weights), bad inputs."""

import pytest
import torch

from beyondbert.modern import (ModernBlock, ModernEncoder, RotaryEmbedding, apply_rope, count_parameters,
                               rms_norm, rope_angles, swiglu_hidden_size)


def test_rms_norm_matches_torch():
    torch.manual_seed(0)
    x, weight = torch.randn(3, 5, 16), torch.randn(16)
    reference = torch.nn.RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        reference.weight.copy_(weight)
    assert torch.allclose(rms_norm(x, weight, 1e-6), reference(x), atol=1e-6)  # float32 tolerance


def test_rms_norm_does_not_centre():
    x = torch.tensor([[1.0, 2.0, 3.0]])
    out = rms_norm(x, eps=1e-12)
    assert torch.allclose(out, x / (14 / 3) ** 0.5)
    assert out.mean() > 0.5  # LayerNorm would give mean 0


def test_rope_matches_complex_rotation():
    torch.manual_seed(0)
    seq, d = 7, 8
    x = torch.randn(2, 3, seq, d, dtype=torch.float64)
    cos, sin = rope_angles(seq, d)
    ours = apply_rope(x, cos.double(), sin.double())
    # Direct computation: pair i is the complex number x[i] + 1j * x[i + d/2], turned by m * theta_i.
    theta = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.complex(x[..., : d // 2], x[..., d // 2:])
    turned = z * torch.polar(torch.ones(seq, d // 2, dtype=torch.float64), torch.arange(seq)[:, None] * theta)
    expected = torch.cat([turned.real, turned.imag], dim=-1)
    assert torch.allclose(ours, expected, atol=1e-6)  # cos/sin tables are stored in float32


def test_rope_score_depends_only_on_the_offset():
    torch.manual_seed(1)
    d, seq = 16, 12
    rope = RotaryEmbedding(d, seq)
    q, k = torch.randn(d), torch.randn(d)
    rq, rk = rope(q.expand(seq, d)), rope(k.expand(seq, d))  # the same q and k at every position
    scores = rq @ rk.T                                          # scores[m, n] for positions m, n
    for offset in (-3, 0, 2, 5):
        diagonal = torch.diagonal(scores, offset=offset)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-5)
    assert not torch.allclose(torch.diagonal(scores, 0)[0], torch.diagonal(scores, 3)[0])


def test_rope_keeps_norms_and_position_zero():
    x = torch.randn(1, 5, 8)
    out = RotaryEmbedding(8, 5)(x)
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.allclose(out[:, 0], x[:, 0])


def test_rope_bad_inputs():
    with pytest.raises(ValueError, match="even head dimension"):
        rope_angles(4, 7)
    rope = RotaryEmbedding(8, 4)
    with pytest.raises(ValueError, match="longer than the RoPE table"):
        rope(torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="cos and sin"):
        rope(torch.randn(1, 3, 6))
    with pytest.raises(ValueError, match="floating-point"):
        rms_norm(torch.ones(2, 3, dtype=torch.long))


def test_block_matches_transformers_llama_layer_without_causal_mask():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

    torch.manual_seed(0)
    dim, heads, hidden, seq = 32, 4, swiglu_hidden_size(32), 6
    config = LlamaConfig(hidden_size=dim, intermediate_size=hidden, num_attention_heads=heads,
                         num_key_value_heads=heads, rms_norm_eps=1e-6, max_position_embeddings=seq,
                         attention_bias=False, mlp_bias=False, attn_implementation="eager")
    reference = LlamaDecoderLayer(config, layer_idx=0).eval()
    ours = ModernBlock(dim, heads, hidden, seq).eval()
    names = {"attention_norm.weight": "input_layernorm.weight", "mlp_norm.weight": "post_attention_layernorm.weight",
             "attention.query.weight": "self_attn.q_proj.weight", "attention.key.weight": "self_attn.k_proj.weight",
             "attention.value.weight": "self_attn.v_proj.weight", "attention.output.weight": "self_attn.o_proj.weight",
             "mlp.gate.weight": "mlp.gate_proj.weight", "mlp.up.weight": "mlp.up_proj.weight",
             "mlp.down.weight": "mlp.down_proj.weight"}
    theirs = reference.state_dict()
    for name in ("input_layernorm.weight", "post_attention_layernorm.weight"):
        theirs[name] = 1 + 0.5 * torch.randn_like(theirs[name])  # so a missing gain would show
    reference.load_state_dict(theirs)
    ours.load_state_dict({ours_name: theirs[ref_name] for ours_name, ref_name in names.items()})
    assert count_parameters(ours) == count_parameters(reference)

    x = torch.randn(2, seq, dim)
    positions = torch.arange(seq)[None].expand(2, seq)
    cos_sin = LlamaRotaryEmbedding(config)(x, positions)
    no_mask = torch.zeros(2, 1, seq, seq)  # additive: every query sees every key (an encoder)
    with torch.no_grad():
        expected = reference(x, attention_mask=no_mask, position_ids=positions, position_embeddings=cos_sin)
        expected = expected[0] if isinstance(expected, tuple) else expected
        got, _ = ours(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)  # float32


def test_modern_encoder_shapes_no_biases_and_length_check():
    enc = ModernEncoder(vocab_size=50, dim=16, num_layers=2, num_heads=2, max_seq_len=8)
    out = enc(torch.randint(50, (3, 8)), torch.ones(3, 8, dtype=torch.long)).last_hidden_state
    assert out.shape == (3, 8, 16)
    assert not any(name.endswith("bias") for name, _ in enc.named_parameters())
    with pytest.raises(ValueError, match="<= 8"):
        enc(torch.randint(50, (1, 9)))
    with pytest.raises(ValueError, match="token type"):
        enc(torch.randint(50, (1, 4)), token_type_ids=torch.zeros(1, 4, dtype=torch.long))


def test_swiglu_width_keeps_parameters_close_to_a_4x_gelu_mlp():
    dim = 96
    hidden = swiglu_hidden_size(dim)
    assert hidden % 8 == 0 and abs(3 * dim * hidden - 2 * dim * 4 * dim) / (8 * dim * dim) < 0.05


def test_pre_norm_bert_encoder_moves_only_the_norms():
    from beyondbert.bert import BertConfig, BertEncoder
    from beyondbert.modern import PreNormBertEncoder

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=8)
    post, pre = BertEncoder(cfg), PreNormBertEncoder(cfg)
    missing, unexpected = pre.load_state_dict(post.state_dict(), strict=False)
    assert missing == ["norm.weight", "norm.bias"] and unexpected == []   # the same layers, plus one final norm
    ids = torch.randint(5, 50, (2, 8))
    layer = pre.layers[0]
    x = pre.embeddings(ids, torch.zeros_like(ids))
    mask = torch.ones(2, 1, 1, 8, dtype=torch.bool)
    attended, _ = layer.attention(layer.attention_norm(x), mask)
    h = x + attended
    expected = h + layer.ffn_out(torch.nn.functional.gelu(layer.ffn_in(layer.ffn_norm(h))))
    assert torch.allclose(layer(x, mask)[0], expected, atol=1e-6)
    assert pre(ids).last_hidden_state.shape == (2, 8, 16)
