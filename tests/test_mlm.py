"""MLM pre-training: masking statistics (80/10/10, never a special token; vs transformers' collator),
static vs dynamic masks, NSP pairs, FULL-SENTENCES packing, heads vs transformers' parameter counts."""

import random

import pytest
import torch

from beyondbert.bert import BertConfig, BertEncoder
from beyondbert.mlm import (IGNORE_INDEX, IS_NEXT, NOT_NEXT, MaskedBatches, MaskedLM, encode_segments,
                            full_sentences, init_weights, mask_tokens, nsp_pairs, pretrain, split_sentences)
from beyondbert.modern import ModernEncoder, count_parameters
from beyondbert.seeding import seed_everything

PAD, CLS, SEP, MASK, VOCAB = 0, 2, 3, 4, 1000


def _batch(n=400, seq=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, seq), generator=g)
    ids[:, 0], ids[:, -1] = CLS, SEP
    ids[: n // 2, seq // 2:] = PAD  # half the rows are half padding
    return ids


def _fractions(ids, inputs, labels):
    selected = labels != IGNORE_INDEX
    real = ~torch.isin(ids, torch.tensor([PAD, CLS, SEP]))
    return {"selected": (selected.sum() / real.sum()).item(),
            "mask": (inputs[selected] == MASK).float().mean().item(),
            "same": (inputs[selected] == ids[selected]).float().mean().item(),
            "random": ((inputs[selected] != MASK) & (inputs[selected] != ids[selected])).float().mean().item()}


def test_masking_statistics_80_10_10_and_never_special():
    ids = _batch()  # ~77k maskable tokens: the standard error of 0.15 is ~0.0013
    inputs, labels = mask_tokens(ids, [PAD, CLS, SEP], MASK, VOCAB, 0.15, torch.Generator().manual_seed(1))
    assert inputs.shape == labels.shape == ids.shape and inputs.dtype == labels.dtype == torch.int64
    special = torch.isin(ids, torch.tensor([PAD, CLS, SEP]))
    assert torch.all(labels[special] == IGNORE_INDEX) and torch.equal(inputs[special], ids[special])
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])  # unselected tokens never change
    f = _fractions(ids, inputs, labels)
    assert abs(f["selected"] - 0.15) < 0.006
    assert abs(f["mask"] - 0.8) < 0.015 and abs(f["same"] - 0.1) < 0.012 and abs(f["random"] - 0.1) < 0.012


def test_masking_statistics_match_transformers_collator():
    from tokenizers import Tokenizer, models
    from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

    vocab = {"[PAD]": PAD, "[UNK]": 1, "[CLS]": CLS, "[SEP]": SEP, "[MASK]": MASK}
    vocab.update({f"w{i}": i for i in range(5, VOCAB)})
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="[UNK]")),
                                     pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                     mask_token="[MASK]", unk_token="[UNK]")
    ids = _batch(seed=2)
    torch.manual_seed(3)
    collator = DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15, return_tensors="pt")
    theirs = collator.torch_mask_tokens(ids.clone())
    ours = mask_tokens(ids, [PAD, CLS, SEP], MASK, VOCAB, 0.15, torch.Generator().manual_seed(3))
    f_theirs, f_ours = _fractions(ids, *theirs), _fractions(ids, *ours)
    for key in f_ours:  # two independent draws of ~77k tokens: within 4 standard errors
        assert abs(f_ours[key] - f_theirs[key]) < 0.02, (key, f_ours, f_theirs)


@pytest.mark.parametrize("p", [0, 1, 1.5, -0.1, True])
def test_mask_probability_must_be_inside_0_1(p):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        mask_tokens(_batch(2, 8), [PAD], MASK, VOCAB, p)


def test_mask_tokens_rejects_float_ids_and_bad_mask_id():
    with pytest.raises(ValueError, match="integer token ids"):
        mask_tokens(torch.ones(2, 3), [PAD], MASK, VOCAB)
    with pytest.raises(ValueError, match="mask_token_id"):
        mask_tokens(_batch(2, 8), [PAD], VOCAB, VOCAB)


def test_dynamic_masks_change_static_masks_repeat():
    data = {"input_ids": _batch(8, 32), "attention_mask": torch.ones(8, 32, dtype=torch.long)}
    kw = dict(batch_size=8, special_ids=[PAD, CLS, SEP], mask_token_id=MASK, vocab_size=VOCAB)

    static = MaskedBatches(data, masking="static", **kw)
    first = static.data["labels"].clone()
    static()
    assert torch.equal(static.data["labels"], first)  # masks drawn once, when the data is built
    dynamic = MaskedBatches(data, masking="dynamic", seed=0, **kw)
    a, b = dynamic(), dynamic()
    key = lambda batch: sorted(map(tuple, batch["labels"].tolist()))  # noqa: E731
    assert key(a) != key(b)  # the same 8 sequences, masked differently in the next epoch
    with pytest.raises(ValueError, match="static' or 'dynamic"):
        MaskedBatches(data, masking="sometimes", **kw)


def test_static_dupe_factor_makes_copies():
    data = {"input_ids": _batch(6, 16)}
    batches = MaskedBatches(data, 4, [PAD, CLS, SEP], MASK, VOCAB, masking="static", dupe_factor=3)
    assert len(batches) == 18


