"""One seeding helper for every notebook, test and grading run."""

from __future__ import annotations

import os
import random

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
