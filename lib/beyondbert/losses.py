"""Sentence-embedding training objectives as plain functions of embeddings.

Reimers & Gurevych (2019) train SBERT with three objectives on top of a siamese encoder:
classification on ``(u, v, |u - v|)`` (:func:`pair_features` + a linear layer + cross-entropy),
regression of the cosine similarity onto a gold score (:func:`cosine_similarity_loss`) and a
triplet loss with a margin (:func:`triplet_loss`). :func:`in_batch_negatives_loss` is the
multiple-negatives ranking loss of Henderson et al. (2017): every other positive in the batch is
a negative. Each matches the corresponding sentence-transformers loss on the same embeddings
(tests/test_losses.py).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._checks import check_tensor


def _check_batch(name: str, x: object, like: torch.Tensor | None = None) -> torch.Tensor:
    check_tensor(x, name)
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (batch, dim) with batch, dim >= 1, "
                         f"got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if like is not None and x.shape != like.shape:
        raise ValueError(f"{name} must have the same shape as the anchors {tuple(like.shape)}, "
                         f"got {tuple(x.shape)}")
    return x


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``a (n, dim)`` with every row of ``b (m, dim)``: ``(n, m)``.

    Zero vectors get similarity 0 (not NaN).
    """
    _check_batch("a", a)
    _check_batch("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same dim, got {a.shape[1]} and {b.shape[1]}")
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def cosine_similarity_loss(u: torch.Tensor, v: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """SBERT's regression objective: mean squared error between ``cos(u_i, v_i)`` and ``scores``.

    ``u, v (batch, dim)``, ``scores (batch,)`` gold similarities scaled to [-1, 1] (often [0, 1]).
    """
    _check_batch("u", u)
    _check_batch("v", v, like=u)
    check_tensor(scores, "scores")
    if scores.shape != (u.shape[0],):
        raise ValueError(f"scores must have shape ({u.shape[0]},), got {tuple(scores.shape)}")
    return F.mse_loss(F.cosine_similarity(u, v, dim=1), scores.to(u.dtype))


DISTANCES = {
    "euclidean": lambda x, y: (x - y).norm(dim=1),
    "cosine": lambda x, y: 1 - F.cosine_similarity(x, y, dim=1),
    "manhattan": lambda x, y: (x - y).abs().sum(dim=1),
}


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 5.0, distance: str = "euclidean") -> torch.Tensor:
    """SBERT's triplet objective: mean of ``max(0, d(a, p) - d(a, n) + margin)``.

    All three ``(batch, dim)``. The anchor must be at least ``margin`` closer to its positive than
    to its negative; sentence-transformers' default is euclidean distance with margin 5 (Reimers &
    Gurevych 2019 used 1); with unit vectors and cosine distance a margin of 0.1-0.5 is usual.
    """
    _check_batch("anchor", anchor)
    _check_batch("positive", positive, like=anchor)
    _check_batch("negative", negative, like=anchor)
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {sorted(DISTANCES)}, got {distance!r}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    d = DISTANCES[distance]
    return F.relu(d(anchor, positive) - d(anchor, negative) + margin).mean()


def in_batch_negatives_loss(anchors: torch.Tensor, positives: torch.Tensor,
                            negatives: torch.Tensor | None = None,
                            scale: float = 20.0) -> torch.Tensor:
    """Multiple-negatives ranking loss: cross-entropy over ``scale * cos(anchor_i, candidates)``.

    ``anchors, positives (batch, dim)``; optional hard ``negatives (batch, dim)``. The candidates
    of every anchor are all positives (its own is the right answer, row ``i``) and all negatives,
    so each batch of ``b`` pairs gives each anchor ``b - 1`` free negatives. ``scale`` is an
    inverse temperature (20 = temperature 0.05).
    """
    _check_batch("anchors", anchors)
    _check_batch("positives", positives, like=anchors)
    candidates = positives
    if negatives is not None:
        _check_batch("negatives", negatives, like=anchors)
        candidates = torch.cat([positives, negatives])
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    logits = scale * cosine_similarity_matrix(anchors, candidates)  # (batch, batch [+ batch])
    return F.cross_entropy(logits, torch.arange(anchors.shape[0], device=anchors.device))


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SBERT's classification input ``(u, v, |u - v|)`` concatenated: ``(batch, 3 * dim)``."""
    _check_batch("u", u)
    _check_batch("v", v, like=u)
    return torch.cat([u, v, (u - v).abs()], dim=1)


class SoftmaxHead(nn.Module):
    """SBERT's classification objective: ``softmax(W (u, v, |u - v|))`` over ``num_labels`` classes
    (3 for NLI: entailment, neutral, contradiction). ``loss(u, v, labels)`` is the cross-entropy."""

    def __init__(self, dim: int, num_labels: int = 3):
        super().__init__()
        if dim < 1 or num_labels < 2:
            raise ValueError(f"need dim >= 1 and num_labels >= 2, got {dim} and {num_labels}")
        self.classifier = nn.Linear(3 * dim, num_labels)

    def forward(self, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Class logits ``(batch, num_labels)``."""
        return self.classifier(pair_features(u, v))

    def loss(self, u: torch.Tensor, v: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the predicted classes against integer ``labels (batch,)``."""
        check_tensor(labels, "labels")
        if labels.shape != (u.shape[0],) or labels.dtype != torch.int64:
            raise ValueError(f"labels must be int64 of shape ({u.shape[0]},), "
                             f"got {labels.dtype} {tuple(labels.shape)}")
        return F.cross_entropy(self(u, v), labels)
