"""The instructor's grading workflow over nbgrader: generate, release, autograde, grade, export.

    exercises  where exercises live (solutions/NN-slug.ipynb) and their names
    course     an nbgrader course folder and the nbgrader steps (always a subprocess)
    gradebook  scores read from nbgrader's gradebook.db as plain data
    runner     grade submissions (sandboxed nbgrader processes over batches, several at a time)
    autogrades nbgrader's SaveAutoGrades with one commit per submission
    feedback   per-student HTML feedback without hidden test code
    workflow   the commands behind the `beyondbert` console script (cli.py)
    checks     checks that exercises' hidden tests call on the student's functions
    student    what test cells use: plain() (the plain-data rule), gradient() of a loss, hidden
               inputs from the course secret (hidden_rng, hidden_seed)
    check      `beyondbert check`: a student's notebook and visible tests, run as graded
    report     `beyondbert report`: the class report (HTML and CSV) from the gradebook

The gradebook is nbgrader's ``gradebook.db`` in the course folder.
"""

from __future__ import annotations

from .errors import GradingError, NbgraderFailed
from .exercises import find_repo, list_exercises
from .gradebook import SubmissionResult, TestResult
from .runner import grade_notebook, grade_submissions
from .workflow import (autograde, collect, export_grades, generate_exercises, release,
                       write_feedback)

__all__ = [
    "GradingError", "NbgraderFailed", "SubmissionResult", "TestResult", "autograde", "collect",
    "export_grades", "find_repo", "generate_exercises", "grade_notebook", "grade_submissions",
    "list_exercises", "release", "write_feedback",
]
