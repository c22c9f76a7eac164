"""Matryoshka embeddings (Kusupati et al., 2022): train so that every prefix of a vector is itself
a good embedding, then truncate at search time.

The loss is an ordinary embedding loss applied to several truncations of the same vectors
(each prefix re-normalised) and summed with weights: ``sum_m w_m * loss(a[:, :m], b[:, :m])``.
sentence-transformers calls the same recipe ``MatryoshkaLoss``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def truncate(embeddings: torch.Tensor, dim: int) -> torch.Tensor:
    """The first ``dim`` dimensions, re-normalised to unit length: (n, D) -> (n, dim)."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must have shape (n, dim), got {tuple(embeddings.shape)}")
    if not isinstance(dim, int) or not 1 <= dim <= embeddings.shape[1]:
        raise ValueError(f"dim must be an int in 1..{embeddings.shape[1]}, got {dim!r}")
    return F.normalize(embeddings[:, :dim], dim=-1)


def matryoshka_loss(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    anchors: torch.Tensor, positives: torch.Tensor, dims: Sequence[int],
                    weights: Sequence[float] | None = None) -> torch.Tensor:
    """Weighted sum of ``loss_fn`` over the truncations ``dims`` of (batch, D) ``anchors`` and
    ``positives`` (each prefix re-normalised). ``weights`` default to 1 for every dimension."""
    dims = list(dims)
    if not dims:
        raise ValueError("dims must list at least one dimension, e.g. [384, 256, 128, 64, 32]")
    weights = [1.0] * len(dims) if weights is None else list(weights)
    if len(weights) != len(dims):
        raise ValueError(f"{len(dims)} dims but {len(weights)} weights")
    return sum(w * loss_fn(truncate(anchors, m), truncate(positives, m))
               for m, w in zip(dims, weights, strict=True))
