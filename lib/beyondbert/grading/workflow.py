"""The commands behind ``beyondbert``: generate, release, collect, autograde, feedback, export.

Each command checks its input (exercise name, files, course folder) before it changes anything,
so a typo never half-writes a course folder or a gradebook.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import course as nbg
from .errors import GradingError
from .exercises import check_exercise, list_exercises
from .feedback import write_feedback_pages
from .gradebook import NOT_GRADED, SubmissionResult, read_results, test_points
from .runner import grade_course, not_graded
from .student import create_course_secret


def generate_exercises(repo: Path, names: list[str] | None = None,
                       out_dir: Path | None = None) -> list[Path]:
    """Write the student version of each exercise (all by default) to ``exercises/<name>.ipynb``.

    nbgrader replaces solutions by stubs that raise ``NotImplementedError``, removes hidden tests
    and clears outputs; the same solution always gives the same bytes. ``out_dir`` writes
    elsewhere (tests compare a fresh generation with the committed files this way).
    """
    names = [check_exercise(n, repo) for n in names] if names else list_exercises(repo)
    if not names:
        raise GradingError(f"no exercises: {repo / 'solutions'} holds no notebook")
    out_dir = Path(out_dir) if out_dir is not None else repo / "exercises"
    written = []
    with tempfile.TemporaryDirectory(prefix="beyondbert-generate-") as tmp:
        course = nbg.open_course(Path(tmp) / "course", repo, create=True)
        for name in names:
            nbg.install_source(course, name, repo)
            released = nbg.generate(course, name, database=False)
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / f"{name}.ipynb"
            shutil.copyfile(released, target)
            written.append(target)
    return written


@dataclass(frozen=True)
class Release:
    """Where a released exercise went: the student notebook, and the exchange if one is used."""

    student_notebook: Path
    exchange: str | None


def release(exercise: str, course_dir: Path, repo: Path, exchange: str | None = None) -> Release:
    """Add ``exercise`` to a course (created when missing) and produce its student version.

    Copies the solution to ``source/<ex>/``, runs ``generate_assignment`` (which records the
    exercise's test cells and points in the gradebook) and, when an exchange is configured
    (``exchange`` or ``Exchange.root`` in the course's config), ``release_assignment``.
    """
    check_exercise(exercise, repo)
    course = nbg.open_course(course_dir, repo, create=True)
    create_course_secret(course)  # hidden tests' inputs; kept once it exists (see .student)
    nbg.install_source(course, exercise, repo)
    student_notebook = nbg.generate(course, exercise)
    exchange = exchange or nbg.exchange_root(course)
    if exchange:
        nbg.release_to_exchange(course, exercise, exchange)
    return Release(student_notebook, exchange)


def collect(exercise: str, course_dir: Path, repo: Path,
            exchange: str | None = None) -> nbg.Collected:
    """Collect the submissions of ``exercise`` from the exchange into ``submitted/``; return the
    students whose submission is new, each stamped with the collection time, and nbgrader's
    warnings (``.warnings``: folders refused because they hold links or other files that are
    not regular, or are not owned by the student they name)."""
    course = _released_course(exercise, course_dir, repo)
    exchange = exchange or nbg.exchange_root(course)
    if not exchange:
        raise GradingError(
            f"no exchange folder: pass --exchange DIR or set c.Exchange.root in "
            f"{course / nbg.CONFIG}; without one, copy each notebook to "
            f"submitted/<student>/{exercise}/{exercise}.ipynb yourself")
    return nbg.collect_from_exchange(course, exercise, exchange)


def _released_course(exercise: str, course_dir: Path, repo: Path) -> Path:
    """The course folder, checked to hold a gradebook in which ``exercise`` was released."""
    check_exercise(exercise, repo)
    course = nbg.open_course(course_dir, repo)
    source = course / "source" / exercise / f"{exercise}.ipynb"
    if not source.is_file() or not nbg.has_gradebook(course):
        raise GradingError(
            f"{exercise} was not released in {course}: run `beyondbert release {exercise} "
            f"--course {course_dir}` first"
        )
    return course


def autograde(exercise: str, course_dir: Path, repo: Path, force: bool = False,
              student: str | None = None, jobs: int = 1, unsafe_no_sandbox: bool = False,
              strict: bool = False) -> dict[str, SubmissionResult]:
    """Autograde ``submitted/<student>/<exercise>/`` of a course; return ``{student: result}``.

    Every submission is checked first (right file name, readable notebook, readable
    ``timestamp.txt``). The gradable ones are graded; each of the others gets a result that is
    not graded, flagged with the reason, and nothing of that student's in the gradebook changes
    (``strict``: nothing at all is graded while one is not gradable). ``force`` grades
    already-graded submissions again; ``student`` limits grading to one; ``jobs`` submissions are
    graded at a time.
    """
    course = _released_course(exercise, course_dir, repo)
    if strict:
        found, problems = nbg.submissions(course, exercise), {}
    else:
        found, problems = nbg.find_submissions(course, exercise)
    if student is not None:
        if student not in found and student not in problems:
            raise GradingError(f"no submission of {exercise} by {student!r}; submitted: "
                               f"{', '.join(sorted([*found, *problems]))}")
        found = {s: n for s, n in found.items() if s == student}
        problems = {s: p for s, p in problems.items() if s == student}
    results = grade_course(course, exercise, found, force=force, jobs=jobs,
                           unsafe_no_sandbox=unsafe_no_sandbox) if found else {}
    if problems:
        graded_before = read_results(course, exercise)
        for name, problem in problems.items():
            result = graded_before.get(name) or not_graded(course, exercise, name, [])
            result.flags = [NOT_GRADED + problem]
            results[name] = result
        nbg.write_flags(course, exercise, {name: results[name].flags for name in problems})
    return dict(sorted(results.items()))


def write_feedback(exercise: str, course_dir: Path, repo: Path) -> list[Path]:
    """HTML feedback for every graded or flagged submission of ``exercise`` (see
    :mod:`.feedback`): a submission that could not be graded gets a page saying why."""
    course = _released_course(exercise, course_dir, repo)
    results = read_results(course, exercise)
    for student, flags in nbg.read_flags(course, exercise).items():
        if student not in results:
            results[student] = not_graded(course, exercise, student, flags)
    if not results:
        raise GradingError(f"no graded submissions of {exercise} in {course}: autograde first")
    return write_feedback_pages(course, exercise, dict(sorted(results.items())))


def export_grades(course_dir: Path, output: Path, repo: Path | None = None) -> Path:
    """Write every grade of the course's gradebook to a CSV file (``nbgrader export``), with a
    ``flags`` column saying why a submission needs a look; a flagged submission that was never
    graded gets a row too (score 0), so nobody is missing from the sheet."""
    course = nbg.open_course(course_dir, repo)
    if not nbg.has_gradebook(course):
        raise GradingError(f"no gradebook in {course}: release and autograde an exercise first")
    output = nbg.export_csv(course, Path(output))
    with output.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns, rows = list(reader.fieldnames or []), list(reader)
    flags = nbg.read_all_flags(course)
    for row in rows:
        row["flags"] = "; ".join(flags.get(row["assignment"], {}).get(row["student_id"], []))
    listed = {(row["assignment"], row["student_id"]) for row in rows}
    for exercise, students in sorted(flags.items()):
        source = course / "source" / exercise / f"{exercise}.ipynb"
        max_score = str(sum(test_points(source).values())) if source.is_file() else ""
        for student, student_flags in sorted(students.items()):
            if (exercise, student) not in listed:
                rows.append(dict.fromkeys(columns, "") | {
                    "assignment": exercise, "student_id": student, "raw_score": "0.0",
                    "score": "0.0", "max_score": max_score, "flags": "; ".join(student_flags)})
    with output.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*columns, "flags"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return output
