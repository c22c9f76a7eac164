"""A sentence encoder built the way sentence-transformers builds one: Transformer -> Pooling -> Normalize.

Reimers & Gurevych (2019) turn BERT into a sentence encoder by pooling its token vectors into one
vector per sentence and training the network in a siamese set-up (the same weights encode both
sentences of a pair). ``SentenceEncoder`` is that pipeline as one small ``nn.Module``: ``forward``
keeps the autograd graph for training, ``encode`` is the no-grad inference path. On the packaged
all-MiniLM-L6-v2 its vectors equal ``SentenceTransformer.encode`` (tests/test_sbert.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._checks import check_tensor
from .pooling import cls_pool, max_pool, mean_pool

POOLERS = {"mean": mean_pool, "cls": cls_pool, "max": max_pool}


def _check_texts(texts: object, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got one string (wrap it in a list)")
    if not isinstance(texts, Sequence) or isinstance(texts, bytes):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} must not be empty")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{name}[{bad[0]}] must be a string, got {type(texts[bad[0]]).__name__}")
    return texts


class SentenceEncoder(nn.Module):
    """Token encoder + pooling (+ L2 normalisation): texts -> ``(batch, dim)`` sentence vectors.

    ``model`` is a Hugging Face encoder (``AutoModel``), ``tokenizer`` its tokenizer;
    ``pooling`` one of ``"mean"`` (mask-aware average, SBERT's default), ``"cls"``, ``"max"``;
    ``max_seq_length`` the truncation length in tokens (None: the tokenizer's limit, capped at the
    model's position embeddings).
    """

    def __init__(self, model: nn.Module, tokenizer, pooling: str = "mean",
                 normalize: bool = True, max_seq_length: int | None = None):
        super().__init__()
        if pooling not in POOLERS:
            raise ValueError(f"pooling must be one of {sorted(POOLERS)}, got {pooling!r}")
        limit = getattr(model.config, "max_position_embeddings", None) or 512
        if max_seq_length is None:
            max_seq_length = min(int(getattr(tokenizer, "model_max_length", limit)), limit)
        if not isinstance(max_seq_length, int) or isinstance(max_seq_length, bool) \
                or not 1 <= max_seq_length <= limit:
            raise ValueError(f"max_seq_length must be an int in 1..{limit}, got {max_seq_length!r}")
        self.model, self.tokenizer = model, tokenizer
        self.pooling, self.normalize, self.max_seq_length = pooling, bool(normalize), max_seq_length

    @property
    def dim(self) -> int:
        """Size of the sentence vectors (the encoder's hidden size)."""
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask ``(batch, seq)``, padded to the longest, truncated at
        ``max_seq_length``."""
        texts = _check_texts(texts)
        return dict(self.tokenizer(texts, padding=True, truncation=True,
                                   max_length=self.max_seq_length, return_tensors="pt"))

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sentence vectors ``(batch, dim)`` from ``tokenize``'s output, with the autograd graph."""
        if not isinstance(features, dict) or "input_ids" not in features \
                or "attention_mask" not in features:
            raise TypeError("features must be the dict tokenize() returns "
                            "(input_ids, attention_mask, ...)")
        device = next(self.model.parameters()).device
        features = {k: v.to(device) for k, v in features.items()}
        hidden = self.model(**features).last_hidden_state  # (batch, seq, dim)
        vectors = POOLERS[self.pooling](hidden, features["attention_mask"])
        if self.normalize:
            vectors = nn.functional.normalize(vectors, p=2, dim=1)
        return vectors

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64,
               show_progress: bool = False) -> torch.Tensor:
        """Sentence vectors ``(n, dim)`` float32 on the CPU, in the order of ``texts``.

        Runs in eval mode without gradients (the module's mode is restored afterwards). Texts are
        batched by length (less padding), then put back in their original order.
        """
        texts = _check_texts(texts)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        starts = range(0, len(texts), batch_size)
        if show_progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="encode", unit="batch", ascii=True, ncols=80, mininterval=1.0)
        was_training = self.training
        self.eval()
        try:
            parts = [self(self.tokenize([texts[i] for i in order[s:s + batch_size]])).float().cpu()
                     for s in starts]
        finally:
            self.train(was_training)
        vectors = torch.empty(len(texts), parts[0].shape[1])
        vectors[torch.as_tensor(order)] = torch.cat(parts)
        return vectors


def _sentence_config(folder: Path) -> dict:
    """What a sentence-transformers folder says: max_seq_length, pooling, normalisation."""
    config: dict = {}
    sbert_config = folder / "sentence_bert_config.json"
    if sbert_config.is_file():
        config["max_seq_length"] = json.loads(sbert_config.read_text()).get("max_seq_length")
    modules_file = folder / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text())
        config["normalize"] = any(m.get("type", "").endswith("Normalize") for m in modules)
        for m in modules:
            pooling_config = folder / m.get("path", "") / "config.json"
            if m.get("type", "").endswith("Pooling") and pooling_config.is_file():
                p = json.loads(pooling_config.read_text())
                for mode, key in (("mean", "pooling_mode_mean_tokens"),
                                  ("cls", "pooling_mode_cls_token"),
                                  ("max", "pooling_mode_max_tokens")):
                    if p.get(key):
                        config["pooling"] = mode
                        break
    return {k: v for k, v in config.items() if v is not None}


