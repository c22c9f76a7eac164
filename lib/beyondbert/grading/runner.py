"""Run submissions of one exercise and get per-test results — the step a sandbox will replace.

Today the submissions run the way nbgrader runs them: inside a Jupyter kernel, in a throw-away
course folder, with the test cells from the gradebook. A later sandboxed runner (student code in
its own process, plain data out, scores computed outside) only has to keep the signature of
:func:`grade_submissions`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from . import course as nbg
from .errors import NbgraderFailed
from .exercises import check_exercise
from .gradebook import SubmissionResult, read_results


def grade_submissions(
    exercise: str, notebooks: Mapping[str, Path], repo: Path
) -> dict[str, SubmissionResult]:
    """Grade ``{student: notebook}`` against ``exercise`` in a temporary course (one nbgrader run).

    Every notebook is checked to be readable before anything runs.
    """
    check_exercise(exercise, repo)
    for notebook in notebooks.values():
        nbg.read_notebook(Path(notebook))
    with tempfile.TemporaryDirectory(prefix="beyondbert-grade-") as tmp:
        course = nbg.open_course(Path(tmp) / "course", repo, create=True)
        nbg.install_source(course, exercise, repo)
        nbg.generate(course, exercise)
        for student, notebook in notebooks.items():
            nbg.submit(course, exercise, student, Path(notebook))
        nbg.autograde(course, exercise, force=True)
        results = read_results(course, exercise)
    missing = sorted(set(notebooks) - set(results))
    if missing:
        raise NbgraderFailed(f"nbgrader recorded no grades for: {', '.join(missing)}")
    return {student: results[student] for student in notebooks}


def grade_notebook(exercise: str, notebook: Path, repo: Path) -> SubmissionResult:
    """Grade one notebook file against ``exercise``: its score and each test's result."""
    return grade_submissions(exercise, {"submission": Path(notebook)}, repo)["submission"]
