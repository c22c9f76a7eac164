"""Recording measured figures for the results page."""

import json

import pytest

from beyondbert.results import record, results_dir


def test_record_writes_one_row_per_name(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_RESULTS_DIR", str(tmp_path))
    assert record("01-x", "rho", 0.5, "Spearman") == 0.5
    record("01-x", "speedup", 3.0, "x", published=2.0, source="Someone et al., 2020", setting="CPU")
    record("01-x", "rho", 0.6)
    rows = json.loads((tmp_path / "01-x.json").read_text())
    assert rows["rho"]["value"] == 0.6
    assert rows["speedup"]["published"] == 2.0


def test_record_rejects_bad_values(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_RESULTS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="finite"):
        record("01-x", "nan", float("nan"))
    with pytest.raises(ValueError, match="source"):
        record("01-x", "p", 1.0, published=2.0)


def test_results_dir_found_from_book_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("BEYONDBERT_RESULTS_DIR", raising=False)
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    (tmp_path / "chapters").mkdir()
    assert results_dir(tmp_path / "chapters") == tmp_path / "_build" / "results"
