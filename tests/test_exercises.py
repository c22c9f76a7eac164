"""Every exercise is gradable, and its student version gives nothing away.

For each ``solutions/NN-slug.ipynb`` one temporary nbgrader course grades, in one autograde run:
the solution itself (full marks), the student version filled in with the solution's answers
(full marks), the untouched student version (0) and each wrong answer of
``tests/mutants/NN-slug.py`` (fewer points, and exactly the expected test cells fail).
"""

from __future__ import annotations

import runpy
from pathlib import Path

import nbformat
import pytest

from beyondbert.grading import generate_exercises, grade_submissions, list_exercises
from beyondbert.grading.gradebook import graded_cells
from notebooks import (MARKERS, answer_cells, generic_attack_answers, nbgrader_meta,
                       secret_regions, solution_answers, write_answers)

REPO = Path(__file__).resolve().parents[1]
EXERCISES = list_exercises(REPO)
MUTANT_FILES = {name: REPO / "tests" / "mutants" / f"{name}.py" for name in EXERCISES}

# Keep these tests on one worker where xdist can; `run_once` (conftest) grades each exercise
# once per run even where it cannot.
pytestmark = pytest.mark.xdist_group("exercises")


def load_mutants(exercise: str) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    """``(MUTANTS, FAILING)`` of ``tests/mutants/<exercise>.py``."""
    path = MUTANT_FILES[exercise]
    if not path.is_file():
        return {}, {}
    namespace = runpy.run_path(str(path))
    return namespace["MUTANTS"], namespace["FAILING"]


MUTANT_CASES = [(ex, name) for ex in EXERCISES for name in load_mutants(ex)[0]]


def grade_exercise(exercise: str, tmp: Path) -> dict:
    """Generate the student version, build every submission and autograde them all at once.

    Returns plain data: the fresh student version's path and ``{submission: result dict}``.
    """
    solution = REPO / "solutions" / f"{exercise}.ipynb"
    (student_version,) = generate_exercises(REPO, [exercise], out_dir=tmp / "fresh")
    answers = solution_answers(solution)
    submissions = {
        "solution": solution,
        "student_version": student_version,
        "filled_in": write_answers(student_version, answers, tmp / "filled_in.ipynb"),
    }
    submissions["generic_attacks"] = write_answers(student_version, generic_attack_answers(solution),
                                                   tmp / "generic_attacks.ipynb")
    mutants, _ = load_mutants(exercise)
    for name, replacement in mutants.items():
        submissions[f"mutant-{name}"] = write_answers(student_version, dict(answers, **replacement),
                                                      tmp / f"mutant-{name}.ipynb")
    results = grade_submissions(exercise, submissions, REPO)
    return {"student_version": str(student_version),
            "results": {name: result.as_dict() for name, result in results.items()}}


def failed(result: dict) -> list[str]:
    """The test cells of a result dict (``SubmissionResult.as_dict()``) that lost points."""
    return [t["name"] for t in result["tests"] if not t["passed"]]


@pytest.fixture(scope="module")
def graded(run_once):
    """``graded(exercise)``: the fresh student version and every submission's result dict."""
    return lambda exercise: run_once(f"graded-{exercise}",
                                     lambda folder: grade_exercise(exercise, folder))


def test_there_are_exercises():
    assert EXERCISES, "solutions/ holds no exercise notebook"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_solution_notebook_is_well_formed(exercise):
    nb = nbformat.read(REPO / "solutions" / f"{exercise}.ipynb", as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), \
        "the first cell must be the '# Title' markdown cell (the book needs it)"
    tests = [c for c in nb.cells if nbgrader_meta(c).get("grade")]
    answers = answer_cells(nb)
    assert answers and tests, "an exercise needs answer cells and graded test cells"
    for grade_id, cell in answers.items():
        assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, grade_id
    for cell in tests:
        meta = nbgrader_meta(cell)
        assert meta.get("locked") and meta.get("points", 0) > 0, meta["grade_id"]
    assert sum(nbgrader_meta(c)["points"] for c in tests) >= 10
    assert any("### BEGIN HIDDEN TESTS" in c.source for c in tests), "no hidden tests"


@pytest.mark.parametrize("exercise", EXERCISES)
def test_solution_gets_full_marks(graded, exercise):
    result = graded(exercise)["results"]["solution"]
    solution_tests = graded_cells(REPO / "solutions" / f"{exercise}.ipynb")
    assert [t["name"] for t in result["tests"]] == solution_tests
    assert failed(result) == [] and result["score"] == result["max_score"] >= 10


@pytest.mark.parametrize("exercise", EXERCISES)
def test_student_version_filled_in_with_the_solution_gets_full_marks(graded, exercise):
    result = graded(exercise)["results"]["filled_in"]
    assert failed(result) == [] and result["score"] == result["max_score"]


@pytest.mark.parametrize("exercise", EXERCISES)
def test_untouched_student_version_gets_zero(graded, exercise):
    result = graded(exercise)["results"]["student_version"]
    assert result["score"] == 0 and result["max_score"] >= 10
    assert len(failed(result)) == len(result["tests"])


