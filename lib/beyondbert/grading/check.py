"""A student's check before handing in: the visible tests, run the way the grader runs them.

``beyondbert check exercises/NN-slug.ipynb`` (and nbgrader's *Validate* button, once
:func:`use_course_check_in_validator` is called from the student's ``nbgrader_config.py``) runs
the notebook through the grader's own execute step, ``beyondbert.sandbox.executor.SandboxedExecute``:
answer cells in the sandbox (the exercise's forbidden modules hidden), test cells outside it,
every value crossing as plain data. What differs from grading:

* the test cells are the *released* ones (``exercises/NN-slug.ipynb``, restored by grade id as
  nbgrader restores them when grading), which hold no hidden test: no hidden test runs;
* nothing is written to a gradebook or to the notebook's folder (the run works on a copy);
* where no bubblewrap sandbox can start (Colab, a laptop without user namespaces) the student's
  own code runs unsandboxed, as the student, with the forbidden modules still hidden.

The verdict is per task (the notebook's ``## Task N`` headings) and per test cell: passed, failed
with the message grading would show, or "hidden" (a cell whose tests are all hidden: decided at
grading).
"""

from __future__ import annotations

import ast
import copy
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .errors import GradingError
from .exercises import find_repo, list_exercises

HIDE_ENV = "BEYONDBERT_HIDE_MODULES"  # the unsandboxed worker hides these (comma-separated)
MAX_FOLDER_BYTES = 200 * 1024 * 1024
_TASK = re.compile(r"^#{1,3}\s*(Task\s+\S+?)[:.]?\s+(.*?)\s*$", re.MULTILINE)
_SKIP = shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__", ".git",
                               ".beyondbert-*")


@dataclass
class CellVerdict:
    """One test cell: ``status`` is "passed", "failed" or "hidden" (no visible test in it)."""

    grade_id: str
    task: str
    points: float
    status: str
    message: str = ""


@dataclass
class CheckResult:
    """What ``beyondbert check`` found: one verdict per test cell, in notebook order."""

    exercise: str
    cells: list[CellVerdict]
    flags: list[str] = field(default_factory=list)
    sandboxed: bool = True
    restored: bool = True  # the test cells were restored from the released version

    @property
    def visible_points(self) -> float:
        return sum(c.points for c in self.cells if c.status != "hidden")

    @property
    def passed_points(self) -> float:
        return sum(c.points for c in self.cells if c.status == "passed")

    @property
    def hidden_points(self) -> float:
        return sum(c.points for c in self.cells if c.status == "hidden")

    @property
    def ok(self) -> bool:
        return not self.flags and all(c.status != "failed" for c in self.cells)

    def tasks(self) -> dict[str, list[CellVerdict]]:
        out: dict[str, list[CellVerdict]] = {}
        for cell in self.cells:
            out.setdefault(cell.task, []).append(cell)
        return out

    def as_dict(self) -> dict:
        return {"exercise": self.exercise, "visible_points": self.visible_points,
                "passed_points": self.passed_points, "hidden_points": self.hidden_points,
                "sandboxed": self.sandboxed, "flags": list(self.flags),
                "cells": [vars(c) for c in self.cells]}


