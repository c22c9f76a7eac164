"""Retrieval: IR metrics against scikit-learn and sentence-transformers' evaluator, FAISS search,
MaxSim against a loop, the cross-encoder against sentence-transformers' CrossEncoder, bad inputs."""

import math
import warnings

import numpy as np
import pytest
import torch

from beyondbert.retrieval import (dcg, dense_search, evaluate_rankings, maxsim, mrr_at_k,
                                  ndcg_at_k, rankings_from_indices, recall_at_k, rerank)

JUDGED = {"a": 2, "b": 0, "c": 1, "d": 1}


def test_metrics_by_hand():
    ranking = ["b", "a", "x", "c"]  # x is unjudged (gain 0)
    # DCG@3 = 0/log2(2) + 2/log2(3); ideal top 3 = (2, 1, 1)
    expected = (2 / math.log2(3)) / (2 + 1 / math.log2(3) + 1 / 2)
    assert ndcg_at_k(ranking, JUDGED, 3) == pytest.approx(expected)
    assert recall_at_k(ranking, JUDGED, 3) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, JUDGED, 4) == pytest.approx(2 / 3)
    assert mrr_at_k(ranking, JUDGED, 10) == 0.5 and mrr_at_k(ranking, JUDGED, 1) == 0.0
    assert ndcg_at_k(["a", "c", "d"], JUDGED, 3) == pytest.approx(1.0)
    assert dcg([]) == 0.0


def test_ndcg_matches_scikit_learn_graded():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        grades = rng.integers(0, 3, size=30)
        grades[0] = 2  # at least one relevant document
        scores = rng.permutation(30).astype(float)  # no ties
        ranking = [str(i) for i in np.argsort(-scores)]
        judged = {str(i): int(g) for i, g in enumerate(grades)}
        for k in (1, 5, 10):
            ref = ndcg_score(grades[None], scores[None], k=k)
            assert ndcg_at_k(ranking, judged, k) == pytest.approx(ref, abs=1e-12)


def test_metrics_match_sentence_transformers_evaluator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers.evaluation import InformationRetrievalEvaluator

    rng = np.random.default_rng(1)
    corpus = {f"d{i}": f"doc {i}" for i in range(40)}
    queries = {f"q{i}": f"query {i}" for i in range(8)}
    relevant = {q: {f"d{j}" for j in rng.choice(40, size=rng.integers(1, 6), replace=False)}
                for q in queries}
    evaluator = InformationRetrievalEvaluator(queries, corpus, relevant, mrr_at_k=[10],
                                              ndcg_at_k=[10], precision_recall_at_k=[5, 20],
                                              write_csv=False)
    results, rankings = [], {}
    for q in queries:
        scores = rng.permutation(40)
        results.append([{"corpus_id": f"d{i}", "score": float(s)} for i, s in enumerate(scores)])
        rankings[q] = [f"d{i}" for i in np.argsort(-scores)]
    ref = evaluator.compute_metrics(results)
    ours = evaluate_rankings(rankings, {q: dict.fromkeys(r, 1) for q, r in relevant.items()},
                             ndcg_k=(10,), recall_k=(5, 20), mrr_k=(10,))
    assert ours["ndcg@10"] == pytest.approx(ref["ndcg@k"][10], abs=1e-12)  # binary gains
    assert ours["mrr@10"] == pytest.approx(ref["mrr@k"][10], abs=1e-12)
    for k in (5, 20):
        assert ours[f"recall@{k}"] == pytest.approx(ref["recall@k"][k], abs=1e-12)


def test_evaluate_rankings_skips_queries_without_relevant_documents():
    qrels = {"q1": {"a": 1}, "q2": {"b": 0}}
    out = evaluate_rankings({"q1": ["a"]}, qrels, ndcg_k=(1,), recall_k=(1,), mrr_k=(1,))
    assert out == {"ndcg@1": 1.0, "recall@1": 1.0, "mrr@1": 1.0}
    with pytest.raises(ValueError, match="no ranking"):
        evaluate_rankings({}, qrels)


def test_dense_search_matches_exhaustive_torch():
    torch.manual_seed(0)
    docs = torch.nn.functional.normalize(torch.randn(100, 16), dim=-1)
    queries = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    scores, idx = dense_search(queries, docs, 5)
    ref = (queries @ docs.T).topk(5)
    assert np.array_equal(idx, ref.indices.numpy())
    assert np.allclose(scores, ref.values.numpy(), atol=1e-6)
    assert dense_search(queries, docs[:3], 5)[1].shape == (4, 3)  # k larger than the corpus


def test_rankings_from_indices_drops_the_query_itself():
    out = rankings_from_indices([[0, 1, 2]], ["d1"], ["d0", "d1", "d2"], ignore_identical_ids=True)
    assert out == {"d1": ["d0", "d2"]}


def _maxsim_loop(qv, qm, dv, dm):
    out = torch.zeros(len(qv), len(dv))
    for a in range(len(qv)):
        q = qv[a][qm[a].bool()]
        for b in range(len(dv)):
            d = dv[b][dm[b].bool()]
            out[a, b] = (q @ d.T).max(dim=1).values.sum()
    return out


