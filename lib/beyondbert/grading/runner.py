"""Grade submissions of one exercise and get per-test results, with student code sandboxed.

Submissions are autograded in batches, one ``nbgrader autograde`` process per batch (``jobs`` at
a time; see ``course.autograde``); nbgrader's execute step is
``beyondbert.sandbox.executor.SandboxedExecute`` (set in the course's ``nbgrader_config.py``):
student cells run in a bubblewrap sandbox (a fresh process per submission, forked in a sandbox
the batch keeps warm), tests run in the grader, and only plain data crosses between them. Scores
are read back from the gradebook.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

from . import course as nbg
from .errors import GradingError
from .exercises import check_exercise
from ..sandbox.session import FLAGS_FILE
from .gradebook import SubmissionResult, TestResult, read_results, test_points


def check_sandbox(unsafe_no_sandbox: bool = False) -> None:
    """Refuse to grade when no sandbox can run student code, unless the instructor opted out."""
    from ..sandbox.launcher import sandbox_problem

    problem = None if unsafe_no_sandbox else sandbox_problem()
    if problem:
        raise GradingError(f"refusing to grade: {problem}")


def not_graded(course: Path, exercise: str, student: str, flags: list[str]) -> SubmissionResult:
    """The result of a submission nbgrader did not grade: 0 on every test, and why."""
    points = test_points(course / "source" / exercise / f"{exercise}.ipynb")
    return SubmissionResult(student, [TestResult(test, 0.0, most, "not graded")
                                      for test, most in points.items()], list(flags))


def sandbox_flags(course: Path, exercise: str, student: str) -> list[str]:
    """What the sandboxed executor flagged while grading ``student`` (forged replies, time
    budget), from the file it leaves beside the graded notebook."""
    path = course / "autograded" / student / exercise / FLAGS_FILE
    try:
        flags = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(flag) for flag in flags] if isinstance(flags, list) else []


def grade_course(course: Path, exercise: str, found: dict[str, Path], force: bool = False,
                 jobs: int = 1, unsafe_no_sandbox: bool = False,
                 cell_timeout: float | None = None, time_budget: float | None = None,
                 progress: bool = True) -> dict[str, SubmissionResult]:
    """Autograde ``{student: submitted notebook}`` of a released exercise; flag what needs a look.

    Every student in ``found`` gets a result: one nbgrader could not grade scores 0 on every test
    and carries a flag that says why. The flags are recorded in the course (``read_flags``).
    """
    check_sandbox(unsafe_no_sandbox)
    problems = nbg.autograde(course, exercise, sorted(found), force=force, jobs=jobs,
                             unsafe_no_sandbox=unsafe_no_sandbox, cell_timeout=cell_timeout,
                             time_budget=time_budget, progress=progress)
    results = read_results(course, exercise)
    source = course / "source" / exercise / f"{exercise}.ipynb"
    out = {}
    for student, notebook in sorted(found.items()):
        result = results.get(student) or not_graded(course, exercise, student, [])
        try:
            result.flags = nbg.submission_flags(source, notebook)
            result.flags += sandbox_flags(course, exercise, student)
        except Exception as err:  # noqa: BLE001 - one submission's failure is its own flag
            result.flags = [f"the grader could not check this submission's cells: "
                            f"{type(err).__name__}: {str(err)[:200]}"]
        if student in problems:
            result.flags.append(problems[student])
        out[student] = result
    nbg.write_flags(course, exercise, {student: r.flags for student, r in out.items()})
    return out


def grade_submissions(exercise: str, notebooks: Mapping[str, Path], repo: Path, jobs: int = 1,
                      unsafe_no_sandbox: bool = False, cell_timeout: float | None = None,
                      time_budget: float | None = None, progress: bool = False,
                      keep_course: Path | None = None) -> dict[str, SubmissionResult]:
    """Grade ``{student: notebook}`` against ``exercise`` in a temporary course.

    Every notebook is checked to be readable before anything runs. ``keep_course`` builds the
    course in that (new or empty) folder and keeps it, for a look at the gradebook afterwards.
    """
    check_exercise(exercise, repo)
    for notebook in notebooks.values():
        nbg.read_notebook(Path(notebook))
    check_sandbox(unsafe_no_sandbox)
    with tempfile.TemporaryDirectory(prefix="beyondbert-grade-") as tmp:
        course = nbg.open_course(keep_course or Path(tmp) / "course", repo, create=True)
        nbg.install_source(course, exercise, repo)
        nbg.generate(course, exercise)
        found = {student: nbg.submit(course, exercise, student, Path(notebook))
                 for student, notebook in notebooks.items()}
        results = grade_course(course, exercise, found, force=True, jobs=jobs,
                               unsafe_no_sandbox=unsafe_no_sandbox, cell_timeout=cell_timeout,
                               time_budget=time_budget, progress=progress)
    return {student: results[student] for student in notebooks}


def grade_notebook(exercise: str, notebook: Path, repo: Path,
                   unsafe_no_sandbox: bool = False) -> SubmissionResult:
    """Grade one notebook file against ``exercise``: its score and each test's result."""
    return grade_submissions(exercise, {"submission": Path(notebook)}, repo,
                             unsafe_no_sandbox=unsafe_no_sandbox)["submission"]
