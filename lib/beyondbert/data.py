"""The course's datasets and readers for standard benchmark files.

The human-judged sets ship inside gensim's installed test data (``gensim/test/test_data``), so the
course needs no download: SimLex-999 (Hill, Reichart & Korhonen 2015, word *similarity*),
WordSim-353 (Finkelstein et al. 2002, word *relatedness*), the 50 Lee et al. (2005) news documents
with their mean human similarity ratings, 300 background news articles from the same source, and
200 movie-review sentences with polarity labels (Pang & Lee 2005). ``load_sts`` reads an
STS-benchmark file a user has locally.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def gensim_data_path(name: str) -> Path:
    """Path of ``name`` in gensim's installed test data; a clear error if it is not there."""
    try:
        from gensim.test.utils import datapath
    except ImportError as err:  # pragma: no cover - gensim is a course requirement
        raise ImportError("the course's datasets come with gensim: `pip install gensim`") from err
    path = Path(datapath(name))
    if not path.is_file():
        raise FileNotFoundError(f"{name} is not in gensim's test data ({path.parent})")
    return path


def _read_word_pairs(path: Path) -> list[tuple[str, str, float]]:
    """Tab-separated ``word1, word2, score`` lines; ``#`` lines are comments."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                pairs.append((fields[0], fields[1], float(fields[2])))
            except (IndexError, ValueError) as err:
                raise ValueError(
                    f"{path}:{number}: expected 'word1<TAB>word2<TAB>score', got {line.strip()!r}"
                ) from err
    return pairs


def simlex999() -> list[tuple[str, str, float]]:
    """The 999 SimLex-999 pairs ``(word1, word2, score)``, score 0-10 = how *similar* (not related)."""
    return _read_word_pairs(gensim_data_path("simlex999.txt"))


def wordsim353() -> list[tuple[str, str, float]]:
    """The 353 WordSim-353 pairs ``(word1, word2, score)``, score 0-10 = how *related*."""
    return _read_word_pairs(gensim_data_path("wordsim353.tsv"))


def lee_documents() -> list[str]:
    """The 50 short news documents of Lee, Pincombe & Welsh (2005) (``lee.cor``, Latin-1)."""
    return gensim_data_path("lee.cor").read_text(encoding="latin-1").splitlines()


def lee_similarities() -> np.ndarray:
    """Mean human similarity of the 50 Lee documents ``(50, 50)``, symmetric, 1 on the diagonal.

    gensim stores only the upper triangle; this mirrors it.
    """
    upper = np.triu(np.loadtxt(gensim_data_path("similarities0-1.txt")))
    return upper + np.triu(upper, k=1).T


def lee_background() -> list[str]:
    """300 news articles from the Lee corpus's background set (``lee_background.cor``)."""
    text = gensim_data_path("lee_background.cor").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def pang_lee_polarity() -> tuple[list[str], np.ndarray]:
    """200 movie-review sentences and their labels ``(200,)`` int64: 1 positive, 0 negative."""
    sentences, labels = [], []
    text = gensim_data_path("pang_lee_polarity.cor").read_text(encoding="cp1252")
    for line in text.splitlines():
        if not line.strip():
            continue
        label, _, sentence = line.partition(" ")
        if label not in ("__label__pos", "__label__neg"):
            raise ValueError(f"pang_lee_polarity.cor: unexpected label {label!r}")
        sentences.append(sentence.strip())
        labels.append(int(label == "__label__pos"))
    return sentences, np.array(labels, dtype=np.int64)


