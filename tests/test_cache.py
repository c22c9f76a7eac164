"""Work shared by several pages is computed once per build and read back from disk."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from beyondbert.cache import cache_key, cached

REPO = Path(__file__).resolve().parents[1]


def test_cached_builds_once_per_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_CACHE_DIR", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return {"weights": torch.arange(3.0)}

    first = cached("tiny-model", {"steps": 10}, build)
    again = cached("tiny-model", {"steps": 10}, build)
    other = cached("tiny-model", {"steps": 20}, build)
    assert len(calls) == 2, "the same config must be read back, a new one built"
    assert torch.equal(first["weights"], again["weights"]) and torch.equal(other["weights"],
                                                                           first["weights"])
    files = sorted(p.suffix for p in tmp_path.iterdir() if p.suffix != ".lock")
    assert files == [".pt", ".pt"]  # no partial files


def test_cache_key_checks_its_inputs():
    assert cache_key("a", {"x": 1, "y": 2}) == cache_key("a", {"y": 2, "x": 1})
    with pytest.raises(ValueError, match="cache name"):
        cache_key("../escape", {})
    with pytest.raises(TypeError, match="JSON"):
        cache_key("a", {"x": object()})


def test_a_failed_build_leaves_nothing_and_the_next_ask_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_CACHE_DIR", str(tmp_path))

    def broken():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        cached("model", {}, broken)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.partial*"))
    assert cached("model", {}, lambda: 7) == 7  # the lock was released


def test_build_that_asks_for_itself_is_refused_not_deadlocked(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_CACHE_DIR", str(tmp_path))

    def build():
        return cached("loop", {}, build)

    with pytest.raises(RuntimeError, match="asked for again"):
        cached("loop", {}, build)
    assert cached("loop", {}, lambda: 1) == 1


PAGE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from beyondbert.cache import cached
    folder = Path(sys.argv[1])
    (folder / f"asking-{os.getpid()}").touch()

    def build():
        (folder / f"built-by-{os.getpid()}").touch()
        deadline = time.monotonic() + 60  # keep building until the other page asks too
        while len(list(folder.glob("asking-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        return {"pid": os.getpid()}

    print(cached("shared-work", {"seed": 0}, build)["pid"])
""")


def test_two_pages_at_once_build_once(tmp_path):
    """Two processes ask for the same entry at the same time: one builds, the other waits for
    it and reads the first one's result (not a second build, not a half-written file)."""
    script = tmp_path / "page.py"
    script.write_text(PAGE)
    env = {"BEYONDBERT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO / "lib"),
           "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    pages = [subprocess.Popen([sys.executable, script, tmp_path], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [page.communicate(timeout=300) for page in pages]
    for page, (out, err) in zip(pages, outputs):
        assert page.returncode == 0, err[-2000:]
    builders = list(tmp_path.glob("built-by-*"))
    assert len(list(tmp_path.glob("asking-*"))) == 2
    assert len(builders) == 1, f"built {len(builders)} times"
    builder = builders[0].name.removeprefix("built-by-")
    assert [out.strip() for out, _ in outputs] == [builder, builder]
