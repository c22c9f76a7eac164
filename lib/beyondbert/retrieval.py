"""Search with embeddings: bi-encoder retrieval (FAISS), cross-encoder re-ranking, ColBERT's
MaxSim, and the IR metrics that judge a ranking (NDCG@k, recall@k, MRR@k).

Identifiers are strings (BEIR's convention): a *ranking* is a list of document ids, best first;
*judgements* (qrels) map a query id to ``{doc_id: grade}`` with grade 0 = not relevant.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .embedding_quantization import PRECISIONS, index_bytes, int8_ranges, search


def _check_k(k: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    return k


# ----------------------------------------------------------------------------- IR metrics

def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: sum of ``gain_i / log2(i + 1)`` over ranks i = 1, 2, ..."""
    return float(sum(g / math.log2(rank + 2) for rank, g in enumerate(gains)))


def ndcg_at_k(ranking: Sequence[str], judgements: Mapping[str, float], k: int) -> float:
    """NDCG@k with linear gains (trec_eval's and BEIR's): DCG of the top k / DCG of the ideal top k.

    Unjudged documents have gain 0. A query with no relevant document has no ideal DCG: error.
    """
    _check_k(k)
    ideal = dcg(sorted((g for g in judgements.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        raise ValueError("the query has no relevant document (all grades are 0): NDCG is undefined")
    return dcg([judgements.get(doc, 0) for doc in ranking[:k]]) / ideal


def recall_at_k(ranking: Sequence[str], judgements: Mapping[str, float], k: int) -> float:
    """Share of the relevant documents (grade > 0) found in the top k."""
    _check_k(k)
    relevant = {doc for doc, g in judgements.items() if g > 0}
    if not relevant:
        raise ValueError("the query has no relevant document (all grades are 0): recall is undefined")
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], judgements: Mapping[str, float], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top k (0 if there is none)."""
    _check_k(k)
    for rank, doc in enumerate(ranking[:k], start=1):
        if judgements.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def evaluate_rankings(rankings: Mapping[str, Sequence[str]],
                      qrels: Mapping[str, Mapping[str, float]],
                      ndcg_k: Sequence[int] = (10,), recall_k: Sequence[int] = (10, 100),
                      mrr_k: Sequence[int] = (10,)) -> dict[str, float]:
    """Mean NDCG@k, recall@k and MRR@k over the judged queries (those with a relevant document).

    ``rankings[qid]`` is the ranked list of document ids returned for query ``qid``.
    """
    queries = [q for q, judged in qrels.items() if any(g > 0 for g in judged.values())]
    if not queries:
        raise ValueError("qrels hold no query with a relevant document")
    missing = [q for q in queries if q not in rankings]
    if missing:
        raise ValueError(f"{len(missing)} judged queries have no ranking, e.g. {missing[:3]}")
    metrics = {f"ndcg@{k}": ndcg_at_k for k in ndcg_k} | {f"recall@{k}": recall_at_k for k in recall_k}
    metrics |= {f"mrr@{k}": mrr_at_k for k in mrr_k}
    return {name: float(np.mean([fn(rankings[q], qrels[q], int(name.split("@")[1]))
                                 for q in queries]))
            for name, fn in metrics.items()}


# ----------------------------------------------------------------------------- bi-encoder search

def dense_search(query_embeddings: torch.Tensor, doc_embeddings: torch.Tensor, k: int):
    """Exhaustive inner-product search with FAISS (``IndexFlatIP``; cosine for unit vectors).

    (n_q, dim), (n_d, dim) -> (scores (n_q, k) float32, indices (n_q, k) int64), best first.
    """
    import faiss

    q = np.ascontiguousarray(torch.as_tensor(query_embeddings, dtype=torch.float32).numpy())
    d = np.ascontiguousarray(torch.as_tensor(doc_embeddings, dtype=torch.float32).numpy())
    if d.ndim != 2 or len(d) == 0:
        raise ValueError(f"doc_embeddings must be a non-empty (n_docs, dim) matrix, got {d.shape}")
    if q.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"query_embeddings must have shape (n_q, {d.shape[1]}), got {q.shape}")
    index = faiss.IndexFlatIP(d.shape[1])
    index.add(d)
    scores, indices = index.search(q, min(_check_k(k), len(d)))
    return scores, indices


def rankings_from_indices(indices, query_ids: Sequence[str], doc_ids: Sequence[str],
                          ignore_identical_ids: bool = False) -> dict[str, list[str]]:
    """``{query_id: [doc_id, ...]}`` from a (n_q, k) matrix of document indices.

    ``ignore_identical_ids`` drops a document whose id equals the query's (BEIR's option for
    query-by-document collections, where a document must not retrieve itself).
    """
    out = {}
    for qid, row in zip(query_ids, np.asarray(indices).tolist(), strict=True):
        ranked = [doc_ids[i] for i in row if i >= 0]
        out[qid] = [d for d in ranked if d != qid] if ignore_identical_ids else ranked
    return out


# ----------------------------------------------------------------------------- cross-encoder

class CrossEncoder:
    """A cross-encoder: ``[CLS] query [SEP] document [SEP]`` through one BERT, one relevance logit.

    Built like sentence-transformers' ``CrossEncoder``: a BERT with a 1-output classification
    head (``AutoModelForSequenceClassification``), trained with binary cross-entropy on
    (text, text, 0/1) pairs. ``name=None`` starts from the packaged all-MiniLM-L6-v2 (the head is
    new and random: call :meth:`fit` before trusting the scores).
    """

    def __init__(self, name: str | None = None, max_length: int = 256):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from .models import default_encoder_path

        source = str(default_encoder_path()) if name is None else name
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialized head" is expected here
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
        finally:
            hf_logging.set_verbosity(level)
        self.max_length = max_length

    def _features(self, pairs: Sequence[tuple[str, str]]) -> dict:
        if not pairs or any(len(p) != 2 for p in pairs):
            raise ValueError("pairs must be a non-empty list of (query, document) text pairs")
        first, second = zip(*pairs, strict=True)
        return self.tokenizer(list(first), list(second), padding=True, truncation=True,
                              max_length=self.max_length, return_tensors="pt")

    @torch.no_grad()
    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> torch.Tensor:
        """Relevance logits, (n_pairs,) float32; higher = more relevant."""
        self.model.eval()
        out = [self.model(**self._features(pairs[i:i + batch_size])).logits[:, 0]
               for i in range(0, len(pairs), batch_size)]
        return torch.cat(out)

    def freeze_lower(self, layers: int) -> int:
        """Freeze the embeddings and the lowest ``layers`` transformer layers (as the SBERT page
        does); returns the number of parameters left trainable."""
        base = self.model.base_model
        if not 0 <= layers <= len(base.encoder.layer):
            raise ValueError(f"layers must be in 0..{len(base.encoder.layer)}, got {layers}")
        for p in self.model.parameters():
            p.requires_grad_(True)
        base.embeddings.requires_grad_(False)
        for layer in base.encoder.layer[:layers]:
            layer.requires_grad_(False)
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def fit(self, pairs: Sequence[tuple[str, str]], labels: Sequence[float], epochs: int = 1,
            batch_size: int = 16, lr: float = 2e-5, progress: bool = True, *,
            head_lr: float | None = None, seed: int | None = None,
            desc: str = "cross-encoder training") -> list[float]:
        """Train with binary cross-entropy on the logits; returns the loss of every step.

        Only parameters with ``requires_grad`` train (see :meth:`freeze_lower`). ``head_lr``: a
        separate learning rate for the new classification head (and the pooler), which starts
        random while the encoder below it is pretrained. ``seed`` fixes the batch order.
        """
        from tqdm import tqdm  # text, not a notebook widget (the book is offline)

        if len(pairs) != len(labels):
            raise ValueError(f"{len(pairs)} pairs but {len(labels)} labels")
        labels = torch.as_tensor(labels, dtype=torch.float32)
        head_names = ("classifier", "pooler")
        head = [p for n, p in self.model.named_parameters()
                if p.requires_grad and any(h in n for h in head_names)]
        body = [p for n, p in self.model.named_parameters()
                if p.requires_grad and not any(h in n for h in head_names)]
        groups = [{"params": body, "lr": lr}, {"params": head, "lr": head_lr or lr}]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        losses = []
        self.model.train()
        steps = [(e, i) for e in range(epochs) for i in range(0, len(pairs), batch_size)]
        order = torch.randperm(len(pairs), generator=generator)
        bar = tqdm(steps, desc=desc, disable=not progress, file=sys.stdout, ascii=True, ncols=80,
                   mininterval=5)
        for epoch, start in bar:
            if start == 0 and epoch > 0:
                order = torch.randperm(len(pairs), generator=generator)
            batch = order[start:start + batch_size].tolist()
            logits = self.model(**self._features([pairs[i] for i in batch])).logits[:, 0]
            loss = loss_fn(logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        self.model.eval()
        return losses


def rerank(cross_encoder: CrossEncoder, queries: Sequence[str], documents: Sequence[str],
           candidates, batch_size: int = 32) -> np.ndarray:
    """Re-order each query's candidate documents by cross-encoder score.

    ``candidates`` (n_q, c) document indices from a first stage -> (n_q, c) re-ordered indices.
    """
    candidates = np.asarray(candidates)
    if candidates.ndim != 2 or len(candidates) != len(queries):
        raise ValueError(f"candidates must have shape (n_queries={len(queries)}, c), got "
                         f"{candidates.shape}")
    pairs = [(q, documents[i]) for q, row in zip(queries, candidates, strict=True) for i in row]
    scores = cross_encoder.score(pairs, batch_size=batch_size).numpy().reshape(candidates.shape)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def per_query(rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]],
              query_ids: Sequence[str], metric: str = "ndcg", k: int = 10) -> np.ndarray:
    """One metric per query, (n_q,) float64, in the order of ``query_ids`` (for paired tests).

    ``metric``: ``"ndcg"``, ``"recall"`` or ``"mrr"``.
    """
    fns = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}
    if metric not in fns:
        raise ValueError(f"metric must be one of {sorted(fns)}, got {metric!r}")
    return np.array([fns[metric](rankings[q], qrels[q], k) for q in query_ids], dtype=float)


def paired_bootstrap(before, after, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``after - before`` and its bootstrap interval, resampling the *queries*.

    ``before``, ``after``: (n_q,) per-query scores of two systems on the same queries (paired: a
    resample draws the same queries for both). Returns ``(mean, low, high)``.
    """
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if before.shape != after.shape or before.ndim != 1 or len(before) == 0:
        raise ValueError(f"before and after must be (n,) arrays of the same length, got "
                         f"{before.shape} and {after.shape}")
    diff = after - before
    idx = np.random.default_rng(seed).integers(0, len(diff), (n_boot, len(diff)))
    means = diff[idx].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(low), float(high)


def random_rerank(candidates, seed: int = 0) -> np.ndarray:
    """Each row of ``candidates`` (n_q, c) shuffled: the floor any re-ranker must beat."""
    candidates = np.asarray(candidates)
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(row) for row in candidates])


