"""Pooling: mask-aware results, padding invariance, bad inputs."""

import pytest
import torch

from beyondbert.pooling import cls_pool, max_pool, mean_of_layers, mean_pool

HIDDEN = torch.tensor([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]]])  # last token is padding
MASK = torch.tensor([[1, 1, 0]])


def test_cls_pool_takes_first_token():
    assert torch.equal(cls_pool(HIDDEN, MASK), torch.tensor([[1.0, 2.0]]))


def test_mean_pool_ignores_padding():
    assert torch.allclose(mean_pool(HIDDEN, MASK), torch.tensor([[2.0, -1.0]]))


def test_max_pool_ignores_padding():
    assert torch.equal(max_pool(HIDDEN, MASK), torch.tensor([[3.0, 2.0]]))


@pytest.mark.parametrize("pool", [mean_pool, max_pool])
def test_all_padding_row_gives_zeros_not_nan(pool):
    out = pool(HIDDEN, torch.tensor([[0, 0, 0]]))
    assert torch.equal(out, torch.zeros(1, 2))


@pytest.mark.parametrize("pool", [mean_pool, max_pool])
def test_padding_length_does_not_change_result(pool):
    torch.manual_seed(0)
    hidden = torch.randn(1, 4, 8)
    short = pool(hidden[:, :2], torch.tensor([[1, 1]]))
    padded = pool(hidden, torch.tensor([[1, 1, 0, 0]]))
    assert torch.allclose(short, padded)


def test_mean_pool_matches_sentence_transformers_pooling():
    from sentence_transformers.sentence_transformer.modules import Pooling

    torch.manual_seed(0)
    hidden, mask = torch.randn(3, 5, 8), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    ref = Pooling(8, pooling_mode="mean")({"token_embeddings": hidden, "attention_mask": mask})
    assert torch.allclose(mean_pool(hidden, mask), ref["sentence_embedding"], atol=1e-6)


def test_mean_of_layers_averages_last_k():
    layers = tuple(torch.full((1, 2, 3), float(i)) for i in range(6))
    assert torch.equal(mean_of_layers(layers, last_k=4), torch.full((1, 2, 3), 3.5))
    with pytest.raises(ValueError, match="between 1 and"):
        mean_of_layers(layers, last_k=7)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"must have shape \(1, 3\)"):
        mean_pool(HIDDEN, torch.tensor([[1, 1]]))
    with pytest.raises(ValueError, match=r"\(batch, seq, dim\)"):
        mean_pool(torch.ones(2, 3), MASK)
    with pytest.raises(ValueError, match="only 0"):
        mean_pool(HIDDEN, torch.tensor([[1, 2, 0]]))
    with pytest.raises(ValueError, match="not be empty"):
        mean_pool(torch.ones(0, 3, 2), torch.ones(0, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        mean_pool([[1.0]], MASK)
