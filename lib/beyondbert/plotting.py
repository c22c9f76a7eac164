"""The figure helpers chapters share: showing a figure with its alt text, attention heatmaps and
mask matrices."""

from __future__ import annotations

from collections.abc import Sequence

import io

import matplotlib.pyplot as plt
import numpy as np
import torch


ALT_TEXT_KEY = "Description"  # the PNG text chunk the book's extension reads as the image's alt text


def show(fig: plt.Figure, alt: str) -> None:
    """Display ``fig`` in the notebook with ``alt`` (what it shows, in words) as its alt text.

    The text travels inside the PNG (a ``Description`` chunk); the book's Sphinx extension makes it
    the ``alt`` attribute of the image, so a screen reader can describe the figure.
    """
    if not isinstance(alt, str) or len(alt.split()) < 4:
        raise ValueError(f"alt must say in words what the figure shows (4 words or more), got {alt!r}")
    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", metadata={ALT_TEXT_KEY: alt})
    plt.close(fig)
    display(Image(data=buffer.getvalue(), format="png"))


def alt_text(png: bytes | str) -> str | None:
    """The alt text :func:`show` stored in a PNG (bytes or a path), or None."""
    from PIL import Image

    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as image:
        return getattr(image, "text", {}).get(ALT_TEXT_KEY)


def _as_matrix(weights: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    matrix = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (query, key) matrix, got shape {matrix.shape}")
    return matrix


def plot_attention(
    weights: torch.Tensor | np.ndarray,
    tokens: Sequence[str],
    title: str,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Heatmap of one attention matrix ``(seq, seq)``: rows are queries, columns keys."""
    matrix = _as_matrix(weights, "weights")
    if matrix.shape != (len(tokens), len(tokens)):
        raise ValueError(
            f"weights must be ({len(tokens)}, {len(tokens)}) for {len(tokens)} tokens, "
            f"got {matrix.shape}"
        )
    ax = ax or plt.subplots(figsize=(5, 4.5))[1]
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=float(matrix.max()) or 1.0)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90)
    ax.set_yticks(range(len(tokens)), tokens)
    ax.set_xlabel("key (attended-to token)")
    ax.set_ylabel("query (attending token)")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label="attention weight (0–1)")
    return ax


def plot_mask(mask: torch.Tensor | np.ndarray, title: str, ax: plt.Axes | None = None,
              row_label: str = "query position", col_label: str = "key position") -> plt.Axes:
    """Draw a boolean "may attend" matrix: filled = allowed, white = masked (−inf)."""
    matrix = _as_matrix(mask, "mask").astype(float)
    ax = ax or plt.subplots(figsize=(3, 3))[1]
    ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    ax.set_title(title)
    return ax