def oracle_rerank(candidates, query_ids: Sequence[str], doc_ids: Sequence[str],
                  qrels: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """Each row of ``candidates`` (n_q, c) sorted by the true grade: the ceiling of re-ranking
    (ties keep the first stage's order)."""
    candidates = np.asarray(candidates)
    out = []
    for q, row in zip(query_ids, candidates, strict=True):
        grades = np.array([qrels[q].get(doc_ids[i], 0) for i in row], dtype=float)
        out.append(row[np.argsort(-grades, kind="stable")])
    return np.stack(out)


def zscore_fuse(first: np.ndarray, second: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """``z(first) + weight * z(second)``, each standardised per row (per query's candidates):
    a fused score of two stages whose scales differ (cosine vs logit). (n_q, c) -> (n_q, c)."""
    def z(x):
        x = np.asarray(x, dtype=float)
        return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + 1e-9)

    return z(first) + weight * z(second)


def mine_hard_negatives(query_embeddings, doc_embeddings, positives: Sequence[int],
                        ranks: tuple[int, int] = (5, 20), n: int = 1, seed: int = 0) -> np.ndarray:
    """Bi-encoder-mined hard negatives: for query i, ``n`` documents drawn from the ranks
    ``ranks[0]..ranks[1]`` (1-based, inclusive) of its cosine ranking, its own positive excluded.

    Skipping the top ranks avoids documents that are really relevant (false negatives).
    (n_q, dim), (n_d, dim), positives (n_q,) -> (n_q, n) document indices.
    """
    q = torch.as_tensor(query_embeddings, dtype=torch.float32)
    d = torch.as_tensor(doc_embeddings, dtype=torch.float32)
    first, last = ranks
    if not 1 <= first <= last or n > last - first + 1:
        raise ValueError(f"ranks must be 1 <= first <= last with room for n={n}, got {ranks}")
    scores = q @ d.T
    scores[torch.arange(len(q)), torch.as_tensor(list(positives))] = -float("inf")
    order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, first - 1:last].numpy()
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(row, size=n, replace=False) for row in order])


