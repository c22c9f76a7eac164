"""beyondbert.gpt: the tiny decoder (causality, training step) and the sampling rules."""

import math

import pytest
import torch

from beyondbert.gpt import (CharTokenizer, GPTConfig, TinyGPT, filter_logits, generate, lm_loss,
                            perplexity, train_lm)
from beyondbert.seeding import seed_everything


@pytest.fixture
def model():
    seed_everything(0)
    return TinyGPT(GPTConfig(vocab_size=20, context=12, dim=32, n_layers=2, n_heads=4)).eval()


def test_logits_shape_and_causality(model):
    ids = torch.randint(0, 20, (3, 10))
    logits = model(ids)
    assert logits.shape == (3, 10, 20)
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 20  # edit the future
    with torch.no_grad():
        assert torch.allclose(model(changed)[:, :6], logits[:, :6], atol=1e-6)
        assert not torch.allclose(model(changed)[:, 6:], logits[:, 6:])


def test_lm_loss_matches_shifted_cross_entropy(model):
    ids = torch.randint(0, 20, (2, 8))
    logits = model(ids)
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 20), ids[:, 1:].reshape(-1))
    assert torch.allclose(lm_loss(logits, ids), expected, atol=1e-6)
    assert lm_loss(logits, ids, reduction="none").shape == (2, 7)


def test_untrained_loss_is_near_log_vocab_and_training_lowers_it(model):
    data = torch.arange(200) % 5  # a periodic sequence: easy to learn
    assert abs(perplexity(model, data) - 20) < 3  # uniform guess over 20 tokens
    losses = train_lm(model, data, 60, batch=8, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]
    assert perplexity(model, data) < 2


def test_tokenizer_round_trip_and_unknown_character():
    tok = CharTokenizer("hello world")
    assert tok.decode(tok.encode("hold")) == "hold"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("xyz")


def test_temperature_to_zero_equals_greedy(model):
    ids = torch.randint(0, 20, (4, 3))
    greedy = generate(model, ids, 8, greedy=True)
    cold = generate(model, ids, 8, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(greedy, cold)


def test_top_k_never_samples_outside_the_k_best():
    torch.manual_seed(0)
    logits = torch.randn(50)
    best = set(logits.topk(5).indices.tolist())
    probs = filter_logits(logits, top_k=5).softmax(-1)
    draws = torch.multinomial(probs, 5000, replacement=True, generator=torch.Generator().manual_seed(1))
    assert set(draws.tolist()) <= best
    assert len(set(draws.tolist())) == 5  # and every one of them does get sampled


def test_temperature_one_samples_the_softmax_statistically():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    probs = filter_logits(logits).softmax(-1)
    draws = torch.multinomial(probs, 20000, replacement=True, generator=torch.Generator().manual_seed(2))
    freq = torch.bincount(draws, minlength=4) / 20000
    assert torch.allclose(freq, logits.softmax(-1), atol=0.015)  # ~4 standard errors


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.tensor([0.15, 0.5, 0.05, 0.3]).log()
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [False, True, False, True]
    assert torch.isfinite(filter_logits(logits, top_p=0.9)).tolist() == [True, True, False, True]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).tolist() == [False, True, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=1.0)).all()


def test_top_p_matches_transformers_warper():
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    torch.manual_seed(3)
    scores = 3 * torch.randn(6, 30)
    for p in (0.3, 0.8, 0.95):
        ours = torch.isfinite(filter_logits(scores, top_p=p))
        theirs = torch.isfinite(TopPLogitsWarper(p)(None, scores.clone()))
        assert torch.equal(ours, theirs)  # exact: same kept set
    assert torch.equal(torch.isfinite(filter_logits(scores, top_k=7)),
                       torch.isfinite(TopKLogitsWarper(7)(None, scores.clone())))


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"temperature": -1.0}, "temperature must be > 0"),
    ({"top_k": 11}, "top_k must be an int in 1..10"),
    ({"top_k": 0}, "top_k must be an int in 1..10"),
    ({"top_p": 0.0}, "top_p must be in"),
    ({"top_p": 1.5}, "top_p must be in"),
])
def test_bad_sampling_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        filter_logits(torch.randn(2, 10), **kwargs)


def test_bad_model_input_is_a_clear_error(model):
    with pytest.raises(ValueError, match="sequence length must be 1..12"):
        model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=5, dim=30, n_heads=4)


def test_sinusoidal_positions_stay_fixed():
    seed_everything(0)
    m = TinyGPT(GPTConfig(vocab_size=8, context=6, dim=8, n_layers=1, n_heads=2, positions="sinusoidal"))
    assert not m.positions.weight.requires_grad
    assert math.isclose(m.positions.weight[1, 0].item(), math.sin(1.0), rel_tol=1e-6)


def test_generate_returns_the_log_probs_of_generation_time(model):
    ids = torch.randint(0, 20, (3, 4), generator=torch.Generator().manual_seed(5))
    out, logprobs = generate(model, ids, 14, generator=torch.Generator().manual_seed(0),
                             temperature=0.7, return_logprobs=True)
    assert out.shape == (3, 18) and logprobs.shape == (3, 14)
    # beyond the context (12) the model read only the last 12 tokens: rescoring from position 0
    # would differ, the generation-time contexts give these numbers
    for t in range(4, 18):
        with torch.no_grad():
            expected = model(out[:, max(0, t - 12):t])[:, -1].log_softmax(-1)
        assert torch.allclose(logprobs[:, t - 4], expected.gather(-1, out[:, t:t + 1]).squeeze(-1), atol=1e-5)
    same = generate(model, ids, 14, generator=torch.Generator().manual_seed(0), temperature=0.7)
    assert torch.equal(same, out)  # asking for log-probs does not change the text


def test_distinct_ngrams():
    from beyondbert.gpt import distinct_ngrams

    assert distinct_ngrams("abcdef", 4) == 1.0
    assert distinct_ngrams("aaaaaa", 4) == 1 / 3
    with pytest.raises(ValueError, match="at least n"):
        distinct_ngrams("abc", 4)


def test_train_lm_trains_the_last_position(model):
    data = torch.arange(300) % 7
    train_lm(model, data, 80, batch=8, lr=3e-3)
    x = data[:13][None]  # 12 inputs: the last position predicts the 13th token
    with torch.no_grad():
        assert model(x[:, :12])[0, -1].argmax().item() == x[0, 12].item()
