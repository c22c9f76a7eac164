"""Sentence encoder: parity with sentence-transformers, truncation, order, evaluate_sts."""

import pytest
import torch

from beyondbert import data
from beyondbert.models import default_encoder_path
from beyondbert.sbert import (SentenceEncoder, evaluate_sts, load_sentence_encoder,
                              semantic_search)

TEXTS = ["A man is playing a guitar.", "Someone plays an instrument.", "x",
         "The quick brown fox jumps over the lazy dog. " * 60,  # > 256 tokens: truncated
         "   padded with spaces   ", "Ein deutscher Satz."]


@pytest.fixture(scope="module")
def encoder():
    return load_sentence_encoder()


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(default_encoder_path()), device="cpu")


def test_reads_the_packaged_sentence_transformers_settings(encoder):
    assert (encoder.max_seq_length, encoder.pooling, encoder.normalize, encoder.dim) == \
        (256, "mean", True, 384)


def test_parity_with_sentence_transformers_encode(encoder, reference):
    ours = encoder.encode(TEXTS, batch_size=4)
    theirs = torch.as_tensor(reference.encode(TEXTS, batch_size=4))
    assert ours.shape == theirs.shape == (len(TEXTS), 384) and ours.dtype == torch.float32
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_truncation_at_max_seq_length(encoder):
    features = encoder.tokenize(TEXTS)
    assert features["input_ids"].shape == (len(TEXTS), 256)
    short = load_sentence_encoder(max_seq_length=8)
    assert short.tokenize(TEXTS)["input_ids"].shape[1] == 8
    # text beyond the limit does not change the vector
    long_a, long_b = TEXTS[3], TEXTS[3] + " completely different ending"
    a, b = short.encode([long_a, long_b])
    assert torch.allclose(a, b)


def test_order_preserved_and_batch_size_irrelevant(encoder):
    one = encoder.encode(TEXTS, batch_size=1)
    many = encoder.encode(TEXTS[::-1], batch_size=64).flip(0)
    assert torch.allclose(one, many, atol=1e-5)


def test_forward_keeps_gradients_and_encode_does_not(encoder):
    out = encoder(encoder.tokenize(TEXTS[:2]))
    assert out.requires_grad and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    assert not encoder.encode(TEXTS[:2]).requires_grad


def test_fresh_copy_per_load(encoder):
    other = load_sentence_encoder()
    with torch.no_grad():
        other.model.embeddings.word_embeddings.weight.add_(1.0)
    assert not torch.equal(other.model.embeddings.word_embeddings.weight,
                           encoder.model.embeddings.word_embeddings.weight)


def test_cls_pooling_without_normalisation(encoder):
    cls = SentenceEncoder(encoder.model, encoder.tokenizer, pooling="cls", normalize=False)
    features = encoder.tokenize(TEXTS[:2])
    expected = encoder.model(**features).last_hidden_state[:, 0]
    assert torch.allclose(cls.encode(TEXTS[:2]), expected, atol=1e-5)


def test_bad_inputs(encoder):
    with pytest.raises(ValueError, match="must not be empty"):
        encoder.encode([])
    with pytest.raises(TypeError, match="one string"):
        encoder.encode("just a string")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string"):
        encoder.encode(["ok", 3])
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["ok"], batch_size=0)
    with pytest.raises(ValueError, match="pooling must be one of"):
        SentenceEncoder(encoder.model, encoder.tokenizer, pooling="sum")
    with pytest.raises(ValueError, match="max_seq_length"):
        SentenceEncoder(encoder.model, encoder.tokenizer, max_seq_length=0)


def test_evaluate_sts_on_triples_and_file(encoder, tmp_path):
    from scipy.stats import spearmanr

    pairs = data.simlex999()[:40]
    a = encoder.encode([p[0] for p in pairs])
    b = encoder.encode([p[1] for p in pairs])
    expected = 100 * spearmanr((a * b).sum(1).numpy(), [p[2] for p in pairs]).statistic
    assert evaluate_sts(pairs, encoder) == pytest.approx(expected, abs=1e-3)
    lines = [f"g\tf\t2012\t{i:04d}\t{s / 2!r}\t{x}\t{y}\textra" for i, (x, y, s) in enumerate(pairs)]
    path = tmp_path / "sts.csv"
    path.write_text("\n".join(lines) + "\n")
    assert evaluate_sts(path, encoder) == pytest.approx(expected, abs=1e-3)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        evaluate_sts(pairs[:1], encoder)
    with pytest.raises(ValueError, match="non-empty list"):
        evaluate_sts([], encoder)


def test_evaluate_sts_matches_sentence_transformers_evaluator(encoder, reference):
    from sentence_transformers.sentence_transformer.evaluation import (
        EmbeddingSimilarityEvaluator,
    )

    pairs = data.wordsim353()[:60]
    evaluator = EmbeddingSimilarityEvaluator([p[0] for p in pairs], [p[1] for p in pairs],
                                             [p[2] / 10 for p in pairs], main_similarity="cosine")
    theirs = evaluator(reference)
    key = next(k for k in theirs if k.endswith("spearman_cosine"))
    assert evaluate_sts(pairs, encoder) == pytest.approx(100 * theirs[key], abs=1e-2)


def test_semantic_search_matches_sentence_transformers_util():
    from sentence_transformers.util import semantic_search as st_search

    corpus = torch.nn.functional.normalize(torch.randn(50, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    queries = corpus[[3, 7]] + 0.01
    scores, indices = semantic_search(queries, corpus, k=5)
    assert scores.shape == indices.shape == (2, 5) and indices.dtype == torch.int64
    assert indices[:, 0].tolist() == [3, 7] and torch.all(scores[:, :-1] >= scores[:, 1:])
    ref = st_search(queries, corpus, top_k=5, score_function=lambda a, b: a @ b.T)
    assert [[hit["corpus_id"] for hit in row] for row in ref] == indices.tolist()
    assert semantic_search(queries, corpus[:3], k=10)[1].shape == (2, 3)  # k capped at n
    with pytest.raises(ValueError, match="k must be a positive int"):
        semantic_search(queries, corpus, k=0)
    with pytest.raises(ValueError, match="same dim"):
        semantic_search(queries, corpus[:, :8], k=1)
