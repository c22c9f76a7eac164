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


def similarity_preservation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the cosine-similarity matrix of ``student`` (a truncated,
    re-normalised prefix, (batch, m)) and ``teacher``'s (batch, D): the unsupervised loss of the
    Matryoshka-Adaptor (Yoon et al., 2024), which needs no labels, only the original vectors."""
    s = F.normalize(student, dim=-1)
    t = F.normalize(teacher, dim=-1)
    return ((s @ s.T - t @ t.T) ** 2).mean()


def train_matryoshka_head(vectors: torch.Tensor, dims: Sequence[int] | None, steps: int = 500,
                          batch_size: int = 256, lr: float = 1e-3, seed: int = 0):
    """A D -> D linear layer on frozen embeddings, started at the identity, trained so that its
    prefixes keep the original vectors' cosine similarities (:func:`similarity_preservation_loss`
    summed over the prefixes ``dims``; ``dims=None`` or ``[D]``: the full vector only, the plain
    baseline). (n, D) float -> (head in eval mode, list of the loss at every step)."""
    if vectors.dim() != 2 or len(vectors) < 2:
        raise ValueError(f"vectors must be (n >= 2, dim), got {tuple(vectors.shape)}")
    dim = vectors.shape[1]
    dims = [dim] if dims is None else list(dims)
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(dim, dim)
    with torch.no_grad():
        head.weight.copy_(torch.eye(dim))
        head.bias.zero_()
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        batch = vectors[torch.randperm(len(vectors), generator=generator)[:batch_size]]
        out = head(batch)
        loss = sum(similarity_preservation_loss(out[:, :m], batch) for m in dims)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return head.eval(), losses


def pca_projection(vectors: torch.Tensor):
    """PCA fitted on ``vectors`` (n, D): a function x -> (x - mean) @ components.T, components
    sorted by explained variance, so a prefix of its output is the best linear m-d summary in the
    least-squares sense. No labels, no training: the free baseline for truncation."""
    mean = vectors.mean(0)
    _, _, vt = torch.linalg.svd(vectors - mean, full_matrices=False)
    return lambda x: (x - mean) @ vt.T


def random_rotation(dim: int, seed: int = 0) -> torch.Tensor:
    """A random orthogonal (dim, dim) matrix (QR of a Gaussian one): rotating changes no cosine,
    but spreads each coordinate's information evenly, so a prefix keeps a random share."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))
