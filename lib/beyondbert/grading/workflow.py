"""The commands behind ``beyondbert``: generate, release, collect, autograde, feedback, export.

Each command checks its input (exercise name, files, course folder) before it changes anything,
so a typo never half-writes a course folder or a gradebook.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import course as nbg
from .errors import GradingError
from .exercises import check_exercise, list_exercises
from .feedback import write_feedback_pages
from .gradebook import SubmissionResult, read_results
from .runner import grade_course


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
    nbg.install_source(course, exercise, repo)
    student_notebook = nbg.generate(course, exercise)
    exchange = exchange or nbg.exchange_root(course)
    if exchange:
        nbg.release_to_exchange(course, exercise, exchange)
    return Release(student_notebook, exchange)


def collect(exercise: str, course_dir: Path, repo: Path, exchange: str | None = None) -> list[str]:
    """Collect the submissions of ``exercise`` from the exchange into ``submitted/``; return the
    students whose submission is new, each stamped with the collection time."""
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
              student: str | None = None, jobs: int = 1,
              unsafe_no_sandbox: bool = False) -> dict[str, SubmissionResult]:
    """Autograde ``submitted/<student>/<exercise>/`` of a course; return ``{student: result}``.

    All submissions are checked (right file name, readable notebook) before nbgrader runs.
    ``force`` grades already-graded submissions again; ``student`` limits grading to one;
    ``jobs`` submissions are graded at a time.
    """
    course = _released_course(exercise, course_dir, repo)
    found = nbg.submissions(course, exercise)
    if student is not None:
        if student not in found:
            raise GradingError(
                f"no submission of {exercise} by {student!r}; submitted: {', '.join(found)}")
        found = {student: found[student]}
    return grade_course(course, exercise, found, force=force, jobs=jobs,
                        unsafe_no_sandbox=unsafe_no_sandbox)


def write_feedback(exercise: str, course_dir: Path, repo: Path) -> list[Path]:
    """HTML feedback for every graded submission of ``exercise`` (see :mod:`.feedback`)."""
    course = _released_course(exercise, course_dir, repo)
    results = read_results(course, exercise)
    if not results:
        raise GradingError(f"no graded submissions of {exercise} in {course}: autograde first")
    return write_feedback_pages(course, exercise, results)


def export_grades(course_dir: Path, output: Path, repo: Path | None = None) -> Path:
    """Write every grade of the course's gradebook to a CSV file (``nbgrader export``)."""
    course = nbg.open_course(course_dir, repo)
    if not nbg.has_gradebook(course):
        raise GradingError(f"no gradebook in {course}: release and autograde an exercise first")
    return nbg.export_csv(course, Path(output))
