"""Sentence vectors from token vectors: CLS, mask-aware mean and max, and layer averaging.

All poolers take ``hidden (batch, seq, dim)`` and a 0/1 ``attention_mask (batch, seq)`` and return
``(batch, dim)``. Padding never changes the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._checks import check_mask, check_tensor


def _check_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
    check_tensor(hidden, "hidden")
    if hidden.dim() != 3:
        raise ValueError(f"hidden must have shape (batch, seq, dim), got {tuple(hidden.shape)}")
    if not hidden.dtype.is_floating_point:
        raise ValueError(f"hidden must be floating point, got dtype {hidden.dtype}")
    if hidden.shape[0] == 0 or hidden.shape[1] == 0:
        raise ValueError(f"hidden must not be empty, got shape {tuple(hidden.shape)}")
    if attention_mask is not None:
        check_mask(attention_mask, tuple(hidden.shape[:2]))


def cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The vector of the first token ([CLS]) ``(batch, dim)``."""
    _check_hidden(hidden, attention_mask)
    return hidden[:, 0]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real (mask = 1) token vectors ``(batch, dim)``; all-padding rows give 0."""
    _check_hidden(hidden, attention_mask)
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (batch, seq, 1)
    counts = weights.sum(dim=1).clamp(min=1.0)
    return (hidden * weights).sum(dim=1) / counts


def max_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over real tokens ``(batch, dim)``; all-padding rows give 0."""
    _check_hidden(hidden, attention_mask)
    real = attention_mask.bool().unsqueeze(-1)
    pooled = hidden.masked_fill(~real, float("-inf")).max(dim=1).values
    return torch.where(real.any(dim=1), pooled, torch.zeros_like(pooled))


def mean_of_layers(hidden_states: Sequence[torch.Tensor], last_k: int = 4) -> torch.Tensor:
    """Average the last ``last_k`` layers' token vectors: ``(batch, seq, dim)``.

    ``hidden_states`` is the tuple a BERT returns with ``output_hidden_states=True``.
    """
    if not isinstance(last_k, int) or not 1 <= last_k <= len(hidden_states):
        raise ValueError(
            f"last_k must be between 1 and the number of hidden states ({len(hidden_states)}), "
            f"got {last_k!r}"
        )
    layers = hidden_states[-last_k:]
    shapes = {tuple(h.shape) for h in layers}
    if len(shapes) != 1:
        raise ValueError(f"all hidden states must share one shape, got {sorted(shapes)}")
    return torch.stack(list(layers)).mean(dim=0)
