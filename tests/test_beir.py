"""BEIR folders: load_beir on a tiny folder written here, evaluate_beir end to end, bad input."""

import json

import numpy as np
import pytest
import torch

from beyondbert.data import lee_retrieval, load_beir, write_beir
from beyondbert.retrieval import evaluate_beir

CORPUS = [
    {"_id": "d1", "title": "Cats", "text": "The cat sat on the mat all afternoon."},
    {"_id": "d2", "title": "", "text": "Stock markets fell sharply on Monday."},
    {"_id": "d3", "title": "Weather", "text": "Heavy rain flooded the streets of Sydney."},
    {"_id": "d4", "title": "Pets", "text": "Dogs and cats make loyal companions."},
]
QUERIES = [{"_id": "q1", "text": "where did the cat sit"}, {"_id": "q2", "text": "share prices drop"},
           {"_id": "q3", "text": "a query nobody judged"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td4\t1\nq2\td2\t1\nq2\td3\t0\n"


def _write(folder, corpus=CORPUS, queries=QUERIES, qrels=QRELS):
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def test_load_beir_reads_the_format_and_drops_unjudged_queries(tmp_path):
    corpus, queries, qrels = load_beir(_write(tmp_path))
    assert list(corpus) == ["d1", "d2", "d3", "d4"]
    assert corpus["d1"] == {"title": "Cats", "text": "The cat sat on the mat all afternoon."}
    assert queries == {"q1": "where did the cat sit", "q2": "share prices drop"}  # q3 dropped
    assert qrels == {"q1": {"d1": 2, "d4": 1}, "q2": {"d2": 1, "d3": 0}}


def test_write_beir_round_trips(tmp_path):
    collection = load_beir(_write(tmp_path / "a"))
    assert load_beir(write_beir(tmp_path / "b", *collection)) == collection


def test_load_beir_bad_input(tmp_path):
    with pytest.raises(ValueError, match="'d9' is not in corpus.jsonl"):
        load_beir(_write(tmp_path / "a", qrels=QRELS + "q1\td9\t1\n"))
    with pytest.raises(ValueError, match="corpus is empty"):
        load_beir(_write(tmp_path / "b", corpus=[]))
    with pytest.raises(ValueError, match="header"):
        load_beir(_write(tmp_path / "c", qrels="q1\td1\t1\n"))
    with pytest.raises(FileNotFoundError, match="not a BEIR folder"):
        load_beir(tmp_path / "nothing")


class RecordingModel:
    """Stands in for a SentenceEncoder: remembers what it encoded, vectors from a fixed table."""

    def __init__(self, vectors):
        self.vectors, self.seen = vectors, []

    def encode(self, texts, batch_size=32, show_progress=False):
        self.seen.append(list(texts))
        return torch.nn.functional.normalize(torch.stack([self.vectors[t] for t in texts]), dim=1)


def test_evaluate_beir_joins_title_and_text_and_scores_by_hand(tmp_path):
    texts = {"Cats The cat sat on the mat all afternoon.": [1.0, 0.0, 0.0],
             "Stock markets fell sharply on Monday.": [0.0, 1.0, 0.0],
             "Weather Heavy rain flooded the streets of Sydney.": [0.0, 0.6, 0.8],
             "Pets Dogs and cats make loyal companions.": [0.8, 0.0, 0.6],
             "where did the cat sit": [0.0, 0.0, 1.0], "share prices drop": [0.0, 1.0, 0.1]}
    model = RecordingModel({t: torch.tensor(v) for t, v in texts.items()})
    out = evaluate_beir(_write(tmp_path), model=model, k=2, show_progress=False)
    assert model.seen[0] == list(texts)[:4]  # BEIR's convention: title + " " + text
    # q1 ranks d3 (0.8), d4 (0.6): DCG@2 = 0 + 1/log2(3); ideal (2, 1) = 2 + 1/log2(3)
    ndcg_q1 = (1 / np.log2(3)) / (2 + 1 / np.log2(3))
    assert out["ndcg@2"] == pytest.approx((ndcg_q1 + 1.0) / 2)  # q2 finds d2 first
    assert out["recall@100"] == 1.0 and out["mrr@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert out["index_bytes"] == 4 * 3 * 4 and out["n_queries"] == 2


def test_evaluate_beir_with_the_packaged_model_and_quantization(tmp_path):
    folder = _write(tmp_path)
    full = evaluate_beir(folder, k=10, show_progress=False)
    assert set(full) >= {"ndcg@10", "recall@100", "index_bytes"}
    assert full["ndcg@10"] > 0.8 and full["index_bytes"] == 4 * 384 * 4
    binary = evaluate_beir(folder, k=10, quantization="binary", rescore_multiplier=4,
                           show_progress=False)
    assert binary["index_bytes"] == 4 * 384 // 8 and 0 <= binary["ndcg@10"] <= 1
    assert evaluate_beir(folder, k=10, quantization="int8", show_progress=False)["index_bytes"] \
        == 4 * 384
    with pytest.raises(ValueError, match="quantization must be"):
        evaluate_beir(folder, quantization="int4")
    with pytest.raises(ValueError, match="positive int"):
        evaluate_beir(folder, k=0)


def test_lee_retrieval_collection():
    corpus, queries, qrels = lee_retrieval(n_distractors=10)
    assert len(corpus) == 60 and len(queries) == 50
    assert all(q not in qrels[q] and len(qrels[q]) == 49 for q in queries)  # never itself
    assert set().union(*(set(j.values()) for j in qrels.values())) == {0, 1, 2}
    assert corpus["lee-03"]["text"].startswith(queries["lee-03"])  # the lead sentence
