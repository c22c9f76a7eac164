"""Per-student HTML feedback: each test's pass/fail, points and message — never its code.

nbgrader's own feedback is the executed notebook, hidden tests included. This page is built
from the gradebook's scores and the failure messages only (a failed hidden test says "a hidden
test failed"), so neither hidden test code nor hidden inputs reach a student. The files go where
nbgrader keeps feedback, ``feedback/<student>/<exercise>/<exercise>.html``, so
``nbgrader release_feedback`` can hand them out.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from .gradebook import NOT_GRADED, SubmissionResult

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 52rem; margin: 2rem auto; line-height: 1.4; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #ccc; padding: .4rem .6rem; text-align: left; vertical-align: top; }}
.passed {{ color: #1a7f37; }} .failed {{ color: #c62828; }}
</style></head>
<body>
<h1>{title}</h1>
{notes}<p>Score: <strong>{score} / {max_score}</strong> points.</p>
<table>
<thead><tr><th>test</th><th>result</th><th>points</th><th>message</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p>Hidden tests are not shown; a failed hidden test says only that it failed. Check the edge
cases the exercise names and run <em>Restart &amp; Run All</em> before you hand in again.</p>
</body></html>
"""


_NOT_GRADED = """<p><strong>Your submission could not be graded</strong>: {reasons}. Hand in
the notebook you downloaded, saved as a notebook under its original name, and it will be graded
then. Any scores below are from a submission graded before.</p>
"""
_FLAGGED = "<p>Your instructor will look at this submission: {reasons}.</p>\n"


def _points(x: float) -> str:
    return f"{x:g}"


def student_reason(flag: str) -> str:
    """A flag as the student reads it: nbgrader's own error log stays with the instructor."""
    if "nbgrader could not grade it" in flag:
        return "the grader could not run this notebook"
    return flag.removeprefix(NOT_GRADED)


def feedback_html(exercise: str, result: SubmissionResult) -> str:
    """The feedback page of one student's graded submission (every value HTML-escaped)."""
    rows = []
    for t in result.tests:
        status = "passed" if t.passed else "failed"
        rows.append(f'<tr><td>{escape(t.name)}</td><td class="{status}">{status}</td>'
                    f"<td>{_points(t.score)} / {_points(t.max_score)}</td>"
                    f"<td>{escape(t.message)}</td></tr>")
    reasons = "; ".join(escape(student_reason(flag)) for flag in result.flags)
    not_graded = any(flag.startswith(NOT_GRADED) for flag in result.flags)
    notes = (_NOT_GRADED if not_graded else _FLAGGED if reasons else "").format(reasons=reasons)
    return _PAGE.format(title=escape(f"Feedback on {exercise} for {result.student}"),
                        notes=notes, score=_points(result.score),
                        max_score=_points(result.max_score), rows="\n".join(rows))


def write_feedback_pages(course: Path, exercise: str,
                         results: dict[str, SubmissionResult]) -> list[Path]:
    """Write ``feedback/<student>/<exercise>/<exercise>.html`` for each result; return the paths."""
    written = []
    for student, result in results.items():
        path = course / "feedback" / student / exercise / f"{exercise}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(feedback_html(exercise, result), encoding="utf-8")
        written.append(path)
    return written
