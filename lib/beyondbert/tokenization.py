"""Subword tokenizers: BERT's WordPiece vs RoBERTa's byte-level BPE, and BPE merges by hand.

* :func:`train_wordpiece` — BERT-uncased style (lower-case, accents stripped, ``##`` pieces,
  ``[UNK]`` for what the vocabulary cannot spell), trained with Hugging Face ``tokenizers``.
* :func:`train_byte_level_bpe` — RoBERTa/GPT-2 style: text as UTF-8 bytes, so every string can be
  spelled and there is no unknown token (Radford et al., 2019; Liu et al., 2019).
* :func:`pair_counts`, :func:`most_frequent_pair`, :func:`merge_pair`, :func:`learn_bpe` — the
  BPE training loop of Sennrich et al. (2016) on a toy vocabulary, one merge at a time.

A toy vocabulary maps a word, written as its symbols joined by single spaces (``"l o w </w>"``),
to its count; a pair is written the same way (``"l o"``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
END_OF_WORD = "</w>"


def news_corpus(name: str = "lee_background.cor") -> list[str]:
    """gensim's news articles, one per line (``lee_background.cor``: 300 Australian news articles)."""
    from gensim.test.utils import datapath

    with open(datapath(name), encoding="latin-1") as handle:
        return [line.strip() for line in handle if line.strip()]


def _check_training_input(texts: Sequence[str], vocab_size: int) -> None:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts) or not texts:
        raise TypeError("texts must be a non-empty list of strings")
    if not isinstance(vocab_size, int) or vocab_size < 300:
        raise ValueError(f"vocab_size must be an int >= 300 (the byte alphabet alone is 256), got {vocab_size!r}")


def train_wordpiece(texts: Sequence[str], vocab_size: int = 4000, min_frequency: int = 2) -> Tokenizer:
    """A BERT-uncased WordPiece tokenizer trained on ``texts``; encodes as ``[CLS] A [SEP] (B [SEP])``."""
    _check_training_input(texts, vocab_size)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True,
                                                handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=BERT_SPECIALS, show_progress=False,
                                        continuing_subword_prefix="##")
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def train_byte_level_bpe(texts: Sequence[str], vocab_size: int = 4000, min_frequency: int = 2) -> Tokenizer:
    """A RoBERTa-style byte-level BPE tokenizer trained on ``texts``; encodes as ``<s> A </s>``.

    No normalisation (case and accents are kept), the 256 bytes are always in the vocabulary, and
    a space is part of the following token (shown as ``Ġ``).
    """
    _check_training_input(texts, vocab_size)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=ROBERTA_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=False)
    return tok


def word_vocab(words: Iterable[str]) -> dict[str, int]:
    """Toy BPE vocabulary from words: ``"lower"`` -> ``"l o w e r </w>"``, with counts."""
    counts = Counter(words)
    return {" ".join([*word, END_OF_WORD]): n for word, n in counts.items() if word}


def _check_vocab(vocab: dict[str, int]) -> None:
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()):
        raise TypeError('vocab must map space-separated symbols ("l o w </w>") to int counts')


def pair_counts(vocab: dict[str, int]) -> dict[str, int]:
    """How often each adjacent symbol pair occurs, weighted by word counts: ``{"a b": count}``."""
    _check_vocab(vocab)
    counts: Counter[str] = Counter()
    for word, n in vocab.items():
        symbols = word.split(" ")
        for a, b in zip(symbols, symbols[1:]):
            counts[f"{a} {b}"] += n
    return dict(counts)


def most_frequent_pair(counts: dict[str, int]) -> str:
    """The pair with the highest count; ties go to the smallest pair string (``min``)."""
    if not counts:
        raise ValueError("no pairs to merge: every word is a single symbol")
    best = max(counts.values())
    return min(pair for pair, n in counts.items() if n == best)


def merge_pair(vocab: dict[str, int], pair: str) -> dict[str, int]:
    """Replace every adjacent occurrence of the two symbols of ``pair`` by their concatenation.

    Symbols are matched whole (merging ``"e s"`` leaves ``"ne s"`` alone), left to right without
    overlap (``"a a a"`` with ``"a a"`` gives ``"aa a"``).
    """
    _check_vocab(vocab)
    parts = pair.split(" ")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f'pair must be two symbols separated by one space, like "e s", got {pair!r}')
    a, b = parts
    merged: dict[str, int] = {}
    for word, n in vocab.items():
        symbols, out, i = word.split(" "), [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        key = " ".join(out)
        merged[key] = merged.get(key, 0) + n
    return merged


def learn_bpe(vocab: dict[str, int], num_merges: int) -> tuple[list[str], dict[str, int]]:
    """Run ``num_merges`` BPE merges (fewer if every word becomes one symbol).

    Returns ``(merges, vocab)``: the merged pairs in order and the final segmented vocabulary.
    """
    merges = []
    for _ in range(num_merges):
        counts = pair_counts(vocab)
        if not counts:
            break
        pair = most_frequent_pair(counts)
        merges.append(pair)
        vocab = merge_pair(vocab, pair)
    return merges, vocab


def apply_merges(word: str, merges: Sequence[str]) -> list[str]:
    """Segment a new ``word`` with learned ``merges``, applied in the order they were learned."""
    symbols = " ".join([*word, END_OF_WORD])
    for pair in merges:
        symbols = next(iter(merge_pair({symbols: 1}, pair)))
    return symbols.split(" ")


def wordpiece_scores(vocab: dict[str, int]) -> dict[str, float]:
    """WordPiece's merge score of every adjacent pair: ``count(ab) / (count(a) * count(b))``.

    Schuster & Nakajima (2012) and BERT's WordPiece merge the pair that most raises the training
    data's likelihood under a unigram model of the symbols; that gain ranks pairs like this
    ratio: a pair scores high when its symbols rarely occur apart. BPE merges the most *frequent*
    pair instead (:func:`most_frequent_pair`). Counts are weighted by word counts.
    """
    _check_vocab(vocab)
    symbols: Counter[str] = Counter()
    for word, n in vocab.items():
        for symbol in word.split(" "):
            symbols[symbol] += n
    return {pair: n / (symbols[pair.split(" ")[0]] * symbols[pair.split(" ")[1]])
            for pair, n in pair_counts(vocab).items()}


def train_wordpiece_merges(texts: Sequence[str], vocab_size: int = 4000, min_frequency: int = 2) -> Tokenizer:
    """What Hugging Face's ``WordPieceTrainer`` runs inside: BPE merges, by frequency, with BERT's set-up.

    The same normaliser, pre-tokenizer, special tokens and ``##`` continuation mark as
    :func:`train_wordpiece`, but the model is BPE: a word is encoded by applying the learned merges
    in order. ``train_wordpiece`` converts the same merges' vocabulary into a WordPiece model, which
    encodes by greedy longest match from the left instead.
    """
    _check_training_input(texts, vocab_size)
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True,
                                                handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=BERT_SPECIALS, show_progress=False,
                                  continuing_subword_prefix="##")
    tok.train_from_iterator(texts, trainer=trainer)
    return tok
