"""Notebook helpers the exercise tests and the grading catalog share: answer cells, answers."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def answer_cells(nb) -> dict[str, nbformat.NotebookNode]:
    """``{grade_id: cell}`` of the autograded answer (solution) cells."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("solution")}


def without_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if not any(m in line for m in MARKERS))


def write_answers(student_version: Path, answers: dict[str, str], target: Path) -> Path:
    """Save ``student_version`` with answer cells replaced (``{grade_id: source}``)."""
    nb = nbformat.read(student_version, as_version=4)
    cells = answer_cells(nb)
    unknown = set(answers) - set(cells)
    assert not unknown, f"no answer cell with grade_id {sorted(unknown)} in {student_version}"
    for grade_id, source in answers.items():
        cells[grade_id].source = source.strip("\n")
    nbformat.write(nb, target)
    return target


def solution_answers(solution: Path) -> dict[str, str]:
    """``{grade_id: source}`` of a solution notebook's answer cells, markers removed."""
    return {gid: without_markers(cell.source)
            for gid, cell in answer_cells(nbformat.read(solution, as_version=4)).items()}


def secret_regions(source: str) -> tuple[list[str], list[str]]:
    """Split a cell's lines into (inside solution/hidden-test regions, outside them)."""
    inside, outside, depth = [], [], 0
    for line in source.splitlines():
        if "### BEGIN SOLUTION" in line or "### BEGIN HIDDEN TESTS" in line:
            depth += 1
        elif "### END SOLUTION" in line or "### END HIDDEN TESTS" in line:
            depth -= 1
        else:
            (inside if depth else outside).append(line.strip())
    return inside, outside


# The catalog's generic attacks, applied to any exercise: every name an answer cell defines
# becomes an object that equals anything, and the assertion helpers tests use are patched out.
GENERIC_ATTACK = """\
import numpy, torch


class AlwaysEqual:
    def __eq__(self, other):
        return True

    def __call__(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return self


torch.testing.assert_close = lambda *args, **kwargs: None
numpy.testing.assert_allclose = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
"""


def defined_names(source: str) -> list[str]:
    """Top-level functions, classes and assigned names of an answer cell."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
    return names


def generic_attack_answers(solution: Path) -> dict[str, str]:
    """``{grade_id: source}``: each answer cell patches the asserts and answers with
    always-equal objects under the names the solution defines."""
    return {gid: GENERIC_ATTACK + "\n".join(f"{name} = AlwaysEqual()"
                                             for name in defined_names(source))
            for gid, source in solution_answers(solution).items()}
