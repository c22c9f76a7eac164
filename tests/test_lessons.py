"""Lessons: a claim about measured numbers fails the build when its numbers deny it."""

import json

import numpy as np
import pytest
import torch

from beyondbert.lessons import LessonFailed, evidence_text, lesson
from beyondbert.seeding import page_seed, seed_sweep_active


@pytest.fixture
def book_run(tmp_path, monkeypatch):
    monkeypatch.setenv("BEYONDBERT_RESULTS_DIR", str(tmp_path))
    monkeypatch.delenv("BEYONDBERT_PAGE_SEED", raising=False)
    return tmp_path


def _rows(folder):
    return [json.loads(line) for line in (folder / "lessons.jsonl").read_text().splitlines()]


def test_a_lesson_that_holds_is_shown_as_checked(book_run, monkeypatch):
    from IPython import display as ipy_display

    shown = []
    monkeypatch.setattr(ipy_display, "display", lambda obj: shown.append(obj.data))
    assert lesson("LoRA is within 2 points of full fine-tuning", holds=True, lora=0.86, full=0.87)
    shown = shown[0]
    assert "Checked on this build" in shown and "lora = 0.86" in shown
    assert _rows(book_run) == [{"claim": "LoRA is within 2 points of full fine-tuning",
                                "held": True, "seed": 0,
                                "evidence": {"lora": 0.86, "full": 0.87}}]


def test_a_lesson_that_does_not_hold_fails_the_build(book_run):
    with pytest.raises(LessonFailed, match="do not support the sentence 'the student is faster'"):
        lesson("the student is faster", holds=0.99 > 1.5, speedup=0.99)
    assert _rows(book_run)[0]["held"] is False


def test_under_a_seed_sweep_a_failed_lesson_is_recorded_not_raised(book_run, monkeypatch, capsys):
    monkeypatch.setenv("BEYONDBERT_PAGE_SEED", "2")
    assert seed_sweep_active() and page_seed() == 2
    assert lesson("sudden", holds=False, width=360) is False
    assert "LESSON FAILED (seed 2): sudden | width = 360" in capsys.readouterr().out
    assert _rows(book_run)[0]["seed"] == 2


def test_numpy_and_torch_comparisons_count_as_conditions(book_run):
    assert lesson("a", holds=np.float64(2.0) > 1.0, x=np.float64(2.0))
    assert lesson("b", holds=torch.tensor(2.0) > 1.0, x=2.0)


@pytest.mark.parametrize("holds", [1, 0.5, "yes", None, torch.tensor([True, False]),
                                   np.array([True])])
def test_a_condition_must_be_one_bool(book_run, holds):
    with pytest.raises(TypeError, match="holds must be a bool"):
        lesson("x", holds=holds, a=1.0)


def test_a_lesson_names_its_claim_and_evidence(book_run):
    with pytest.raises(ValueError, match="claim"):
        lesson("  ", holds=True, a=1.0)
    with pytest.raises(ValueError, match="name the figures"):
        lesson("x", holds=True)
    with pytest.raises(TypeError, match="evidence curve must be a number"):
        lesson("x", holds=True, curve=[1, 2])


def test_evidence_text_is_short():
    assert evidence_text({"a": 0.123456, "n": 3, "label": "int8"}) == "a = 0.1235, n = 3, label = int8"


def test_page_seed_rejects_garbage(monkeypatch):
    monkeypatch.setenv("BEYONDBERT_PAGE_SEED", "two")
    with pytest.raises(ValueError, match="non-negative integer"):
        page_seed()
    monkeypatch.setenv("BEYONDBERT_PAGE_SEED", "")
    assert page_seed() == 0 and not seed_sweep_active()