def load_sentence_encoder(name: str | None = None, **kwargs) -> SentenceEncoder:
    """A fresh ``SentenceEncoder`` (safe to fine-tune; each call loads its own weights).

    ``name=None``: the packaged all-MiniLM-L6-v2 with the settings of its sentence-transformers
    files (mean pooling, normalised, ``max_seq_length`` 256). Keyword arguments override them.
    """
    from .models import default_encoder_path, load_encoder

    tokenizer, model = load_encoder(name, attn_implementation="sdpa")
    folder = default_encoder_path() if name is None else Path(str(name))
    settings = _sentence_config(folder) if folder.is_dir() else {}
    settings.update(kwargs)
    return SentenceEncoder(model, tokenizer, **settings).eval()


_DEFAULT: SentenceEncoder | None = None


def default_sentence_encoder() -> SentenceEncoder:
    """The packaged MiniLM, loaded once per process (do not fine-tune it: use load_sentence_encoder)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_sentence_encoder()
    return _DEFAULT


def cosine_scores(model: SentenceEncoder, texts1: Sequence[str], texts2: Sequence[str],
                  batch_size: int = 64, show_progress: bool = False) -> torch.Tensor:
    """Cosine similarity of each pair ``(texts1[i], texts2[i])``: ``(n,)``.

    Each distinct text is encoded once (word-pair sets repeat words).
    """
    texts1, texts2 = _check_texts(texts1, "texts1"), _check_texts(texts2, "texts2")
    if len(texts1) != len(texts2):
        raise ValueError(f"texts1 and texts2 must have the same length, got {len(texts1)} "
                         f"and {len(texts2)}")
    unique = sorted(set(texts1) | set(texts2))
    index = {t: i for i, t in enumerate(unique)}
    vectors = nn.functional.normalize(
        model.encode(unique, batch_size=batch_size, show_progress=show_progress), dim=1)
    a = vectors[[index[t] for t in texts1]]
    b = vectors[[index[t] for t in texts2]]
    return (a * b).sum(dim=1)


def evaluate_sts(path_or_triples, model: SentenceEncoder | None = None, batch_size: int = 64,
                 show_progress: bool | None = None) -> float:
    """Spearman rank correlation x 100 between cosine similarity and the human scores.

    ``path_or_triples``: an STS-benchmark file (read with ``data.load_sts``) or a list of
    ``(text1, text2, score)`` triples (SimLex-999, WordSim-353 pairs). ``model`` defaults to the
    packaged all-MiniLM-L6-v2. ``show_progress=None`` shows a bar when there are > 1000 pairs.
    """
    from scipy.stats import spearmanr

    from .data import load_sts

    if isinstance(path_or_triples, (str, Path)):
        texts1, texts2, scores = load_sts(path_or_triples)
    else:
        triples = list(path_or_triples)
        if not triples:
            raise ValueError("path_or_triples must be a file path or a non-empty list of "
                             "(text1, text2, score) triples")
        if any(not isinstance(t, (tuple, list)) or len(t) != 3 for t in triples):
            raise ValueError("each item must be a (text1, text2, score) triple")
        texts1, texts2, scores = (list(c) for c in zip(*triples))
    if len(scores) < 2:
        raise ValueError(f"need at least 2 pairs for a rank correlation, got {len(scores)}")
    if show_progress is None:
        show_progress = len(scores) > 1000
    model = default_sentence_encoder() if model is None else model
    predicted = cosine_scores(model, texts1, texts2, batch_size, show_progress).numpy()
    return float(100.0 * spearmanr(predicted, np.asarray(scores, dtype=float)).statistic)


def semantic_search(queries: torch.Tensor, corpus: torch.Tensor,
                    k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` search by inner product (= cosine for unit vectors), brute force.

    ``queries (q, dim)``, ``corpus (n, dim)``; returns ``(scores, indices)``, both ``(q, k)``,
    best first (ties: lower index first). ``k`` is capped at ``n``.
    """
    for name, x in (("queries", queries), ("corpus", corpus)):
        check_tensor(x, name)
        if x.dim() != 2 or x.shape[0] == 0:
            raise ValueError(f"{name} must have shape (rows, dim) with rows >= 1, "
                             f"got {tuple(x.shape)}")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"queries and corpus must have the same dim, got {queries.shape[1]} "
                         f"and {corpus.shape[1]}")
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    scores = queries.float() @ corpus.float().T  # (q, n)
    k = min(k, corpus.shape[0])
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return scores.gather(1, order), order