def load_sts(path: str | Path) -> tuple[list[str], list[str], list[float]]:
    """Read an STS-benchmark file: ``(sentences1, sentences2, scores)`` (scores 0-5 as given).

    Each line is tab-separated: genre, file, year, id, score, sentence1, sentence2. Real files carry
    extra tab-separated fields after sentence2 (licence/source notes); they are ignored. Quotes are
    literal text (the files are not CSV-quoted).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"STS-benchmark file not found: {path}")
    sentences1, sentences2, scores = [], [], []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for number, fields in enumerate(reader, start=1):
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) < 7:
                raise ValueError(
                    f"{path}:{number}: expected at least 7 tab-separated fields (genre, file, "
                    f"year, id, score, sentence1, sentence2), got {len(fields)}"
                )
            try:
                score = float(fields[4])
            except ValueError as err:
                raise ValueError(
                    f"{path}:{number}: the score (5th field) must be a number, got {fields[4]!r}"
                ) from err
            sentences1.append(fields[5])
            sentences2.append(fields[6])
            scores.append(score)
    if not scores:
        raise ValueError(f"{path}: no sentence pairs found (empty file?)")
    return sentences1, sentences2, scores


def split_indices(
    n: int, test_fraction: float = 0.3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into sorted ``(train_idx, test_idx)`` int64 arrays."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    n_test = min(n - 1, max(1, round(n * float(test_fraction))))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]).astype(np.int64), np.sort(order[:n_test]).astype(np.int64)


def split_pairs_by_word(
    pairs: list[tuple[str, str, float]], test_fraction: float = 0.3, seed: int = 0
) -> tuple[list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    """Split word pairs so that no word of a test pair appears in any train pair.

    Words are drawn at random into a test vocabulary (``test_fraction`` of the words); a pair whose
    two words are both test words goes to test, a pair with both in train goes to train, and a
    pair that straddles the two is dropped (it would leak a word). Returns ``(train, test)``.
    """
    if not pairs:
        raise ValueError("pairs must not be empty")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    words = sorted({w for a, b, _ in pairs for w in (a, b)})
    rng = np.random.default_rng(seed)
    test_words = set(rng.choice(words, size=max(1, round(len(words) * test_fraction)),
                                replace=False).tolist())
    train = [p for p in pairs if p[0] not in test_words and p[1] not in test_words]
    test = [p for p in pairs if p[0] in test_words and p[1] in test_words]
    return train, test


# ----------------------------------------------------------------------------- search collections

def lead_sentence(text: str) -> str:
    """The first sentence of a news story (up to the first . ! or ? followed by a capital)."""
    import re

    return re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text.strip(), maxsplit=1)[0]


_lead_sentence = lead_sentence  # the old private name


def lead_and_body(text: str) -> tuple[str, str]:
    """A news story split into its lead sentence and the rest (the body)."""
    lead = lead_sentence(text)
    return lead, text.strip()[len(lead):].strip()


def lee_retrieval(n_distractors: int = 100, relevant: float = 0.6, highly_relevant: float = 0.8):
    """A small search collection with human relevance, from the Lee et al. (2005) documents.

    Query ``lee-i`` is the first sentence of Lee document ``i``; its judgements are the human
    similarity ratings of document ``i`` with the 49 other documents (mean rating of 1-5 divided
    by 5, :func:`lee_similarities`): grade 2 at >= ``highly_relevant`` (mean rating >= 4), 1 at
    >= ``relevant`` (>= 3), else 0. The corpus holds the 50 documents (document ``lee-i`` is the
    query's own source: search with ``ignore_identical_ids``, as BEIR does) and the first
    ``n_distractors`` background articles (``bg-j``, unjudged, so counted as not relevant).
    Returns ``(corpus, queries, qrels)`` in :func:`load_beir`'s format.
    """
    docs, sims = lee_documents(), lee_similarities()
    background = lee_background()
    if not 0 <= n_distractors <= len(background):
        raise ValueError(f"n_distractors must be in 0..{len(background)}, got {n_distractors}")
    ids = [f"lee-{i:02d}" for i in range(len(docs))]
    corpus = {i: {"title": "", "text": d} for i, d in zip(ids, docs, strict=True)}
    corpus |= {f"bg-{j:03d}": {"title": "", "text": background[j]} for j in range(n_distractors)}
    queries = {i: lead_sentence(d) for i, d in zip(ids, docs, strict=True)}
    qrels = {q: {d: int(sims[a, b] >= highly_relevant) + int(sims[a, b] >= relevant)
                 for b, d in enumerate(ids) if b != a} for a, q in enumerate(ids)}
    return corpus, queries, qrels


def write_beir(folder: str | Path, corpus: dict, queries: dict, qrels: dict,
               split: str = "test") -> Path:
    """Write a collection in BEIR's layout (the inverse of :func:`load_beir`); returns ``folder``."""
    import json

    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id, doc in corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": doc.get("title", ""),
                                     "text": doc["text"]}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as handle:
        for query_id, text in queries.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id, judged in qrels.items():
            for doc_id, grade in judged.items():
                handle.write(f"{query_id}\t{doc_id}\t{grade}\n")
    return folder


