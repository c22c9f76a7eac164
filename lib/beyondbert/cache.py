"""Train once per book build: a small on-disk cache for work several pages share (a tiny model).

``cached("tiny-gpt", config, train)`` returns what ``train()`` returned the first time it ran with
this ``config`` in this build, loaded from ``_build/cache/`` (``make book`` empties the folder,
so every clean build trains for real). The value must be something ``torch.save`` can store
(tensors, state dicts, lists and dicts of numbers).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .results import results_dir


def cache_dir() -> Path:
    """``$BEYONDBERT_CACHE_DIR``, else ``_build/cache`` of the book."""
    if os.environ.get("BEYONDBERT_CACHE_DIR"):
        return Path(os.environ["BEYONDBERT_CACHE_DIR"])
    return results_dir().parent / "cache"


def cache_key(name: str, config: dict) -> str:
    """``name`` plus a short hash of ``config`` (a JSON-able dict of what the result depends on)."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"cache name must be letters, digits, '-' or '_', got {name!r}")
    try:
        text = json.dumps(config, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"cache config must be JSON-serialisable (numbers, strings, lists, dicts): "
                        f"{err}") from err
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def cached(name: str, config: dict, build: Callable[[], Any]) -> Any:
    """``build()``'s result for ``config``, computed once per build and then read from disk."""
    path = cache_dir() / f"{cache_key(name, config)}.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(value, partial)
    partial.replace(path)  # never leave a half-written file where a later page would read it
    return value
