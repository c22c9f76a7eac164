"""Scaled dot-product attention, its masks, and multi-head attention (Vaswani et al., 2017).

Masks here are boolean "may attend" matrices: ``True`` where a query may look at a key. They are
turned into additive biases (0 or -inf) before the softmax, so masked keys get exactly zero weight.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_mask, check_tensor


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Key-padding mask ``(batch, 1, 1, seq)`` (bool) from a 0/1 mask ``(batch, seq)``."""
    check_tensor(attention_mask, "attention_mask")
    if attention_mask.dim() != 2:
        raise ValueError(
            f"attention_mask must have shape (batch, seq), got {tuple(attention_mask.shape)}"
        )
    check_mask(attention_mask, tuple(attention_mask.shape))
    return attention_mask.bool()[:, None, None, :]


def causal_mask(seq_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Lower-triangular mask ``(seq, seq)``: query ``i`` may attend to keys ``0..i``."""
    if not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    return torch.ones(seq_len, seq_len, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d) + bias) V.

    Args:
        query: ``(..., q_len, d)``; key: ``(..., k_len, d)``; value: ``(..., k_len, d_v)``.
        mask: bool, broadcastable to ``(..., q_len, k_len)``; ``True`` = may attend.

    Returns:
        ``(output (..., q_len, d_v), weights (..., q_len, k_len))``. A query row whose keys are
        all masked gets all-zero weights (and a zero output) instead of NaN.
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        check_tensor(t, name)
        if not t.dtype.is_floating_point:
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must share their last dimension, got {query.shape[-1]} and "
            f"{key.shape[-1]}"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"key and value must have the same length, got {key.shape[-2]} and {value.shape[-2]}"
        )
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if mask is not None:
        check_tensor(mask, "mask")
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor (True = may attend), got {mask.dtype}")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)  # rows with every key masked
    return weights @ value, weights


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with BERT's parameter names (query, key, value, output)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, seq, dim) -> (batch, heads, seq, head_dim)."""
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden ``(batch, seq, dim)``, mask bool broadcastable to ``(batch, heads, seq, seq)``.

        Returns ``(output (batch, seq, dim), weights (batch, heads, seq, seq))``.
        """
        q = self._split_heads(self.query(hidden))
        k = self._split_heads(self.key(hidden))
        v = self._split_heads(self.value(hidden))
        context, weights = scaled_dot_product_attention(q, k, v, mask)
        batch, _, seq, _ = context.shape
        context = context.transpose(1, 2).reshape(batch, seq, -1)
        return self.output(context), weights