def load_beir(folder: str | Path, split: str = "test"):
    """Read a BEIR folder: ``(corpus, queries, qrels)``.

    ``corpus.jsonl`` lines ``{"_id", "title", "text"}`` -> ``corpus[_id] = {"title", "text"}``;
    ``queries.jsonl`` lines ``{"_id", "text"}`` -> ``queries[_id] = text``;
    ``qrels/<split>.tsv`` (header ``query-id corpus-id score``) -> ``qrels[qid][doc_id] = int``.
    Queries without judgements are dropped; a judgement naming a missing query or document is an
    error.
    """
    import json

    folder = Path(folder)
    paths = {name: folder / name for name in ("corpus.jsonl", "queries.jsonl")}
    paths["qrels"] = folder / "qrels" / f"{split}.tsv"
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(f"not a BEIR folder: {path} is missing")

    def read_jsonl(path: Path, fields: tuple[str, ...]) -> list[dict]:
        rows = []
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if any(f not in row for f in fields):
                    raise ValueError(f"{path}:{number}: expected the fields {fields}, got "
                                     f"{sorted(row)}")
                rows.append(row)
        return rows

    corpus = {str(r["_id"]): {"title": r.get("title") or "", "text": r["text"]}
              for r in read_jsonl(paths["corpus.jsonl"], ("_id", "text"))}
    if not corpus:
        raise ValueError(f"{paths['corpus.jsonl']}: the corpus is empty")
    all_queries = {str(r["_id"]): r["text"]
                   for r in read_jsonl(paths["queries.jsonl"], ("_id", "text"))}
    qrels: dict[str, dict[str, int]] = {}
    with open(paths["qrels"], encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
            raise ValueError(f"{paths['qrels']}: the first line must be the header "
                             f"'query-id<TAB>corpus-id<TAB>score', got {header}")
        for number, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) < 3:
                raise ValueError(f"{paths['qrels']}:{number}: expected 3 tab-separated fields, "
                                 f"got {fields}")
            query_id, doc_id = fields[0], fields[1]
            if doc_id not in corpus:
                raise ValueError(f"{paths['qrels']}:{number}: document {doc_id!r} is not in "
                                 f"corpus.jsonl")
            if query_id not in all_queries:
                raise ValueError(f"{paths['qrels']}:{number}: query {query_id!r} is not in "
                                 f"queries.jsonl")
            qrels.setdefault(query_id, {})[doc_id] = int(float(fields[2]))
    queries = {q: text for q, text in all_queries.items() if q in qrels}
    return corpus, queries, qrels


def pair_triplets(
    pairs: list[tuple[str, str, float]], positive_min: float, negative_max: float, seed: int = 0
) -> tuple[list[tuple[str, str, str]], int]:
    """``(anchor, positive, negative)`` triplets from scored pairs, and how many negatives are hard.

    Every pair scored ``>= positive_min`` gives an anchor and its positive. The negative is a word
    that a pair of the same set scores ``<= negative_max`` against the anchor (or else against the
    positive) — a *hard* negative, rated dissimilar although people paired them — or, where there is
    none, a random other word of the set. Only words of ``pairs`` are used (no leak from a test set).
    """
    if not pairs:
        raise ValueError("pairs must not be empty")
    if not negative_max < positive_min:
        raise ValueError(f"negative_max must be below positive_min, got {negative_max} and "
                         f"{positive_min}")
    dissimilar: dict[str, list[str]] = {}
    for a, b, score in pairs:
        if score <= negative_max:
            dissimilar.setdefault(a, []).append(b)
            dissimilar.setdefault(b, []).append(a)
    words = sorted({w for a, b, _ in pairs for w in (a, b)})
    rng = np.random.default_rng(seed)
    triplets, n_hard = [], 0
    for a, b, score in pairs:
        if score < positive_min:
            continue
        hard = [w for w in dissimilar.get(a, []) + dissimilar.get(b, []) if w not in (a, b)]
        if hard:
            negative, n_hard = hard[0], n_hard + 1
        else:
            others = [w for w in words if w not in (a, b)]
            if not others:
                raise ValueError("need at least three distinct words to draw a negative")
            negative = others[int(rng.integers(len(others)))]
        triplets.append((a, b, negative))
    if not triplets:
        raise ValueError(f"no pair is scored >= positive_min={positive_min}")
    return triplets, n_hard