def _docs(n_docs=6, n_sent=8):
    rng = random.Random(0)
    return [[[10000 + 1000 * d + 10 * s + t for t in range(rng.randint(3, 7))] for s in range(n_sent)] for d in range(n_docs)]


def test_nsp_pairs_labels_and_continuity():
    docs = _docs()
    pairs = nsp_pairs(docs, 24, random.Random(0))
    labels = [label for _, _, label in pairs]
    assert set(labels) == {IS_NEXT, NOT_NEXT}
    for a, b, label in pairs:
        assert 0 < len(a) and 0 < len(b) and len(a) + len(b) <= 24 - 3
        same_doc = a[0] // 1000 == b[0] // 1000
        if label == IS_NEXT:  # B is the text after A (A may have been cut at its end to fit)
            assert same_doc and b[0] % 1000 // 10 > a[-1] % 1000 // 10 and b[0] % 10 == 0
        else:
            assert not same_doc
    with pytest.raises(ValueError, match="at least 2 documents"):
        nsp_pairs(docs[:1], 24, random.Random(0))


def test_full_sentences_pack_whole_sentences_in_order():
    docs = _docs()
    blocks = full_sentences(docs, 20, doc_sep_id=SEP)
    assert all(0 < len(b) <= 18 for b in blocks)
    flat = [t for b in blocks for t in b if t != SEP]
    assert flat == [t for d in docs for s in d for t in s]
    assert any(SEP in b for b in blocks)  # blocks cross document boundaries with a separator
    encoded = encode_segments([(b,) for b in blocks], 20, CLS, SEP, PAD)
    assert encoded["input_ids"].shape == (len(blocks), 20) and torch.all(encoded["input_ids"][:, 0] == CLS)


def test_split_sentences():
    text = "Mr Smith arrived at 4.30pm. He left! Did he? \"Yes,\" she said."
    assert split_sentences(text) == ["Mr Smith arrived at 4.30pm.", "He left!", "Did he?", "\"Yes,\" she said."]


@pytest.mark.parametrize("nsp", [True, False])
def test_parameter_counts_match_transformers(nsp):
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM, BertForPreTraining

    cfg = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=40, type_vocab_size=2)
    ours = MaskedLM(BertEncoder(cfg), 32, nsp=nsp)
    hf_cfg = HFBertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=40, type_vocab_size=2)
    theirs = BertForPreTraining(hf_cfg) if nsp else BertForMaskedLM(hf_cfg)
    assert count_parameters(ours) == count_parameters(theirs)


def test_pretraining_lowers_the_loss_for_both_encoders():
    seed_everything(0, threads=1)  # tiny matrices: one thread is faster, on a busy machine much faster
    ids = _batch(16, 12) % 40 + 5  # a small vocabulary the model can learn quickly
    ids[:, 0], ids[:, -1] = CLS, SEP
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    for encoder in (BertEncoder(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=64, max_position_embeddings=12, type_vocab_size=1)),
                    ModernEncoder(50, 32, 1, 2, 12)):
        model = init_weights(MaskedLM(encoder, 32))
        batches = MaskedBatches(data, 16, [PAD, CLS, SEP], MASK, 50, mlm_probability=0.3, seed=0)
        history = pretrain(model, batches, 60, lr=3e-3)
        assert sum(history["mlm_loss"][-10:]) / 10 < sum(history["mlm_loss"][:10]) / 10 - 0.5
        assert history["steps_per_second"][0] > 0


def test_count_baselines_bigram_uses_the_left_neighbour_as_the_model_sees_it():
    from beyondbert.mlm import count_baselines

    docs = [[[10, 11, 12, 10, 11, 13]], [[10, 11]]]      # 10 is followed by 11 three times
    inputs = torch.tensor([[CLS, 10, MASK, 12, 10, 11, SEP]])
    labels = torch.full_like(inputs, IGNORE_INDEX)
    labels[0, 2], labels[0, 5], labels[0, 3] = 11, 11, 12   # after 10 -> 11 (right); after 10 -> 11; after [MASK]
    out = count_baselines(docs, inputs, labels, vocab_size=20)
    assert out["targets"] == 3
    assert out["bigram_accuracy"] == pytest.approx(2 / 3)  # [MASK] on the left: falls back to the unigram guess (10)
    assert out["unigram_accuracy"] == 0.0                   # the most frequent token is 10
    assert out["unigram_loss"] > 0


def test_lee_pretraining_one_factor_and_memorisation():
    from beyondbert.mlm import lee_pretraining
    from beyondbert.tokenization import news_corpus, train_wordpiece

    tok = train_wordpiece(news_corpus(), 400).to_str()
    with pytest.raises(ValueError, match="segment-pair"):
        lee_pretraining("roberta", tok, nsp=True)
    run = lee_pretraining("roberta", tok, masking="static", dupe_factor=2, steps=2, eval_every=0, memorisation=64,
                          dim=32, heads=2, n_train=40)
    assert run["settings"] == {"inputs": "full-sentences", "masking": "static", "nsp": False, "dupe_factor": 2,
                               "encoder": "original"}
    assert set(run["memorisation"]) == {"training_masks", "fresh_masks"}
    pairs = lee_pretraining("bert", tok, masking="dynamic", nsp=False, steps=2, eval_every=0, dim=32, heads=2, n_train=40)
    assert pairs["settings"]["inputs"] == "segment-pair" and "nsp_loss" not in pairs["history"]
