"""Shared test set-up: offline, where the course repository is, and work done once per run."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # also for the nbgrader subprocesses

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    """The course repository (the folder holding _toc.yml, solutions/ and exercises/)."""
    return REPO


@pytest.fixture(scope="session")
def run_once(tmp_path_factory, request) -> Callable[[str, Callable[[Path], object]], object]:
    """``run_once(key, compute)``: ``compute(folder)``'s JSON result, computed once per test run.

    Under pytest-xdist the first worker to ask computes it; the others wait and read the same
    result (xdist's recipe for once-only fixtures). Grouping with ``xdist_group`` alone is not
    enough: with pytest 9.2, ``--dist loadgroup`` no longer keeps a group on one worker
    (pytest-dev/pytest-xdist#1386), so slow grading runs would otherwise repeat per worker.
    """
    root = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: share its siblings' folder
        root = root.parent

    def run(key: str, compute: Callable[[Path], object]) -> object:
        result_file = root / f"once-{key}.json"
        with open(root / f"once-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not result_file.is_file():
                folder = root / f"once-{key}"
                shutil.rmtree(folder, ignore_errors=True)  # left over if a first try failed
                folder.mkdir()
                result_file.write_text(json.dumps(compute(folder)))
            return json.loads(result_file.read_text())

    return run
