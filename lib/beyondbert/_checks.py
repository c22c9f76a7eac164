"""Input checks shared by the library's public functions (clear errors: expected vs given)."""

from __future__ import annotations

import torch


def check_tensor(x: object, name: str) -> torch.Tensor:
    """Raise ``TypeError`` unless ``x`` is a tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_ids_and_mask(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Validate token ids ``(batch, seq)`` and an optional 0/1 mask of the same shape.

    Returns the mask (all ones when ``attention_mask`` is None).
    """
    check_tensor(input_ids, "input_ids")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"input_ids must hold integer token ids (torch.int64), got dtype {input_ids.dtype}"
        )
    if input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must have shape (batch, seq), got {tuple(input_ids.shape)}"
        )
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(
            f"input_ids must hold at least one sequence of at least one token, "
            f"got shape {tuple(input_ids.shape)}"
        )
    if attention_mask is None:
        return torch.ones_like(input_ids)
    check_mask(attention_mask, tuple(input_ids.shape))
    return attention_mask


def check_mask(attention_mask: torch.Tensor, expected_shape: tuple[int, ...]) -> None:
    """Validate a 0/1 attention mask of shape ``expected_shape`` (batch, seq)."""
    check_tensor(attention_mask, "attention_mask")
    if tuple(attention_mask.shape) != tuple(expected_shape):
        raise ValueError(
            f"attention_mask must have shape {tuple(expected_shape)} (batch, seq), "
            f"got {tuple(attention_mask.shape)}"
        )
    values = attention_mask.to(torch.float32)
    if not torch.all((values == 0) | (values == 1)):
        raise ValueError("attention_mask must contain only 0 (padding) and 1 (token)")
