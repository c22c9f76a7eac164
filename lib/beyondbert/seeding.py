"""One seeding helper for every notebook, test and grading run."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int = 0, threads: int | None = 2) -> None:
    """Seed Python, NumPy and PyTorch, and pin PyTorch to ``threads`` CPU threads.

    The course runs on 2 CPU cores, so notebooks use 2 threads; pass ``threads=None`` to leave
    PyTorch's thread count alone.
    """
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