def test_maxsim_matches_a_loop_and_ignores_padding():
    torch.manual_seed(0)
    qv, dv = torch.randn(3, 5, 8), torch.randn(7, 9, 8)
    qm = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    dm = (torch.arange(9)[None, :] < torch.tensor([9, 1, 4, 6, 2, 8, 3])[:, None]).long()
    scores = maxsim(qv, qm, dv, dm, doc_batch=3)
    assert scores.shape == (3, 7)
    assert torch.allclose(scores, _maxsim_loop(qv, qm, dv, dm), atol=1e-5)
    garbage = dv.masked_fill(~dm.bool()[..., None], 1e3)  # padding vectors must not count
    assert torch.allclose(maxsim(qv, qm, garbage, dm), scores, atol=1e-5)


def test_maxsim_bad_inputs():
    with pytest.raises(ValueError, match=r"\(n, L, dim\)"):
        maxsim(torch.randn(2, 3), torch.ones(2, 3), torch.randn(1, 2, 3), torch.ones(1, 2))
    with pytest.raises(ValueError, match="differ in size"):
        maxsim(torch.randn(1, 2, 3), torch.ones(1, 2), torch.randn(1, 2, 4), torch.ones(1, 2))


def test_metric_bad_inputs():
    with pytest.raises(ValueError, match="positive int"):
        ndcg_at_k(["a"], JUDGED, 0)
    with pytest.raises(ValueError, match="no relevant document"):
        recall_at_k(["a"], {"a": 0}, 5)
    with pytest.raises(ValueError, match="non-empty"):
        dense_search(torch.randn(1, 4), torch.zeros(0, 4), 3)
    with pytest.raises(ValueError, match="positive int"):
        dense_search(torch.randn(1, 4), torch.randn(5, 4), -1)


def test_cross_encoder_matches_sentence_transformers(tmp_path):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from beyondbert.retrieval import CrossEncoder

    torch.manual_seed(0)
    ours = CrossEncoder(max_length=64)
    ours.model.save_pretrained(tmp_path)
    ours.tokenizer.save_pretrained(tmp_path)
    ref = STCrossEncoder(str(tmp_path), max_length=64, device="cpu")
    pairs = [("a cat sat on the mat", "the cat is on a mat"), ("stocks fell", "rain in Sydney")]
    expected = ref.predict(pairs, activation_fn=torch.nn.Identity(), convert_to_tensor=True)
    assert torch.allclose(ours.score(pairs), expected.float().cpu(), atol=1e-5)
    # re-ranking orders each query's candidates by that score
    docs = ["the cat is on a mat", "rain in Sydney"]
    order = rerank(ours, ["a cat sat on the mat"], docs, np.array([[1, 0]]))
    s = ours.score([("a cat sat on the mat", d) for d in docs])
    assert order.tolist() == [[int(s.argmax()), int(s.argmin())]]


def test_rerank_floor_ceiling_bootstrap_and_fusion():
    from beyondbert.retrieval import (mine_hard_negatives, oracle_rerank, paired_bootstrap, per_query,
                                      random_rerank, zscore_fuse)

    doc_ids = ["a", "b", "c", "d"]
    qrels = {"q": {"a": 0, "b": 2, "c": 1, "d": 0}}
    candidates = np.array([[0, 1, 2, 3]])
    assert oracle_rerank(candidates, ["q"], doc_ids, qrels).tolist() == [[1, 2, 0, 3]]
    shuffled = random_rerank(np.tile(np.arange(10), (3, 1)), seed=0)
    assert sorted(shuffled[0].tolist()) == list(range(10)) and not (shuffled == np.arange(10)).all()
    ranked = {"q": ["b", "c", "a", "d"]}
    assert per_query(ranked, qrels, ["q"], "ndcg", 10)[0] == pytest.approx(1.0)
    mean, low, high = paired_bootstrap([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], n_boot=200)
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
    mean, low, high = paired_bootstrap([0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0], n_boot=500)
    assert low < 0 < high
    fused = zscore_fuse(np.array([[1.0, 2.0, 3.0]]), np.array([[30.0, 20.0, 10.0]]))
    assert np.allclose(fused, 0)
    q = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    d = torch.cat([q + 0.01 * torch.randn(5, 8), torch.randn(20, 8)])
    neg = mine_hard_negatives(q, d, list(range(5)), ranks=(2, 6), n=2, seed=0)
    assert neg.shape == (5, 2) and all(i not in row for i, row in enumerate(neg))


def test_cross_encoder_freezes_lower_layers():
    from beyondbert.retrieval import CrossEncoder

    ce = CrossEncoder(max_length=16)
    total = sum(p.numel() for p in ce.model.parameters())
    trainable = ce.freeze_lower(3)
    assert 0 < trainable < total
    assert not any(p.requires_grad for p in ce.model.base_model.embeddings.parameters())
    assert all(p.requires_grad for p in ce.model.classifier.parameters())