# ------------------------------------------------------------------------ the notebook
def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_test_cell(cell) -> bool:
    meta = _nbgrader(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _grade_ids(nb) -> list[str]:
    return [_nbgrader(c)["grade_id"] for c in nb.cells if is_test_cell(c)]


def has_visible_test(source: str) -> bool:
    """Whether a released test cell still holds code (its hidden tests were removed)."""
    try:
        return bool(ast.parse(source).body)
    except SyntaxError:
        return True  # it runs, and fails, as it is


def find_exercise(notebook: Path, nb, repo: Path | None) -> str | None:
    """The exercise a student notebook belongs to: its file or folder name when that is an
    exercise, else the exercise whose released version has the same test cells."""
    if repo is None:
        return None
    known = list_exercises(repo)
    for name in (notebook.stem, notebook.parent.name):
        if name in known:
            return name
    ids = set(_grade_ids(nb))
    for name in known:
        released = repo / "exercises" / f"{name}.ipynb"
        if ids and released.is_file() and set(_grade_ids(nbformat.read(released, 4))) == ids:
            return name
    return None


def restore_released_cells(nb, released) -> int:
    """Put back the released source of every locked cell and test cell, by grade id (as nbgrader
    does when grading); returns how many were restored."""
    sources = {_nbgrader(c).get("grade_id"): c.source for c in released.cells
               if _nbgrader(c).get("grade_id")
               and (is_test_cell(c) or _nbgrader(c).get("locked"))}
    restored = 0
    for cell in nb.cells:
        meta = _nbgrader(cell)
        if meta.get("grade_id") in sources and (is_test_cell(cell) or meta.get("locked")):
            cell.source = sources[meta["grade_id"]]
            restored += 1
    return restored


def task_names(nb) -> dict[int, str]:
    """``{cell index: task}``: each cell's task is the last ``## Task N: title`` heading above it."""
    names, current = {}, "before the first task"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            match = _TASK.search(cell.source)
            if match:
                current = f"{match.group(1)}: {match.group(2)}"
        names[i] = current
    return names


# -------------------------------------------------------------------- the grader's path
def course_config(repo: Path | None):
    """The ``SandboxedExecute`` settings of the course's ``nbgrader_config.py`` (a traitlets
    Config; empty without a repository)."""
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    if repo is None or not (repo / "nbgrader_config.py").is_file():
        return Config()
    loader = PyFileConfigLoader("nbgrader_config.py", path=str(repo))
    full = loader.load_config()
    config = Config()
    if "SandboxedExecute" in full:
        config.SandboxedExecute = full.SandboxedExecute
    return config


def _copy_folder(folder: Path, target: Path) -> None:
    """The files beside the notebook (what a submission would hold), without notebooks."""
    size = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.suffix != ".ipynb":
            size += path.stat().st_size
            if size > MAX_FOLDER_BYTES:
                raise GradingError(f"the notebook's folder {folder} holds over "
                                   f"{MAX_FOLDER_BYTES >> 20} MB: put the notebook (and the "
                                   f"files it reads) in a folder of its own")
    shutil.copytree(folder, target, symlinks=True, ignore=_SKIP, dirs_exist_ok=True)


def run_as_graded(nb, folder: Path, exercise: str, repo: Path | None,
                  unsafe_no_sandbox: bool | None = None) -> tuple[object, list[str], bool]:
    """Execute ``nb`` (a copy is made) as the grader does, with the files of ``folder``:
    ``(executed notebook, flags, sandboxed)``. ``unsafe_no_sandbox=None`` runs sandboxed where a
    sandbox can start, else unsandboxed (the student's own code, on their own machine)."""
    import json

    from ..sandbox.executor import SandboxedExecute
    from ..sandbox.launcher import sandbox_problem
    from ..sandbox.session import FLAGS_FILE

    if unsafe_no_sandbox is None:
        unsafe_no_sandbox = sandbox_problem() is not None
    config = course_config(repo)
    executor = SandboxedExecute(config=config, unsafe_no_sandbox=unsafe_no_sandbox)
    hidden = list(executor.forbidden_modules.get(exercise, ()))
    nb = copy.deepcopy(nb)
    previous = os.environ.get(HIDE_ENV)
    with tempfile.TemporaryDirectory(prefix="beyondbert-check-") as tmp:
        work = Path(tmp) / "submission"
        _copy_folder(folder, work)
        resources = {"metadata": {"path": str(work)}, "nbgrader": {"assignment": exercise}}
        if unsafe_no_sandbox:
            os.environ[HIDE_ENV] = ",".join(hidden)
        try:
            nb, _ = executor.preprocess(nb, resources)
        finally:
            if unsafe_no_sandbox:
                if previous is None:
                    os.environ.pop(HIDE_ENV, None)
                else:
                    os.environ[HIDE_ENV] = previous
        flags_file = work / FLAGS_FILE
        flags = json.loads(flags_file.read_text()) if flags_file.is_file() else []
    return nb, [str(f) for f in flags], not unsafe_no_sandbox


def _verdicts(executed, released_sources: dict[str, str]) -> list[CellVerdict]:
    tasks = task_names(executed)
    verdicts = []
    for i, cell in enumerate(executed.cells):
        if not is_test_cell(cell):
            continue
        meta = _nbgrader(cell)
        grade_id, points = meta["grade_id"], float(meta.get("points", 0))
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        stderr = [o for o in cell.outputs if o.get("output_type") == "stream"
                  and o.get("name") == "stderr"]
        if not has_visible_test(released_sources.get(grade_id, cell.source)):
            verdicts.append(CellVerdict(grade_id, tasks[i], points, "hidden"))
        elif errors:
            ename, evalue = errors[0].get("ename", "Error"), errors[0].get("evalue", "")
            verdicts.append(CellVerdict(grade_id, tasks[i], points, "failed",
                                        f"{ename}: {evalue}" if evalue else ename))
        elif stderr:
            verdicts.append(CellVerdict(grade_id, tasks[i], points, "failed",
                                        "the test printed to stderr (scores 0)"))
        else:
            verdicts.append(CellVerdict(grade_id, tasks[i], points, "passed"))
    return verdicts


def check_notebook(notebook: str | Path, repo: Path | None = None, exercise: str | None = None,
                   unsafe_no_sandbox: bool | None = None) -> CheckResult:
    """Run a student's notebook and its *visible* tests the way grading does; nothing is
    written anywhere. ``repo`` is the course repository (found when None, if there is one)."""
    notebook = Path(notebook)
    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as err:
        raise GradingError(f"cannot read {notebook} as a notebook: {err}") from None
    if repo is None:
        try:
            repo = find_repo()
        except GradingError:
            repo = None
    exercise = exercise or find_exercise(notebook.resolve(), nb, repo)
    if exercise is None:
        raise GradingError(f"cannot tell which exercise {notebook} is: pass --exercise NAME"
                           + (f" (one of {', '.join(list_exercises(repo))})" if repo else ""))
    released_path = repo / "exercises" / f"{exercise}.ipynb" if repo else None
    restored = released_path is not None and released_path.is_file()
    missing = []
    if restored:
        released = nbformat.read(released_path, as_version=4)
        restore_released_cells(nb, released)
        tasks, present = task_names(released), set(_grade_ids(nb))
        missing = [CellVerdict(_nbgrader(c)["grade_id"], tasks[i],
                               float(_nbgrader(c).get("points", 0)), "failed",
                               "this test cell is missing from your notebook: grading gives it 0 "
                               "(copy it back from the released exercise)")
                   for i, c in enumerate(released.cells)
                   if is_test_cell(c) and _nbgrader(c)["grade_id"] not in present]
    sources = {_nbgrader(c)["grade_id"]: c.source for c in nb.cells if is_test_cell(c)}
    executed, flags, sandboxed = run_as_graded(nb, notebook.resolve().parent, exercise, repo,
                                               unsafe_no_sandbox)
    return CheckResult(exercise, _verdicts(executed, sources) + missing, flags, sandboxed,
                       restored)


def _points(x: float) -> str:
    return f"{x:g}"


def format_result(result: CheckResult) -> str:
    """The verdict as the student reads it: per task, each test cell, why a failed one failed."""
    lines = [f"{result.exercise}: the visible tests give {_points(result.passed_points)} of "
             f"{_points(result.visible_points)} points"
             + (f"; {_points(result.hidden_points)} more "
                f"{'point is' if result.hidden_points == 1 else 'points are'} decided by hidden "
                f"tests when graded" if result.hidden_points else "")]
    width = max((len(c.grade_id) for c in result.cells), default=0)
    for task, cells in result.tasks().items():
        passed = sum(c.points for c in cells if c.status == "passed")
        visible = sum(c.points for c in cells if c.status != "hidden")
        lines.append(f"\n{task}  [{_points(passed)}/{_points(visible)} visible points]")
        for c in cells:
            if c.status == "hidden":
                lines.append(f"  hidden  {c.grade_id:<{width}}  {_points(c.points)} "
                             f"point{'' if c.points == 1 else 's'}, tested when graded")
            elif c.status == "passed":
                lines.append(f"  passed  {c.grade_id:<{width}}  {_points(c.points)}/"
                             f"{_points(c.points)}")
            else:
                lines.append(f"  FAILED  {c.grade_id:<{width}}  0/{_points(c.points)}  "
                             f"{c.message}")
    for flag in result.flags:
        lines.append(f"\nFLAGGED: {flag}")
    notes = []
    if not result.sandboxed:
        notes.append("no bubblewrap sandbox here: your code ran unsandboxed (as you); grading "
                     "runs it in the sandbox, with the same conversion of returned values")
    if not result.restored:
        notes.append("the released exercise was not found: the test cells ran as they are in "
                     "your notebook (grading uses the released ones)")
    lines += [f"\nNote: {n}" for n in notes]
    return "\n".join(lines)


# --------------------------------------------------------------- nbgrader's Validate button
def _validate_preprocessor():
    from nbgrader.preprocessors import NbGraderPreprocessor

    class CourseCheck(NbGraderPreprocessor):
        """nbgrader's Validate, the course's way: the notebook in the current folder (where the
        Validator runs it) executed as ``beyondbert check`` does."""

        def preprocess(self, nb, resources):
            folder = Path.cwd()
            try:
                repo = find_repo()
            except GradingError:
                repo = None
            exercise = find_exercise(folder / "notebook.ipynb", nb, repo) or folder.name
            if repo is not None and (repo / "exercises" / f"{exercise}.ipynb").is_file():
                restore_released_cells(nb, nbformat.read(
                    repo / "exercises" / f"{exercise}.ipynb", as_version=4))
            executed, flags, _ = run_as_graded(nb, folder, exercise, repo)
            for flag in flags:
                print(f"beyondbert check: {flag}", file=sys.stderr)
            return executed, resources

    return CourseCheck


def use_course_check_in_validator() -> None:
    """Make nbgrader's Validator (the *Validate* button, ``nbgrader validate``) execute notebooks
    the course's way. Call it from the student's ``nbgrader_config.py``; nbgrader's Validator has
    no setting for its execute step, so its default list of steps is replaced."""
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput
    from nbgrader.validator import Validator

    steps = [CheckCellMetadata, ClearOutput, _validate_preprocessor()]
    Validator.class_traits()["preprocessors"].default_value = steps
