"""Matryoshka loss: truncation, the weighted sum, parity with sentence-transformers' MatryoshkaLoss."""

import pytest
import torch
import torch.nn.functional as F

from beyondbert.losses import in_batch_negatives_loss
from beyondbert.matryoshka import matryoshka_loss, truncate


def test_truncate_renormalises():
    x = torch.tensor([[3.0, 4.0, 12.0]])
    assert torch.allclose(truncate(x, 2), torch.tensor([[0.6, 0.8]]))
    with pytest.raises(ValueError, match="dim must be"):
        truncate(x, 4)


def test_matryoshka_loss_is_the_weighted_sum_of_truncated_losses():
    torch.manual_seed(0)
    a, b = torch.randn(6, 16), torch.randn(6, 16)
    out = matryoshka_loss(in_batch_negatives_loss, a, b, [16, 8, 4], [1.0, 0.5, 2.0])
    expected = sum(w * in_batch_negatives_loss(F.normalize(a[:, :m], dim=-1),
                                               F.normalize(b[:, :m], dim=-1))
                   for m, w in [(16, 1.0), (8, 0.5), (4, 2.0)])
    assert torch.allclose(out, expected)
    with pytest.raises(ValueError, match="weights"):
        matryoshka_loss(in_batch_negatives_loss, a, b, [16, 8], [1.0])


def test_matches_sentence_transformers_matryoshka_loss():
    """MatryoshkaLoss(MultipleNegativesRankingLoss) on fixed embeddings equals ours (1e-5)."""
    from sentence_transformers.sentence_transformer.losses import (MatryoshkaLoss,
                                                                   MultipleNegativesRankingLoss)

    torch.manual_seed(0)
    a, b = torch.randn(5, 32), torch.randn(5, 32)

    class Fixed(torch.nn.Module):  # a "model" that returns the given embeddings
        def forward(self, features):
            return {"sentence_embedding": features["x"]}

        def get_embedding_dimension(self):
            return 32

    model = Fixed()
    ref = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), [32, 16, 8])
    expected = ref([{"x": a}, {"x": b}], None)
    ours = matryoshka_loss(in_batch_negatives_loss, a, b, [32, 16, 8])
    assert torch.allclose(ours, expected, atol=1e-5)


def test_matryoshka_head_training_and_baselines():
    from beyondbert.matryoshka import (pca_projection, random_rotation, similarity_preservation_loss,
                                       train_matryoshka_head)

    torch.manual_seed(0)
    x = F.normalize(torch.randn(64, 16) * torch.linspace(0.1, 3, 16).flip(0).roll(5), dim=-1)
    assert similarity_preservation_loss(x, x).item() < 1e-10
    head, losses = train_matryoshka_head(x, [16, 4], steps=60, batch_size=32, lr=1e-2, seed=0)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        assert similarity_preservation_loss(head(x)[:, :4], x) < similarity_preservation_loss(x[:, :4], x)
    q = random_rotation(16, seed=1)
    assert torch.allclose(q @ q.T, torch.eye(16), atol=1e-5)
    p = pca_projection(x)(x)
    var = p.var(0)
    assert torch.all(var[:-1] >= var[1:] - 1e-6)
