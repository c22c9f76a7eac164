"""Scores out of nbgrader's gradebook as plain data.

The gradebook is the course's database: ``gradebook.db`` (SQLite, nbgrader's default) or the
``CourseDirectory.db_url`` its ``nbgrader_config.py`` names (e.g. PostgreSQL, for several
graders). A SQLite gradebook is opened read-only: reading scores can never change it. A test's
score follows nbgrader's rule: the manual score when an instructor set one, else the
autograder's, plus any extra credit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import sqlalchemy

from .course import gradebook_url, has_gradebook, read_flags
from .errors import GradingError

NOT_GRADED = "not graded: "  # how the flag of a submission that could not be graded starts

_SCORES = """
SELECT sa.student_id, cell.name, gc.max_score, g.auto_score, g.manual_score, g.extra_credit
FROM grade AS g
JOIN submitted_notebook AS sn ON g.notebook_id = sn.id
JOIN submitted_assignment AS sa ON sn.assignment_id = sa.id
JOIN assignment AS a ON sa.assignment_id = a.id
JOIN grade_cells AS gc ON g.cell_id = gc.id
JOIN base_cell AS cell ON gc.id = cell.id
WHERE a.name = :exercise
"""


@dataclass(frozen=True)
class TestResult:
    """One graded test cell: its nbgrader ``grade_id``, points earned and possible, and why it
    failed (the error's name and message; "a hidden test failed" for hidden tests)."""

    __test__ = False  # not a pytest test class, despite its name

    name: str
    score: float
    max_score: float
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score


@dataclass
class SubmissionResult:
    """A student's graded submission of one exercise: one :class:`TestResult` per test cell, and
    flags for the instructor (a test cell missing or duplicated, a notebook nbgrader could not
    grade, a file that is not a gradable notebook: that flag starts with ``NOT_GRADED``)."""

    student: str
    tests: list[TestResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests)

    def failed(self) -> list[str]:
        """Names of the test cells that did not get full points."""
        return [t.name for t in self.tests if not t.passed]

    def as_dict(self) -> dict:
        """``{"score", "max_score", "flags", "tests": [{"name", "score", "max_score", "passed",
        "message"}]}``."""
        return {
            "score": self.score,
            "max_score": self.max_score,
            "flags": list(self.flags),
            "tests": [dict(asdict(t), passed=t.passed) for t in self.tests],
        }


def test_points(notebook: Path) -> dict[str, float]:
    """``{grade_id: points}`` of each graded cell of a source notebook, in notebook order."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    meta = (c.get("metadata", {}).get("nbgrader", {}) for c in cells)
    return {m["grade_id"]: float(m.get("points", 0)) for m in meta if m.get("grade")}


def graded_cells(notebook: Path) -> list[str]:
    """The ``grade_id`` of each graded cell of a source notebook, in notebook order."""
    return list(test_points(notebook))


def test_messages(notebook: Path) -> dict[str, str]:
    """``{grade_id: "Error: message"}`` of the failed test cells of an autograded notebook."""
    messages = {}
    try:
        if Path(notebook).is_symlink() or not Path(notebook).is_file():
            return {}
        for cell in json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if meta.get("grade") and errors:
                ename, evalue = errors[0].get("ename", "Error"), errors[0].get("evalue", "")
                messages[str(meta["grade_id"])] = f"{ename}: {evalue}" if evalue else str(ename)
    except Exception:  # noqa: BLE001 - a graded copy that cannot be read shows no messages
        return {}
    return messages


def read_results(course: Path, exercise: str) -> dict[str, SubmissionResult]:
    """``{student: SubmissionResult}`` for every graded submission of ``exercise``, with the flags
    autograde recorded."""
    if not has_gradebook(course):
        raise GradingError(f"no gradebook in {course}: run `beyondbert release` first")
    url = gradebook_url(course)
    if url.startswith("sqlite:///"):
        url = f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text(_SCORES), {"exercise": exercise}).all()
    finally:
        engine.dispose()
    source = course / "source" / exercise / f"{exercise}.ipynb"
    order = {name: i for i, name in enumerate(graded_cells(source))} if source.is_file() else {}
    results: dict[str, SubmissionResult] = {}
    for student, name, max_score, auto, manual, extra in rows:
        score = (manual if manual is not None else auto or 0.0) + (extra or 0.0)
        results.setdefault(student, SubmissionResult(student)).tests.append(
            TestResult(name=name, score=float(score), max_score=float(max_score))
        )
    flags = read_flags(course, exercise)
    for student, result in results.items():
        result.flags = flags.get(student, [])
        messages = test_messages(course / "autograded" / student / exercise / f"{exercise}.ipynb")
        result.tests = [replace(t, message=messages.get(t.name, "")) if not t.passed else t
                        for t in result.tests]
        result.tests.sort(key=lambda t: (order.get(t.name, len(order)), t.name))
    return dict(sorted(results.items()))