# ----------------------------------------------------------------------------- ColBERT

@torch.no_grad()
def token_embeddings(tokenizer, model, texts: Sequence[str], max_length: int = 256,
                     batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-length contextual token vectors, one per token, ColBERT-style (no pooling).

    Returns (vectors (n, L, dim), mask (n, L) bool) padded to the longest text (L tokens,
    at most ``max_length``); padding rows are zero and ``False`` in the mask.
    """
    if not texts:
        raise ValueError("texts is empty")
    chunks = []
    for i in range(0, len(texts), batch_size):
        features = tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                             max_length=max_length, return_tensors="pt")
        hidden = model(**features).last_hidden_state
        mask = features["attention_mask"].bool()
        chunks.append((torch.nn.functional.normalize(hidden, dim=-1) * mask[..., None], mask))
    length = max(v.shape[1] for v, _ in chunks)
    vectors = torch.cat([torch.nn.functional.pad(v, (0, 0, 0, length - v.shape[1]))
                         for v, _ in chunks])
    mask = torch.cat([torch.nn.functional.pad(m, (0, length - m.shape[1])) for _, m in chunks])
    return vectors, mask


def maxsim(query_vectors: torch.Tensor, query_mask: torch.Tensor, doc_vectors: torch.Tensor,
           doc_mask: torch.Tensor, doc_batch: int = 64) -> torch.Tensor:
    """ColBERT's late-interaction score (Khattab & Zaharia, 2020).

    For each query token, the largest dot product with any (non-padding) document token; summed
    over the (non-padding) query tokens. query_vectors (n_q, Lq, dim), query_mask (n_q, Lq),
    doc_vectors (n_d, Ld, dim), doc_mask (n_d, Ld) -> scores (n_q, n_d).
    """
    for name, v, m in (("query", query_vectors, query_mask), ("doc", doc_vectors, doc_mask)):
        if v.dim() != 3 or m.shape != v.shape[:2]:
            raise ValueError(f"{name}_vectors must be (n, L, dim) with a (n, L) mask, got "
                             f"{tuple(v.shape)} and {tuple(m.shape)}")
    if query_vectors.shape[-1] != doc_vectors.shape[-1]:
        raise ValueError(f"query and document vectors differ in size: "
                         f"{query_vectors.shape[-1]} vs {doc_vectors.shape[-1]}")
    if len(doc_vectors) == 0:
        raise ValueError("no documents to score")
    q_mask, d_mask = query_mask.bool(), doc_mask.bool()
    out = []
    for start in range(0, len(doc_vectors), doc_batch):
        d, dm = doc_vectors[start:start + doc_batch], d_mask[start:start + doc_batch]
        sim = torch.einsum("qid,njd->qnij", query_vectors, d)      # (n_q, n_d, Lq, Ld)
        sim = sim.masked_fill(~dm[None, :, None, :], float("-inf"))
        best = sim.max(dim=-1).values                               # (n_q, n_d, Lq)
        best = best.masked_fill(~q_mask[:, None, :], 0.0)
        best = torch.nan_to_num(best, neginf=0.0)                   # an all-padding document
        out.append(best.sum(dim=-1))
    return torch.cat(out, dim=1)


# ----------------------------------------------------------------------------- BEIR evaluation

def evaluate_beir(folder, model=None, k: int = 10, quantization: str | None = None,
                  rescore_multiplier: int | None = None, batch_size: int = 32,
                  show_progress: bool = True, ignore_identical_ids: bool = True) -> dict[str, float]:
    """Evaluate a bi-encoder on a BEIR folder: NDCG@k, recall@100, MRR@k and the index's size.

    Documents are encoded as ``title + " " + text`` (BEIR's convention), truncated at the model's
    ``max_seq_length``; ``model`` is a :class:`beyondbert.sbert.SentenceEncoder` (default: the
    packaged all-MiniLM-L6-v2). ``quantization``: ``None`` (float32), ``"int8"`` (calibrated on
    the corpus) or ``"binary"``. Each query's ranking holds ``max(k, 100)`` documents; with
    ``rescore_multiplier`` m, ``m`` times as many candidates of the quantized search are re-scored
    with the float32 query. ``ignore_identical_ids`` (BEIR's default) drops a document whose id
    equals the query's. The result also holds the index's bytes and the search time per query.
    """
    from .data import load_beir
    from .sbert import load_sentence_encoder

    _check_k(k)
    if quantization not in (None, *PRECISIONS):
        raise ValueError(f"quantization must be None, 'int8' or 'binary', got {quantization!r}")
    precision = quantization or "float32"
    corpus, queries, qrels = load_beir(folder)
    model = load_sentence_encoder() if model is None else model
    doc_ids, query_ids = list(corpus), list(queries)
    texts = [f"{d.get('title', '')} {d['text']}".strip() for d in corpus.values()]
    doc_emb = model.encode(texts, batch_size=batch_size, show_progress=show_progress).numpy()
    query_emb = model.encode([queries[q] for q in query_ids], batch_size=batch_size).numpy()
    depth = max(k, 100)
    start = time.perf_counter()
    _, indices = search(query_emb, doc_emb, depth + ignore_identical_ids, precision,
                        rescore_multiplier,
                        ranges=int8_ranges(doc_emb) if precision == "int8" else None)
    seconds = time.perf_counter() - start
    rankings = rankings_from_indices(indices, query_ids, doc_ids, ignore_identical_ids)
    rankings = {q: ranked[:depth] for q, ranked in rankings.items()}
    result = evaluate_rankings(rankings, qrels, ndcg_k=(k,), recall_k=sorted({k, 100}),
                               mrr_k=(k,))
    return result | {"index_bytes": index_bytes(len(doc_ids), doc_emb.shape[1], precision),
                     "search_ms_per_query": 1000 * seconds / len(query_ids),
                     "n_queries": len(query_ids), "n_documents": len(doc_ids)}
