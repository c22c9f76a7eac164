"""LoRA layers and injection: the formula, merge/unmerge, errors, and parity with peft."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from beyondbert.lora import (LoRALinear, SoftPrompt, count_parameters, inject_lora, lora_layers,
                             lora_state_dict, merge_lora, unmerge_lora)

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64)
ATOL = 1e-6  # float32 sums of a few dozen products


def tiny_bert(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(BertConfig(**TINY)).eval()


def randomise_b(model: nn.Module, seed: int = 1) -> None:
    """B starts at zero; give it values so that the adapter does something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_zero_b_starts_from_the_base_layer():
    torch.manual_seed(0)
    base = nn.Linear(16, 8)
    x = torch.randn(5, 16)
    expected = base(x)
    layer = LoRALinear(base, r=4, alpha=8)
    assert torch.equal(layer(x), expected)
    assert layer.lora_A.abs().sum() > 0 and torch.all(layer.lora_B == 0)
    assert not base.weight.requires_grad and layer.lora_A.requires_grad


def test_forward_is_the_low_rank_formula():
    torch.manual_seed(0)
    base = nn.Linear(16, 8)
    layer = LoRALinear(base, r=4, alpha=8)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 7, 16)
    w = base.weight + (8 / 4) * layer.lora_B @ layer.lora_A
    assert layer(x).shape == (3, 7, 8)
    assert torch.allclose(layer(x), x @ w.T + base.bias, atol=1e-5)


def test_merge_then_unmerge_restores_weight_and_outputs():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 8), r=2, alpha=4)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(4, 16)
    before, w0 = layer(x), layer.base.weight.clone()
    layer.merge()
    assert layer.merged and torch.allclose(layer(x), before, atol=1e-5)
    assert torch.allclose(layer.base(x), before, atol=1e-5)  # the plain layer now does it all
    layer.merge()  # merging twice must not add the update twice
    assert torch.allclose(layer(x), before, atol=1e-5)
    layer.unmerge()
    assert not layer.merged and torch.allclose(layer.base.weight, w0, atol=1e-6)
    assert torch.allclose(layer(x), before, atol=1e-5)


@pytest.mark.parametrize("r", [0, -1, 9])
def test_bad_rank_is_refused(r):
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(16, 8), r=r)


def test_bad_inputs_are_refused():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1), r=1)
    with pytest.raises(TypeError, match="int"):
        LoRALinear(nn.Linear(4, 4), r=2.0)
    with pytest.raises(ValueError, match="matches no nn.Linear"):
        inject_lora(tiny_bert(), ["no_such_layer"], r=2)
    with pytest.raises(ValueError, match="no LoRA layers"):
        merge_lora(tiny_bert())


def test_injection_by_suffix_and_regex_and_counts():
    model = tiny_bert()
    names = inject_lora(model, ["query", "value"], r=4, alpha=8)
    assert names == [f"encoder.layer.{i}.attention.self.{p}" for i in range(2)
                     for p in ("query", "value")]
    counts = count_parameters(model)
    assert counts["trainable"] == 4 * (4 * 32 + 32 * 4)  # 4 layers, A (4, 32) + B (32, 4)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert set(lora_state_dict(model)) == {f"{n}.lora_{m}" for n in names for m in "AB"}
    regex = tiny_bert()
    assert inject_lora(regex, r"encoder\.layer\.1\.attention\.self\.(query|key)", r=2) == [
        "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.key"]


def test_parity_with_peft_same_weights_same_outputs():
    """Our injection and peft's, given the same A and B, compute the same outputs (atol 1e-6)."""
    from peft import LoraConfig, get_peft_model

    ids = torch.randint(0, 100, (3, 9), generator=torch.Generator().manual_seed(0))
    ours = tiny_bert()
    inject_lora(ours, ["query", "value"], r=4, alpha=8)
    randomise_b(ours)
    theirs = get_peft_model(tiny_bert(), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                    target_modules=["query", "value"])).eval()
    with torch.no_grad():
        for layer_name, layer in ((n, m) for n, m in ours.named_modules()
                                  if isinstance(m, LoRALinear)):
            peft_layer = theirs.base_model.model.get_submodule(layer_name)
            peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
        ours_out = ours(input_ids=ids).last_hidden_state
        theirs_out = theirs(input_ids=ids).last_hidden_state
        plain_out = tiny_bert()(input_ids=ids).last_hidden_state
    assert (ours_out - plain_out).abs().max() > 1e-3  # the adapters really change the output
    assert torch.allclose(ours_out, theirs_out, atol=ATOL)
    trainable, _ = theirs.get_nb_trainable_parameters()
    assert count_parameters(ours)["trainable"] == trainable
    # merged (ours) == merged and unloaded (peft) == unmerged
    merge_lora(ours)
    merged_peft = theirs.merge_and_unload()
    with torch.no_grad():
        assert torch.allclose(ours(input_ids=ids).last_hidden_state, ours_out, atol=1e-5)
        assert torch.allclose(merged_peft(input_ids=ids).last_hidden_state, ours_out, atol=1e-5)
    unmerge_lora(ours)
    assert all(not layer.merged for layer in lora_layers(ours))


def test_peft_initialisation_matches_ours_in_distribution():
    """Same init rule as peft: A ~ kaiming_uniform(a=sqrt(5)) bounds, B = 0."""
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(64, 32), r=8)
    bound = 1 / 64 ** 0.5  # kaiming_uniform with a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.8 * bound
    assert layer.scaling == 1.0


def test_soft_prompt_shapes_and_count():
    prompt = SoftPrompt(5, 32)
    embeds, mask = torch.randn(2, 7, 32), torch.ones(2, 7, dtype=torch.long)
    out, out_mask = prompt(embeds, mask)
    assert out.shape == (2, 12, 32) and out_mask.shape == (2, 12)
    assert torch.equal(out[:, 5:], embeds) and torch.all(out_mask[:, :5] == 1)
    assert count_parameters(prompt)["trainable"] == 5 * 32
    with pytest.raises(ValueError):
        SoftPrompt(0, 32)
    with pytest.raises(ValueError):
        prompt(torch.randn(2, 7, 16), mask)
