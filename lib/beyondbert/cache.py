"""Train once per book build: a small on-disk cache for work several pages share (a tiny model).

``cached("tiny-gpt", config, train)`` returns what ``train()`` returned the first time it ran with
this ``config`` in this build, loaded from ``_build/cache/`` (``make book`` empties the folder,
so every clean build trains for real). The value must be something ``torch.save`` can store
(tensors, state dicts, lists and dicts of numbers).

The book executes two pages at a time, so two pages may ask for the same work at once: the
build-or-load step holds an exclusive file lock per cache entry (``<key>.lock`` beside the
``.pt`` file). The first page builds and saves; a page that asks meanwhile waits for the lock and
then reads the saved file, whatever order the pages run in. A ``build()`` that raises leaves no
file, so the next page to ask builds again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .results import results_dir

_held = threading.local()  # the keys this thread is building now (a nested ask would deadlock)


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
    """``build()``'s result for ``config``, computed once per build and then read from disk.

    Safe across processes: pages executing at the same time build a given entry once (the others
    wait for it, then load it).
    """
    key = cache_key(name, config)
    path = cache_dir() / f"{key}.pt"
    if path.is_file():  # written whole (renamed into place), so no lock is needed to read it
        return torch.load(path, weights_only=False)
    held = getattr(_held, "keys", None)
    if held is None:
        held = _held.keys = set()
    if key in held:
        raise RuntimeError(f"cached({name!r}, ...) was asked for again while its own build() "
                           f"runs: build() must not depend on its own result")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on an error
        if path.is_file():  # another page built it while this one waited
            return torch.load(path, weights_only=False)
        held.add(key)
        try:
            value = build()
        finally:
            held.discard(key)
        partial = path.with_suffix(f".partial-{os.getpid()}")
        torch.save(value, partial)
        partial.replace(path)  # never leave a half-written file where a later page would read it
    return value
