"""SBERT's objectives: parity with sentence-transformers' losses on the same embeddings."""

import types

import pytest
import torch
from sentence_transformers.sentence_transformer import losses as st_losses
from torch import nn

from beyondbert.losses import (SoftmaxHead, cosine_similarity_loss, cosine_similarity_matrix,
                               in_batch_negatives_loss, pair_features, triplet_loss)

NO_MODEL = types.SimpleNamespace(device="cpu")  # the losses below never call their model
TOL = 1e-5


def embeddings(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


A, P, N = embeddings(6, 8, seed=0), embeddings(6, 8, seed=1), embeddings(6, 8, seed=2)


def test_cosine_similarity_matrix_matches_sentence_transformers_cos_sim():
    from sentence_transformers.util import cos_sim

    ours = cosine_similarity_matrix(A, P[:4])
    assert ours.shape == (6, 4)
    assert torch.allclose(ours, cos_sim(A, P[:4]), atol=TOL)
    assert torch.equal(cosine_similarity_matrix(torch.zeros(1, 8), P)[0], torch.zeros(6))


def test_cosine_similarity_loss_parity():
    scores = torch.rand(6, generator=torch.Generator().manual_seed(3))
    ref = st_losses.CosineSimilarityLoss(NO_MODEL).compute_loss_from_embeddings([A, P], scores)
    assert torch.allclose(cosine_similarity_loss(A, P, scores), ref, atol=TOL)


@pytest.mark.parametrize("distance,metric,margin", [
    ("euclidean", st_losses.TripletDistanceMetric.EUCLIDEAN, 5.0),
    ("cosine", st_losses.TripletDistanceMetric.COSINE, 0.3),
    ("manhattan", st_losses.TripletDistanceMetric.MANHATTAN, 1.0),
])
def test_triplet_loss_parity(distance, metric, margin):
    ref = st_losses.TripletLoss(NO_MODEL, distance_metric=metric, triplet_margin=margin)
    expected = ref.compute_loss_from_embeddings([A, P, N], None)
    assert torch.allclose(triplet_loss(A, P, N, margin, distance), expected, atol=TOL)


def test_triplet_loss_is_zero_once_the_margin_is_met():
    far = A + 100.0
    assert triplet_loss(A, A, far, margin=1.0) == 0
    assert triplet_loss(A, A, A, margin=1.0) == pytest.approx(1.0)  # d(a,p) = d(a,n): the margin


@pytest.mark.parametrize("with_negatives", [False, True])
def test_in_batch_negatives_parity(with_negatives):
    ref = st_losses.MultipleNegativesRankingLoss(NO_MODEL)  # scale 20, cosine
    columns = [A, P, N] if with_negatives else [A, P]
    expected = ref.compute_loss_from_embeddings(columns, None)
    ours = in_batch_negatives_loss(A, P, N if with_negatives else None)
    assert torch.allclose(ours, expected, atol=TOL)


def test_in_batch_negatives_uses_the_other_positives():
    # aligned pairs, every other positive orthogonal: the loss is near 0; shuffled: large
    eye = torch.eye(4)
    assert in_batch_negatives_loss(eye, eye) < 1e-6
    assert in_batch_negatives_loss(eye, eye.roll(1, dims=0)) > 10


class _Columns(nn.Module):
    """Stands in for a SentenceTransformer: each column's features already hold its embedding."""

    device = torch.device("cpu")

    def forward(self, features):
        return {"sentence_embedding": features["embedding"]}


def test_softmax_head_parity():
    ref = st_losses.SoftmaxLoss(_Columns(), embedding_dimension=8, num_labels=3)
    head = SoftmaxHead(8, 3)
    head.classifier.load_state_dict(ref.classifier.state_dict())
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    expected = ref([{"embedding": A}, {"embedding": P}], labels)
    assert torch.allclose(head.loss(A, P, labels), expected, atol=TOL)
    assert pair_features(A, P).shape == (6, 24)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"same shape as the anchors \(6, 8\)"):
        triplet_loss(A, P[:3], N)
    with pytest.raises(ValueError, match="distance must be one of"):
        triplet_loss(A, P, N, distance="dot")
    with pytest.raises(ValueError, match=r"scores must have shape \(6,\)"):
        cosine_similarity_loss(A, P, torch.ones(5))
    with pytest.raises(ValueError, match=r"\(batch, dim\)"):
        in_batch_negatives_loss(torch.ones(0, 8), torch.ones(0, 8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        cosine_similarity_matrix(A.tolist(), P)
    with pytest.raises(ValueError, match="same dim"):
        cosine_similarity_matrix(A, torch.ones(2, 3))
    with pytest.raises(ValueError, match="int64"):
        SoftmaxHead(8).loss(A, P, torch.zeros(6))
