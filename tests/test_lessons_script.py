"""``make lessons``: the table counts the seeds on which each lesson held."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("lessons_script", ROOT / "scripts" / "lessons.py")
lessons_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lessons_script)


def test_table_counts_seeds_and_marks_failures(tmp_path, monkeypatch):
    monkeypatch.setattr(lessons_script, "WORK", tmp_path)
    page = ROOT / "chapters" / "07-x" / "rlhf.ipynb"
    for seed, held in [(1, True), (2, False), (3, True)]:
        folder = tmp_path / f"07-x--rlhf--seed{seed}"
        folder.mkdir()
        (folder / "lessons.jsonl").write_text(json.dumps(
            {"claim": "larger β keeps KL lower", "held": held, "seed": seed,
             "evidence": {"kl_low": 3.0 + seed, "kl_high": 9.0}}) + "\n")
    text, all_held = lessons_script.table([page], [1, 2, 3], {})
    assert not all_held
    row = [line for line in text.splitlines() if "larger β" in line][0]
    assert "| 2/3 |" in row and "seed 2: kl_low = 5, kl_high = 9 (FAILED)" in row


def test_a_page_that_failed_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(lessons_script, "WORK", tmp_path)
    page = ROOT / "chapters" / "07-x" / "rlhf.ipynb"
    text, all_held = lessons_script.table([page], [1], {(page, 1): "CellExecutionError"})
    assert not all_held and "page failed on seed 1" in text