@pytest.mark.parametrize("exercise", EXERCISES)
def test_generic_attacks_score_zero(graded, exercise):
    """Always-equal objects under every answer's names, with the assertion helpers patched out."""
    result = graded(exercise)["results"]["generic_attacks"]
    assert result["score"] == 0, f"the generic attacks earned {result['score']}: " + ", ".join(
        t["name"] for t in result["tests"] if t["passed"])


@pytest.mark.parametrize("exercise", EXERCISES)
def test_every_exercise_has_at_least_two_mutants(exercise):
    mutants, failing = load_mutants(exercise)
    assert len(mutants) >= 2, f"tests/mutants/{exercise}.py needs at least two wrong answers"
    assert set(failing) == set(mutants), "every mutant lists the test cells it must fail"


@pytest.mark.parametrize("exercise, mutant", MUTANT_CASES)
def test_mutant_loses_points(graded, exercise, mutant):
    results = graded(exercise)["results"]
    result, full = results[f"mutant-{mutant}"], results["solution"]
    expected = load_mutants(exercise)[1][mutant]
    assert result["score"] < full["score"], f"{mutant} kept full marks"
    assert set(failed(result)) == expected, (
        f"{mutant}: expected failures {sorted(expected)}, got {failed(result)}")


@pytest.mark.parametrize("exercise", EXERCISES)
def test_committed_student_version_equals_a_fresh_generation(graded, exercise):
    committed = REPO / "exercises" / f"{exercise}.ipynb"
    assert committed.is_file(), f"missing {committed}: run `beyondbert generate`"
    fresh = Path(graded(exercise)["student_version"])
    assert committed.read_bytes() == fresh.read_bytes(), (
        f"{committed} differs from a fresh generation: run `beyondbert generate {exercise}`")


@pytest.mark.parametrize("exercise", EXERCISES)
def test_student_version_hides_solutions_and_hidden_tests(exercise):
    solution = nbformat.read(REPO / "solutions" / f"{exercise}.ipynb", as_version=4)
    student_path = REPO / "exercises" / f"{exercise}.ipynb"
    student = nbformat.read(student_path, as_version=4)
    text = student_path.read_text()
    for marker in MARKERS:
        assert marker not in text, f"{marker!r} is in the student version"

    secret, visible = set(), set()
    for cell in solution.cells:
        inside, outside = secret_regions(cell.source)
        secret.update(inside)
        visible.update(outside)
    secret -= visible | {""}  # a line that is also visible elsewhere gives nothing away
    shown = {line.strip() for cell in student.cells for line in cell.source.splitlines()}
    leaked = sorted(secret & shown)
    assert not leaked, f"solution / hidden-test lines in the student version: {leaked}"

    for grade_id, cell in answer_cells(student).items():
        assert "raise NotImplementedError()" in cell.source, f"{grade_id} has no stub"
    for cell in student.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "outputs not cleared"


def _forbidden_names() -> dict[str, list[str]]:
    """``FORBIDDEN_NAMES`` of nbgrader_config.py (a literal), read without running the config."""
    import ast

    tree = ast.parse((REPO / "nbgrader_config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "FORBIDDEN_NAMES"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def test_forbidden_names_are_refused_in_the_set_up_cell_too():
    """What the sandbox refuses by name, the exercise's set-up cell refuses in the student's own
    kernel, so the visible tests show the same message before the student hands in."""
    import re

    forbidden = _forbidden_names()
    assert forbidden, "nbgrader_config.py defines no FORBIDDEN_NAMES"
    for exercise, names in forbidden.items():
        nb = nbformat.read(REPO / "solutions" / f"{exercise}.ipynb", as_version=4)
        (setup,) = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") == "setup"]
        call = re.search(r"refuse\((.*?)\)", setup.source, re.S)
        assert call, f"{exercise}: the set-up cell does not call refuse(...)"
        assert sorted(re.findall(r'"([^"]+)"', call.group(1))) == sorted(names), exercise


def test_the_sandbox_library_refuses_forbidden_names(tmp_path):
    """filtered_library drops the beyondbert modules and lists the other names; the worker's
    refuse_listed makes each of them raise ForbiddenFunction (in a fresh process)."""
    import subprocess
    import sys

    from beyondbert.sandbox.forbidden import NAMES_FILE
    from beyondbert.sandbox.launcher import filtered_library

    copy = filtered_library(tmp_path, ("beyondbert.quantization",
                                       "torch.fake_quantize_per_tensor_affine"))
    assert not (copy / "quantization.py").exists()
    assert (copy / NAMES_FILE).read_text().split() == ["torch.fake_quantize_per_tensor_affine"]
    script = (
        "import torch\n"
        "from beyondbert.sandbox.forbidden import ForbiddenFunction, refuse_listed\n"
        f"assert refuse_listed({str(copy)!r}) == ['torch.fake_quantize_per_tensor_affine']\n"
        "try:\n"
        "    torch.fake_quantize_per_tensor_affine(torch.ones(2), 0.1, 0, 0, 255)\n"
        "except ForbiddenFunction as err:\n"
        "    print('refused:', err)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "refused: torch.fake_quantize_per_tensor_affine is not allowed" in out.stdout, out.stderr
