"""The class report of one graded exercise: where the class struggled, from the gradebook.

``beyondbert report EXERCISE --course DIR`` writes ``reports/EXERCISE/`` in the course folder:

* ``report.html``: one self-contained page (no script, no external resource): the score
  histogram (a matplotlib figure with alt text), per task and per test cell the share of
  students who lost its points, the most common failure messages of visible tests, the
  submissions flagged for a look, and the time spent grading;
* ``students.csv``: one row per student (score, flags, failed test cells);
* ``cells.csv``: one row per test cell (task, points, hidden or visible, share who lost it).

Scores are read with ``gradebook.read_results`` (nbgrader's rule: a manual score overrides the
autograder's); a submission that could not be graded counts as 0 and is listed as flagged. The
time spent grading comes from the runs ``beyondbert autograde`` recorded in
``.beyondbert-grading-runs.json`` (formgrader runs are not recorded). Everything a student could
choose (messages, flags, ids) is escaped in the HTML and neutralised in the CSV.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import statistics
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

from .errors import GradingError

RUNS_FILE = ".beyondbert-grading-runs.json"
HIDDEN_MESSAGE = "HiddenTestFailed: a hidden test failed"
TOP_MESSAGES = 12


# ------------------------------------------------------------------ grading time, recorded
def record_grading_run(course: Path, exercise: str, submissions: int, seconds: float,
                       jobs: int) -> None:
    """Note one autograde run (called by ``beyondbert autograde``) for the report."""
    path = Path(course) / RUNS_FILE
    try:
        runs = json.loads(path.read_text())
        if not isinstance(runs, list):
            runs = []
    except (OSError, ValueError):
        runs = []
    runs.append({"exercise": exercise, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "submissions": int(submissions), "seconds": round(float(seconds), 2),
                 "jobs": int(jobs)})
    path.write_text(json.dumps(runs, indent=1))


def grading_runs(course: Path, exercise: str) -> list[dict]:
    try:
        runs = json.loads((Path(course) / RUNS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in runs if isinstance(r, dict) and r.get("exercise") == exercise]


# -------------------------------------------------------------------------- the data
@dataclass
class CellSummary:
    grade_id: str
    task: str
    points: float
    hidden: bool  # no visible test: only hidden tests decide it
    lost: int  # students who lost (some of) its points
    students: int

    @property
    def share(self) -> float:
        return self.lost / self.students if self.students else 0.0


@dataclass
class ClassReport:
    exercise: str
    max_score: float
    scores: dict[str, float]  # every student, 0 for one not graded
    failed: dict[str, list[str]]  # student -> failed test cells
    flags: dict[str, list[str]]  # flagged students only
    cells: list[CellSummary]
    messages: list[tuple[str, list[str], int]]  # (visible message, its test cells, students)
    hidden_failures: tuple[int, int]  # (failed test cells, students)
    runs: list[dict]

    def tasks(self) -> list[tuple[str, float, int, int]]:
        """``(task, points, students who lost points in it, students)`` in notebook order."""
        order: dict[str, list[str]] = {}
        points: dict[str, float] = {}
        for cell in self.cells:
            order.setdefault(cell.task, []).append(cell.grade_id)
            points[cell.task] = points.get(cell.task, 0.0) + cell.points
        out = []
        for task, ids in order.items():
            lost = sum(1 for failed in self.failed.values() if set(failed) & set(ids))
            out.append((task, points[task], lost, len(self.scores)))
        return out


def _notebook_tasks(notebook: Path) -> tuple[dict[str, str], dict[str, float]]:
    """``({grade_id: task}, {grade_id: points})`` of the test cells of a source notebook."""
    import nbformat

    from .check import is_test_cell, task_names

    nb = nbformat.read(notebook, as_version=4)
    tasks = task_names(nb)
    names, points = {}, {}
    for i, cell in enumerate(nb.cells):
        if is_test_cell(cell):
            meta = cell.metadata["nbgrader"]
            names[meta["grade_id"]] = tasks[i]
            points[meta["grade_id"]] = float(meta.get("points", 0))
    return names, points


def _hidden_cells(released: Path) -> set[str]:
    import nbformat

    from .check import has_visible_test, is_test_cell

    if not released.is_file():
        return set()
    nb = nbformat.read(released, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if is_test_cell(c) and not has_visible_test(c.source)}


def class_report(course: Path, exercise: str) -> ClassReport:
    """Gather the report's data from the course's gradebook, flags and notebooks."""
    from .course import read_flags
    from .gradebook import NOT_GRADED, read_results

    course = Path(course)
    source = course / "source" / exercise / f"{exercise}.ipynb"
    if not source.is_file():
        raise GradingError(f"{exercise} is not released in {course}: no {source}")
    tasks, points = _notebook_tasks(source)
    hidden = _hidden_cells(course / "release" / exercise / f"{exercise}.ipynb")
    results = read_results(course, exercise)
    flags = {s: list(f) for s, f in read_flags(course, exercise).items() if f}
    for student, result in results.items():
        if result.flags:
            flags[student] = list(result.flags)
    students = sorted(set(results) | set(flags))
    if not students:
        raise GradingError(f"nothing of {exercise} is graded in {course}: run "
                           f"`beyondbert autograde {exercise}` first")
    scores, failed = {}, {}
    seen: dict[str, tuple[set, list]] = {}  # message -> (students, test cells)
    hidden_cells, hidden_students = 0, set()
    for student in students:
        result = results.get(student)
        not_graded = result is None or any(f.startswith(NOT_GRADED) for f in flags.get(student, []))
        if result is None:
            scores[student], failed[student] = 0.0, list(points)
            continue
        scores[student] = result.score
        failed[student] = result.failed() if not not_graded else list(points)
        for test in result.tests:
            if test.passed or not test.message:
                continue
            if test.message.startswith("HiddenTestFailed"):
                hidden_cells += 1
                hidden_students.add(student)
            else:
                who, where = seen.setdefault(test.message, (set(), []))
                who.add(student)
                if test.name not in where:
                    where.append(test.name)
    n = len(students)
    cells = [CellSummary(g, tasks[g], points[g], g in hidden,
                         sum(1 for f in failed.values() if g in f), n) for g in points]
    ranked = sorted(seen.items(), key=lambda item: (-len(item[1][0]), item[0]))[:TOP_MESSAGES]
    top = [(message, where, len(who)) for message, (who, where) in ranked]
    return ClassReport(exercise, sum(points.values()), scores, failed, flags, cells, top,
                       (hidden_cells, len(hidden_students)), grading_runs(course, exercise))


# ---------------------------------------------------------------------------- writing
def _points(x: float) -> str:
    return f"{x:g}"


def histogram_png(report: ClassReport) -> tuple[bytes, str]:
    """The score histogram as PNG bytes, and its alt text."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    values = list(report.scores.values())
    top = max(report.max_score, 1.0)
    if top <= 40:  # one bar per point: full marks never share a bar with one point less
        bins = [b - 0.5 for b in range(int(top) + 2)]
    else:
        bins = [top * i / 20 for i in range(21)]
    fig = Figure(figsize=(7, 3.6), dpi=100)
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, color="#2a6f97", edgecolor="white")
    median = statistics.median(values)
    ax.axvline(median, color="#b5179e", linestyle="--", label=f"median {median:g}")
    ax.set_title(f"{report.exercise}: scores of {len(values)} students")
    ax.set_xlabel(f"score (points, out of {_points(report.max_score)})")
    ax.set_ylabel("students")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    full = sum(1 for v in values if v >= report.max_score)
    zero = sum(1 for v in values if v <= 0)
    alt = (f"Histogram of the scores of {len(values)} students on {report.exercise}, out of "
           f"{_points(report.max_score)} points: median {median:g}, lowest {min(values):g}, "
           f"highest {max(values):g}; {full} with full marks and {zero} with 0.")
    return buffer.getvalue(), alt


