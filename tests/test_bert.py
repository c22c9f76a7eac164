"""The from-scratch BERT: parity with transformers.BertModel (tiny random and real MiniLM)."""

import pytest
import torch
from transformers import BertConfig as HFBertConfig
from transformers import BertModel

from beyondbert.bert import BertEncoder
from beyondbert.models import default_encoder_path, load_encoder

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=16)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """A random tiny HF BERT saved to disk, and our encoder loaded from that folder."""
    torch.manual_seed(0)
    hf = BertModel(HFBertConfig(**TINY, attn_implementation="eager")).eval()
    folder = tmp_path_factory.mktemp("tiny-bert")
    hf.save_pretrained(folder)
    return hf, BertEncoder.from_pretrained(folder)


def _padded_batch(vocab_size=100):
    torch.manual_seed(1)
    ids = torch.randint(1, vocab_size, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 1 + [0] * 6])
    return ids.masked_fill(mask == 0, 0), mask


def test_tiny_parity_all_layers_and_attentions(tiny_pair):
    hf, ours = tiny_pair
    ids, mask = _padded_batch()
    with torch.no_grad():
        ref = hf(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        out = ours(ids, mask, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (3, 7, 32)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    for a, b in zip(ref.hidden_states, out.hidden_states):
        assert (a - b).abs().max() <= 1e-5
    for a, b in zip(ref.attentions, out.attentions):
        assert (a - b).abs().max() <= 1e-5


def test_optional_outputs_are_none_unless_requested(tiny_pair):
    _, ours = tiny_pair
    out = ours(*_padded_batch())
    assert out.hidden_states is None and out.attentions is None


def test_minilm_parity_on_padded_batch():
    tokenizer, hf = load_encoder()
    ours = BertEncoder.from_pretrained(default_encoder_path())
    batch = tokenizer(["A bank by the river.", "She opened a savings account at the bank on Monday."],
                      padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any(), "the batch must contain padding"
    with torch.no_grad():
        ref = hf(**batch).last_hidden_state
        out = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state
    assert out.shape == (2, batch["input_ids"].shape[1], 384)
    assert (ref - out).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "ids, mask, message",
    [
        (torch.ones(2, 3), None, "integer token ids"),
        (torch.ones(2, 3, dtype=torch.long), torch.ones(2, 4), r"must have shape \(2, 3\)"),
        (torch.ones(0, 3, dtype=torch.long), None, "at least one sequence"),
        (torch.ones(3, dtype=torch.long), None, r"\(batch, seq\)"),
        (torch.ones(1, 17, dtype=torch.long), None, "sequence length must be <= 16"),
    ],
)
def test_bad_input_raises_value_error(tiny_pair, ids, mask, message):
    _, ours = tiny_pair
    with pytest.raises(ValueError, match=message):
        ours(ids, mask)


def test_from_pretrained_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json and model.safetensors"):
        BertEncoder.from_pretrained(tmp_path)
