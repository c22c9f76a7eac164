"""Recording measured figures for the results page."""

import json
from pathlib import Path

import pytest

from beyondbert.results import record, results_dir


def test_record_writes_one_row_per_name(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_RESULTS_DIR", str(tmp_path))
    assert record("01-x", "rho", 0.5, "Spearman", label="Spearman ρ") == 0.5
    record("01-x", "speedup", 3.0, "x", label="Speed-up", section="Timing", published=2.0,
           source="Someone et al., 2020", setting="GPU", our_setting="CPU")
    record("01-x", "rho", 0.6, label="Spearman ρ")
    rows = json.loads((tmp_path / "01-x.json").read_text())
    assert rows["rho"]["value"] == 0.6
    assert rows["speedup"]["published"] == 2.0
    assert rows["speedup"]["section"] == "Timing" and rows["speedup"]["our_setting"] == "CPU"


def test_record_rejects_bad_values(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_RESULTS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="finite"):
        record("01-x", "nan", float("nan"), label="x")
    with pytest.raises(ValueError, match="source"):
        record("01-x", "p", 1.0, label="p", published=2.0)
    with pytest.raises(ValueError, match="source"):
        record("01-x", "p", 1.0, label="p", source="Someone et al., 2020")
    with pytest.raises(ValueError, match="label"):
        record("01-x", "p", 1.0)


def test_results_dir_found_from_book_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("BEYONDBERT_RESULTS_DIR", raising=False)
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    (tmp_path / "chapters").mkdir()
    assert results_dir(tmp_path / "chapters") == tmp_path / "_build" / "results"


def test_every_chapter_recorded_figures_in_the_book_build():
    """After the book build, each chapter's results file exists and holds at least one figure."""
    book = Path(__file__).resolve().parents[1]
    folder = book / "_build" / "results"
    if not (book / "_build" / "html" / "index.html").is_file():
        pytest.fail("the book is not built: run `make book` (or `make test`) first")
    chapters = sorted(p.name for p in (book / "chapters").glob("[0-9]*") if p.is_dir())
    assert chapters, "no chapters/NN-slug folders"
    missing = [c for c in chapters if not (folder / f"{c}.json").is_file()
               or not json.loads((folder / f"{c}.json").read_text())]
    assert not missing, f"chapters that recorded no figure while the book executed: {missing}"


def test_every_chapter_compares_with_the_literature_in_the_book_build():
    """Each chapter reproduces at least one published figure and records it with published=.

    A record that names a paper's setting but no published number is a comparison with the
    literature that the results page would not show beside the paper's figure.
    """
    book = Path(__file__).resolve().parents[1]
    folder = book / "_build" / "results"
    if not (book / "_build" / "html" / "index.html").is_file():
        pytest.fail("the book is not built: run `make book` (or `make test`) first")
    problems = []
    for path in sorted(folder.glob("*.json")):
        rows = json.loads(path.read_text())
        if not any(r.get("published") is not None for r in rows.values()):
            problems.append(f"{path.stem}: no figure recorded with published= and source=")
        for name, r in rows.items():
            if not r.get("label"):
                problems.append(f"{path.stem}/{name}: no label")
            if r.get("setting") and r.get("published") is None:
                problems.append(f"{path.stem}/{name}: a paper's setting without its published=")
    assert not problems, "\n".join(problems)


def test_page_recorder_records_and_glues_formatted_text(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_RESULTS_DIR", str(tmp_path))
    glued = {}
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: repr(value)}))
    from beyondbert.results import glue_text, page_recorder

    rec = page_recorder("05-x", section="LoRA")
    assert rec("lora_acc", 0.8612, "share", label="LoRA accuracy", fmt="{:.1%}") == 0.8612
    rows = json.loads((tmp_path / "05-x.json").read_text())
    assert rows["lora_acc"]["section"] == "LoRA" and rows["lora_acc"]["unit"] == "share"
    assert glued["lora_acc"] == "86.1%"  # the text the prose shows, without quotes
    assert glue_text("steps", 1200, "{:,}") == "1,200" and glued["steps"] == "1,200"
    with pytest.raises(ValueError, match="glue name"):
        glue_text("two words", 1.0)


def test_quoted_figures_have_no_value_and_comparable_needs_a_paper(tmp_path, monkeypatch):
    from beyondbert.results import quote

    monkeypatch.setenv("BEYONDBERT_RESULTS_DIR", str(tmp_path))
    assert quote("07-x", "gsm8k", 56.9, "%", label="GSM8K, chain of thought",
                 source="Wei et al., 2022", setting="PaLM 540B") == 56.9
    record("07-x", "share", 0.15, "share", label="masked share", published=0.15,
           source="Devlin et al., 2019", setting="BERT", comparable=True)
    rows = json.loads((tmp_path / "07-x.json").read_text())
    assert rows["gsm8k"]["value"] is None and rows["gsm8k"]["published"] == 56.9
    assert rows["share"]["comparable"] is True
    with pytest.raises(ValueError, match="comparable=True needs"):
        record("07-x", "p", 1.0, label="p", comparable=True)
    with pytest.raises(ValueError, match="label, its source and its setting"):
        quote("07-x", "q", 1.0, label="q", source="Someone, 2020", setting="")


def test_results_page_kinds_and_units():
    from beyondbert.book import _fmt, _kind, chapter_title

    assert _kind({"published": 56.9, "value": None}) == "quoted"
    assert _kind({"published": 0.15, "value": 0.1502}) == "compared"
    assert _kind({"published": None, "value": 3.0}) == "measured"
    assert _fmt(0.725, "share") == "72.5 %" and _fmt(1.9234, "x") == "1.923 x"
    assert chapter_title("05-finetuning-distillation-lora") == "5 · Fine-tuning, distillation and LoRA"