def _table(caption: str, header: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{escape(c)}</td>' if i in numeric
                         else f"<td>{escape(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return (f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


STYLE = """
body { font-family: system-ui, sans-serif; color: #1b1b1b; background: #fff; margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
caption { text-align: left; font-weight: 600; padding: 0.3rem 0; }
th, td { border: 1px solid #8a8a8a; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
.muted { color: #4a4a4a; }
"""


def report_html(report: ClassReport) -> str:
    png, alt = histogram_png(report)
    values = list(report.scores.values())
    n = len(values)
    summary = (f"{n} students; mean {statistics.mean(values):.1f}, median "
               f"{statistics.median(values):g} of {_points(report.max_score)} points; "
               f"{len(report.flags)} flagged.")
    tasks = _table("Points lost per task: the share of students who lost any of its points",
                   ["task", "points", "students who lost points", "share"],
                   [[t, _points(p), str(lost), f"{lost / total:.0%}"]
                    for t, p, lost, total in report.tasks()], {1, 2, 3})
    cells = _table("Points lost per test cell (hidden: decided only by hidden tests)",
                   ["test cell", "task", "points", "tests", "students who lost it", "share"],
                   [[c.grade_id, c.task, _points(c.points), "hidden" if c.hidden else "visible",
                     str(c.lost), f"{c.share:.0%}"] for c in report.cells], {2, 4, 5})
    if report.messages:
        messages = _table("The most common failure messages of visible tests (what students "
                          "saw), by the number of students who saw them",
                          ["message", "test cells", "students"],
                          [[message, ", ".join(cells), str(count)]
                           for message, cells, count in report.messages], {2})
    else:
        messages = "<p>No visible test failed.</p>"
    cells_failed, students_failed = report.hidden_failures
    messages += (f"<p>Hidden tests failed in {cells_failed} test cells of {students_failed} "
                 f"students (their message is always &ldquo;a hidden test failed&rdquo;).</p>")
    if report.flags:
        flagged = _table("Submissions to look at", ["student", "why"],
                         [[s, " | ".join(f)] for s, f in sorted(report.flags.items())], set())
    else:
        flagged = "<p>No submission is flagged.</p>"
    if report.runs:
        runs = _table("Autograde runs of this exercise (beyondbert autograde)",
                      ["finished", "submissions", "jobs", "wall time (s)",
                       "per submission (s, wall × jobs / submissions)"],
                      [[r["finished"], str(r["submissions"]), str(r["jobs"]), f"{r['seconds']:.1f}",
                        f"{r['seconds'] * r['jobs'] / max(r['submissions'], 1):.1f}"]
                       for r in report.runs], {1, 2, 3, 4})
    else:
        runs = ("<p>No grading run is recorded (only <code>beyondbert autograde</code> records "
                "its runs).</p>")
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Class report: {escape(report.exercise)}</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<h1>Class report: {escape(report.exercise)}</h1>
<p>{escape(summary)}</p>
<h2>Scores</h2>
<img src="data:image/png;base64,{image}" alt="{escape(alt)}" width="700" height="360">
<h2>Where the class lost points</h2>
{tasks}
{cells}
<h2>What students saw</h2>
{messages}
<h2>Flagged submissions</h2>
{flagged}
<h2>Time spent grading</h2>
{runs}
<p class="muted">Written by <code>beyondbert report</code> from the course's gradebook.
The same data is in <code>students.csv</code> and <code>cells.csv</code> beside this page.</p>
</main>
</body>
</html>
"""


def _csv_cell(value: object) -> object:
    """A value safe to open in a spreadsheet: text a student chose never starts a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows([[_csv_cell(v) for v in row] for row in rows])
    return path


def write_report(exercise: str, course: Path, repo: Path | None = None,
                 output: Path | None = None) -> list[Path]:
    """Write ``report.html``, ``students.csv`` and ``cells.csv`` (default folder:
    ``reports/EXERCISE/`` in the course folder); returns their paths."""
    course = Path(course)
    report = class_report(course, exercise)
    folder = Path(output) if output is not None else course / "reports" / exercise
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / "report.html"
    html.write_text(report_html(report), encoding="utf-8")
    students = write_csv(
        folder / "students.csv", ["student", "score", "max_score", "flagged", "failed_cells"],
        [[s, report.scores[s], report.max_score, " | ".join(report.flags.get(s, [])),
          " ".join(report.failed.get(s, []))] for s in sorted(report.scores)])
    cells = write_csv(
        folder / "cells.csv", ["cell", "task", "points", "hidden", "students_lost", "share_lost"],
        [[c.grade_id, c.task, c.points, c.hidden, c.lost, round(c.share, 4)]
         for c in report.cells])
    return [html, students, cells]
