"""One seeding helper for every notebook, test and grading run."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def default_threads() -> int:
    """PyTorch threads a page gets unless it asks for a number: ``$BEYONDBERT_TORCH_THREADS``,
    else 2 (the course's 2 cores). The book build sets 1: it executes two pages at a time."""
    value = os.environ.get("BEYONDBERT_TORCH_THREADS", "").strip()
    if not value:
        return 2
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"BEYONDBERT_TORCH_THREADS must be a whole number >= 1, got {value!r}")
    return int(value)


def seed_everything(seed: int = 0, threads: int | None | str = "default") -> None:
    """Seed Python, NumPy and PyTorch, and pin PyTorch to ``threads`` CPU threads.

    By default :func:`default_threads` (2, or 1 in the book build, which runs two pages at
    once); pass ``threads=None`` to leave PyTorch's thread count alone.
    """
    if threads == "default":
        threads = default_threads()
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        torch.set_num_threads(threads)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """PyTorch on ``threads`` CPU threads inside the ``with`` block, the caller's count restored
    after it (``None``: left alone). Tiny models train fastest on one thread: their matrices are
    too small to share, and a second thread only waits (much longer on a busy machine)."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


SEED_VARIABLE = "BEYONDBERT_PAGE_SEED"


def page_seed(default: int = 0) -> int:
    """The seed every experiment of a page derives its seeds from.

    ``default`` (0) in the book; ``make lessons`` re-runs each page with ``BEYONDBERT_PAGE_SEED``
    set to other seeds, to check that the page's lessons do not rest on one lucky seed.
    """
    raw = os.environ.get(SEED_VARIABLE, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ValueError(f"{SEED_VARIABLE} must be a non-negative integer, got {raw!r}")
    return int(raw)


def seed_sweep_active() -> bool:
    """True while ``make lessons`` re-runs pages with another seed (lessons record, not raise)."""
    return bool(os.environ.get(SEED_VARIABLE, "").strip())
