"""Work shared by several pages is computed once per build and read back from disk."""

import pytest
import torch

from beyondbert.cache import cache_key, cached


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
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".pt", ".pt"]  # no partial files


def test_cache_key_checks_its_inputs():
    assert cache_key("a", {"x": 1, "y": 2}) == cache_key("a", {"y": 2, "x": 1})
    with pytest.raises(ValueError, match="cache name"):
        cache_key("../escape", {})
    with pytest.raises(TypeError, match="JSON"):
        cache_key("a", {"x": object()})
