"""Tokenizers: WordPiece ([UNK], ## pieces) vs byte-level BPE (no unknowns, lossless), and the toy
BPE merge loop (counts, ties, whole-symbol merges; first merges equal the tokenizers library's)."""

import pytest

from beyondbert.tokenization import (apply_merges, learn_bpe, merge_pair, most_frequent_pair, news_corpus,
                                     pair_counts, train_byte_level_bpe, train_wordpiece, word_vocab)

TOY = {"l o w </w>": 5, "l o w e r </w>": 2, "n e w e s t </w>": 6, "w i d e s t </w>": 3}
HARD = "Café naïve 🙂 COVID-19"


@pytest.fixture(scope="module")
def corpus():
    return news_corpus()[:60]


def test_news_corpus():
    texts = news_corpus()
    assert len(texts) == 300 and all(isinstance(t, str) and len(t.split()) > 20 for t in texts)


def test_wordpiece_unknowns_and_pieces(corpus):
    tok = train_wordpiece(corpus, vocab_size=600)
    assert tok.get_vocab_size() == 600
    enc = tok.encode(HARD)
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert "[UNK]" in enc.tokens  # the emoji is not in a vocabulary learned from news text
    assert any(t.startswith("##") for t in enc.tokens)
    assert "é" not in "".join(enc.tokens)  # uncased BERT strips accents


def test_byte_level_bpe_has_no_unknowns_and_is_lossless(corpus):
    tok = train_byte_level_bpe(corpus, vocab_size=600)
    assert tok.get_vocab_size() == 600
    enc = tok.encode(HARD)
    assert enc.tokens[0] == "<s>" and enc.tokens[-1] == "</s>"
    assert "<unk>" not in enc.tokens
    assert tok.decode(enc.ids) == HARD  # bytes in, the same bytes out


@pytest.mark.parametrize("train", [train_wordpiece, train_byte_level_bpe])
def test_training_input_is_checked(train):
    with pytest.raises(TypeError, match="list of strings"):
        train("just one string", 600)
    with pytest.raises(ValueError, match="vocab_size"):
        train(["a b c"], 100)


def test_pair_counts_weight_by_word_frequency():
    counts = pair_counts(TOY)
    assert counts["e s"] == 9 and counts["l o"] == 7 and counts["w e"] == 8 and counts["r </w>"] == 2


def test_ties_go_to_the_smallest_pair():
    assert most_frequent_pair({"s t": 9, "e s": 9, "t </w>": 9, "w e": 8}) == "e s"
    with pytest.raises(ValueError, match="no pairs"):
        most_frequent_pair({})


def test_merge_matches_whole_symbols_left_to_right():
    assert merge_pair({"ne w": 1, "n e w": 2}, "e w") == {"ne w": 1, "n ew": 2}
    assert merge_pair({"a a a": 3}, "a a") == {"aa a": 3}
    with pytest.raises(ValueError, match="two symbols"):
        merge_pair(TOY, "es")


def test_learn_bpe_on_the_toy_vocabulary():
    merges, vocab = learn_bpe(TOY, 5)
    assert merges == ["e s", "es t", "est </w>", "l o", "lo w"]
    assert vocab["n e w est</w>"] == 6 and vocab["low </w>"] == 5
    assert apply_merges("lowest", merges) == ["low", "est</w>"]
    assert word_vocab(["low", "low", "new"]) == {"l o w </w>": 2, "n e w </w>": 1}


def test_first_merges_equal_the_tokenizers_library():
    """Where no two pairs tie, our merges are the tokenizers library's BPE merges.

    The library glues the end-of-word marker to the last character ("g</w>"), so we do too here.
    """
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    words = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
    glued = {" ".join([*w[:-1], w[-1] + "</w>"]): words.count(w) for w in set(words)}
    ours, _ = learn_bpe(glued, 3)
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=100, show_progress=False, end_of_word_suffix="</w>")
    tok.train_from_iterator([" ".join(words)], trainer)
    theirs = json.loads(tok.to_str())["model"]["merges"][:3]
    theirs = [m if isinstance(m, str) else " ".join(m) for m in theirs]
    assert ours == theirs


def test_wordpiece_scores_prefer_pairs_whose_symbols_rarely_occur_apart():
    from beyondbert.tokenization import most_frequent_pair, pair_counts, word_vocab, wordpiece_scores

    toy = word_vocab(["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3)
    scores = wordpiece_scores(toy)
    assert set(scores) == set(pair_counts(toy))
    assert scores["i d"] == pytest.approx(3 / (3 * 3))      # i and d occur only in 'widest'
    assert scores["e s"] == pytest.approx(9 / (17 * 9))     # e is everywhere
    assert max(scores, key=scores.get) == "i d" and most_frequent_pair(pair_counts(toy)) == "e s"


def test_wordpiece_merges_share_the_vocabulary_but_not_the_encoding():
    from beyondbert.tokenization import news_corpus, train_wordpiece, train_wordpiece_merges

    texts = news_corpus()[:60]
    wordpiece, merges = train_wordpiece(texts, 1000), train_wordpiece_merges(texts, 1000)
    a, b = set(wordpiece.get_vocab()), set(merges.get_vocab())
    assert len(a ^ b) <= 4  # the same merges; ties may be broken differently
    words = {w for t in texts for w in t.lower().split() if w.isalpha()}
    differ = [w for w in words if wordpiece.encode(w, add_special_tokens=False).tokens
              != merges.encode(w, add_special_tokens=False).tokens]
    assert differ  # greedy longest match and merge order split some words differently
