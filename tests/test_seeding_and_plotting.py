"""Seeding makes runs repeat; plot helpers label their axes and reject bad shapes."""

import random

import matplotlib
import numpy as np
import pytest
import torch

from beyondbert.plotting import plot_attention, plot_mask
from beyondbert.seeding import seed_everything, torch_threads

matplotlib.use("Agg")


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_repeats_all_generators():
    seed_everything(3)
    first = _draws()
    seed_everything(3)
    assert _draws() == first
    assert torch.get_num_threads() == 2


def test_seed_rejects_negative():
    with pytest.raises(ValueError, match="non-negative"):
        seed_everything(-1)


def test_plot_attention_labels_and_shape_check():
    ax = plot_attention(torch.full((3, 3), 1 / 3), ["[CLS]", "hi", "[SEP]"], title="layer 1, head 1")
    assert ax.get_title() == "layer 1, head 1"
    assert ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(ValueError, match=r"\(2, 2\) for 2 tokens"):
        plot_attention(torch.ones(3, 3), ["a", "b"], title="x")


def test_plot_mask_draws_matrix():
    ax = plot_mask(torch.ones(4, 4).tril().bool(), title="causal")
    assert ax.get_title() == "causal" and ax.get_xlabel() == "key position"
    with pytest.raises(ValueError, match="2-D"):
        plot_mask(torch.ones(2, 2, 2), title="bad")


def test_torch_threads_sets_and_restores_the_thread_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"), torch_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before  # restored after an error too
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1"), torch_threads(0):
        pass


def test_show_stores_alt_text_in_the_figure(monkeypatch):
    import matplotlib.pyplot as plt
    from IPython import display as ipy_display

    from beyondbert.plotting import alt_text, show

    shown = []
    monkeypatch.setattr(ipy_display, "display", lambda obj: shown.append(obj))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    show(fig, alt="A line falling from 1 to 0.")
    assert alt_text(shown[0].data) == "A line falling from 1 to 0."
    with pytest.raises(ValueError, match="alt must say"):
        show(plt.subplots()[0], alt="plot")
