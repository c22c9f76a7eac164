"""Datasets from gensim's test data, the STS-benchmark reader and the honest splits."""

import numpy as np
import pytest

from beyondbert import data


def test_word_pair_sets_have_their_published_sizes():
    simlex, wordsim = data.simlex999(), data.wordsim353()
    assert len(simlex) == 999 and len(wordsim) == 353
    assert simlex[0] == ("old", "new", 1.58)
    assert all(0.0 <= s <= 10.0 for _, _, s in simlex + wordsim)


def test_lee_sets():
    docs, sims = data.lee_documents(), data.lee_similarities()
    assert len(docs) == 50 and sims.shape == (50, 50)
    assert np.allclose(sims, sims.T) and np.allclose(np.diag(sims), 1.0)
    assert sims[1, 0] == sims[0, 1] == 0.3  # gensim stores the upper triangle only
    assert len(data.lee_background()) == 300


def test_polarity_sentences_and_labels():
    sentences, labels = data.pang_lee_polarity()
    assert len(sentences) == 200 and labels.shape == (200,) and labels.dtype == np.int64
    assert labels.sum() == 100 and set(labels.tolist()) == {0, 1}
    assert not any(s.startswith("__label__") for s in sentences)


STS_LINES = [
    "main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane is taking off.\tAn air plane is taking off.",
    "main-forum\tdeft-forum\t2014\t0002\t0.800\tA man \"quoted\" this.\tSomeone said so.\tsource: x\tlicence y",
    "",
    "main-news\theadlines\t2015\t0003\t3.25\tNews one.\tNews two.\textra",
]


def write(tmp_path, lines, name="sts.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_sts_ignores_extra_fields_and_keeps_quotes(tmp_path):
    s1, s2, scores = data.load_sts(write(tmp_path, STS_LINES))
    assert s1 == ["A plane is taking off.", 'A man "quoted" this.', "News one."]
    assert s2 == ["An air plane is taking off.", "Someone said so.", "News two."]
    assert scores == [5.0, 0.8, 3.25]


def test_load_sts_bad_files_name_the_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        data.load_sts(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r":2: expected at least 7"):
        data.load_sts(write(tmp_path, [STS_LINES[0], "a\tb\tc\td\t1.0\tonly one sentence"]))
    with pytest.raises(ValueError, match=r":1: the score .* got 'five'"):
        data.load_sts(write(tmp_path, [STS_LINES[0].replace("5.000", "five")]))
    with pytest.raises(ValueError, match="no sentence pairs"):
        data.load_sts(write(tmp_path, [""]))


def test_split_indices_is_seeded_disjoint_and_complete():
    train, test = data.split_indices(100, 0.3, seed=1)
    assert len(test) == 30 and len(train) == 70 and train.dtype == np.int64
    assert set(train) | set(test) == set(range(100)) and not set(train) & set(test)
    again = data.split_indices(100, 0.3, seed=1)
    assert np.array_equal(train, again[0]) and not np.array_equal(test, data.split_indices(100, 0.3, seed=2)[1])
    with pytest.raises(ValueError, match="n must be"):
        data.split_indices(1)
    with pytest.raises(ValueError, match="strictly between"):
        data.split_indices(10, 0.0)


def test_split_pairs_by_word_shares_no_word():
    pairs = data.simlex999()
    train, test = data.split_pairs_by_word(pairs, 0.4, seed=0)
    train_words = {w for a, b, _ in train for w in (a, b)}
    test_words = {w for a, b, _ in test for w in (a, b)}
    assert train and test and not train_words & test_words
    assert set(train) <= set(pairs) and set(test) <= set(pairs)
    with pytest.raises(ValueError, match="must not be empty"):
        data.split_pairs_by_word([])


def test_pair_triplets_prefer_hard_negatives_and_stay_inside_the_set():
    pairs = [("cup", "mug", 9.0), ("cup", "coffee", 2.0), ("old", "ancient", 8.0),
             ("old", "new", 1.0), ("car", "automobile", 9.5), ("tree", "leaf", 3.5)]
    triplets, n_hard = data.pair_triplets(pairs, positive_min=7.0, negative_max=2.5, seed=0)
    assert triplets[:2] == [("cup", "mug", "coffee"), ("old", "ancient", "new")] and n_hard == 2
    anchor, positive, negative = triplets[2]
    words = {w for a, b, _ in pairs for w in (a, b)}
    assert (anchor, positive) == ("car", "automobile") and negative in words - {"car", "automobile"}
    assert data.pair_triplets(pairs, 7.0, 2.5, seed=0) == (triplets, n_hard)  # seeded
    with pytest.raises(ValueError, match="below positive_min"):
        data.pair_triplets(pairs, 5.0, 6.0)
    with pytest.raises(ValueError, match="no pair is scored"):
        data.pair_triplets(pairs, 10.0, 1.0)
