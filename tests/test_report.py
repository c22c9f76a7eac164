"""The class report (issue 24, item 5), tried on a class of 30: full solutions, the exercise's
mutants, untouched student versions, a generic attack and two files that cannot be graded.

The class is released, autograded and reported once per test run with the ``beyondbert``
console script (as an instructor would); the page is then opened in headless Chromium with the
network closed and checked as the book's pages are (no console error, axe-core finds no WCAG 2
A/AA violation).
"""

from __future__ import annotations

import csv
import functools
import io
import os
import runpy
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from notebooks import generic_attack_answers, solution_answers, write_answers

REPO = Path(__file__).resolve().parents[1]
EXERCISE = "02-roberta-and-modern-encoders"
NOTEBOOK = f"{EXERCISE}.ipynb"
_SCRIPT = Path(sys.executable).parent / "beyondbert"
COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "beyondbert.cli"]
CLASS_SIZE = 30

pytestmark = pytest.mark.xdist_group("report")


def beyondbert(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def place(course: Path, student: str, notebook: Path, name: str = NOTEBOOK) -> None:
    target = course / "submitted" / student / EXERCISE / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)


def build_class(work: Path) -> dict:
    """Release the exercise, hand in 30 submissions, autograde them, write the report."""
    course = work / "course"
    steps = {"release": beyondbert("release", EXERCISE, "--course", course, cwd=work)}
    released = course / "release" / EXERCISE / NOTEBOOK
    solution = REPO / "solutions" / NOTEBOOK
    answers = solution_answers(solution)
    mutants = runpy.run_path(str(REPO / "tests" / "mutants" / f"{EXERCISE}.py"))["MUTANTS"]
    kinds = {}
    for i in range(10):
        kinds[f"s{i + 1:02d}"] = ("solution", write_answers(released, answers,
                                                            work / "solution.ipynb"))
    for i, (name, replacement) in enumerate(sorted(mutants.items())[:15]):
        kinds[f"s{i + 11:02d}"] = (f"mutant {name}", write_answers(
            released, dict(answers, **replacement), work / f"mutant-{name}.ipynb"))
    kinds["s26"] = ("untouched", released)
    kinds["s27"] = ("untouched", released)
    kinds["s28"] = ("generic attack", write_answers(released, generic_attack_answers(solution),
                                                    work / "attack.ipynb"))
    (work / "broken.ipynb").write_text('{"cells": [ this is not JSON')
    kinds["s29"] = ("broken file", work / "broken.ipynb")
    kinds["s30"] = ("wrong name", released)
    for student, (kind, notebook) in kinds.items():
        place(course, student, notebook, "my-answers.ipynb" if kind == "wrong name" else NOTEBOOK)
    steps["autograde"] = beyondbert("autograde", EXERCISE, "--course", course, "--jobs", "2",
                                    cwd=work)
    steps["report"] = beyondbert("report", EXERCISE, "--course", course, cwd=work)
    return {"course": str(course), "kinds": {s: k for s, (k, _) in kinds.items()},
            "steps": {name: {"returncode": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
                      for name, p in steps.items()}}


@pytest.fixture(scope="module")
def graded_class(run_once):
    done = run_once("class-report", build_class)
    done["folder"] = Path(done["course"]) / "reports" / EXERCISE
    return done


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_report_is_written_from_the_gradebook_of_30(graded_class):
    steps = graded_class["steps"]
    assert steps["release"]["returncode"] == 0, steps["release"]["stderr"]
    assert steps["autograde"]["returncode"] == 1  # two submissions are flagged
    assert steps["report"]["returncode"] == 0, steps["report"]["stderr"]
    folder = graded_class["folder"]
    for name in ("report.html", "students.csv", "cells.csv"):
        assert str(folder / name) in steps["report"]["stdout"]
    students = {row["student"]: row for row in read_csv(folder / "students.csv")}
    assert len(students) == CLASS_SIZE
    kinds = graded_class["kinds"]
    full = float(students["s01"]["max_score"])
    for student, kind in kinds.items():
        score = float(students[student]["score"])
        if kind == "solution":
            assert score == full and not students[student]["flagged"]
        elif kind.startswith("mutant"):
            assert 0 < score < full, (student, kind, score)
        elif kind in ("untouched", "generic attack"):
            assert score < full / 2, (student, kind, score)
        else:  # a broken file, a wrong name: not graded, flagged, 0
            assert score == 0 and students[student]["flagged"].startswith("not graded"), kind
    cells = read_csv(folder / "cells.csv")
    assert sum(float(c["points"]) for c in cells) == full
    for cell in cells:  # every student who did not pass a cell lost it; the solutions never do
        lost = sum(1 for s in students.values() if cell["cell"] in s["failed_cells"].split())
        assert int(cell["students_lost"]) == lost
        assert 4 <= lost <= CLASS_SIZE - 10
    assert any(c["hidden"] == "True" for c in cells) and any(c["hidden"] == "False" for c in cells)


def test_the_page_shows_a_real_histogram_with_alt_text_and_the_class_s_struggles(graded_class):
    import base64
    import re

    import numpy as np
    from PIL import Image

    html = (graded_class["folder"] / "report.html").read_text()
    [(src, alt)] = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', html)
    assert f"scores of {CLASS_SIZE} students" in alt and "median" in alt
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("L"))
    assert image.shape[0] > 200 and image.shape[1] > 400 and len(np.unique(image)) > 20
    for heading in ("Where the class lost points", "What students saw", "Flagged submissions",
                    "Time spent grading"):
        assert f"<h2>{heading}</h2>" in html
    assert "s29" in html and "s30" in html and "not graded" in html
    assert "Hidden tests failed" in html and "per submission" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_the_report_passes_the_browser_checks(graded_class):
    if os.environ.get("BEYONDBERT_SKIP_BROWSER") == "1":
        pytest.skip("BEYONDBERT_SKIP_BROWSER=1")
    from test_browser import AXE_JS, AXE_RUN_JS, CHROMIUM, CHROMIUM_ARGS, visit

    if not AXE_JS.is_file() or not Path(CHROMIUM).exists():
        pytest.fail(f"{AXE_JS} or {CHROMIUM} is missing: run scripts/install-system-deps.sh and "
                    f"`npm ci --prefix tests/axe` (make test does)")
    from playwright.sync_api import sync_playwright

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        Quiet, directory=str(graded_class["folder"])))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_address[1]}/"

    def inspect(page) -> dict:
        page.add_script_tag(path=str(AXE_JS))
        return {"axe": page.evaluate(AXE_RUN_JS),
                "images": page.evaluate("[...document.images].map(i => i.naturalWidth)")}

    try:
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                result = visit(chromium, site, "report.html", inspect=inspect)
            finally:
                chromium.close()
    finally:
        server.shutdown()
        server.server_close()
    assert not result.error, result.error
    assert result.console_errors == [] and result.bad_requests == [] and result.external == []
    assert result.info["axe"] == [], result.info["axe"]
    assert result.info["images"] and all(width > 0 for width in result.info["images"])


def test_a_report_needs_a_graded_exercise(tmp_path):
    from beyondbert.grading.errors import GradingError
    from beyondbert.grading.report import write_report

    with pytest.raises(GradingError, match="not released"):
        write_report(EXERCISE, tmp_path)
