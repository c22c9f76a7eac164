"""An nbgrader course folder, and the nbgrader steps the course runs in it.

The repository is not an nbgrader course folder (its notebooks are ``solutions/NN-slug.ipynb``);
grading builds one, either the instructor's (``--course DIR``) or a temporary one::

    course/
      nbgrader_config.py                      the course's configuration (copied from the repo)
      gradebook.db                            nbgrader's gradebook: every score lives here
      source/<ex>/<ex>.ipynb                  the solution notebook, copied from solutions/
      release/<ex>/<ex>.ipynb                 the student version (generate_assignment)
      submitted/<student>/<ex>/<ex>.ipynb     what a student handed in
      autograded/<student>/<ex>/<ex>.ipynb    the executed, scored copy

nbgrader always runs as a subprocess of this Python, with its ``bin/`` first on PATH (nbgrader
calls ``alembic`` to create the gradebook, and in-process runs warn on every autograde).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from .errors import GradingError, NbgraderFailed
from .exercises import course_config, solution_path

CONFIG = "nbgrader_config.py"
GRADEBOOK = "gradebook.db"
FLAGS = "beyondbert-flags.json"  # {exercise: {student: [flag, ...]}}: what autograde flagged
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"  # nbgrader's timestamp.txt
# ``python -m nbgrader``, without jsonschema's optional ``rfc3987_syntax``: jsonschema imports it
# only to check "iri" string formats, which nbformat's schema does not use, and importing it
# compiles a grammar (about 1 s of CPU in every nbgrader process, a third of its start-up).
NBGRADER_MAIN = ("import sys; sys.modules['rfc3987_syntax'] = None; "
                 "from nbgrader.apps.nbgraderapp import main; main()")


def run_nbgrader(args: list[str], course: Path,
                 on_line: Callable[[str], None] | None = None) -> str:
    """Run ``nbgrader ARGS`` inside ``course``; return its log, raise :class:`NbgraderFailed`.

    ``on_line`` sees each line of the log as nbgrader writes it (for a progress bar).
    """
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    # The kernel named "python3" is this environment's, even if the user has another one.
    kernels = str(Path(sys.prefix) / "share" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (kernels, os.environ.get("JUPYTER_PATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    command = [sys.executable, "-c", NBGRADER_MAIN, *args, f"--CourseDirectory.root={course}"]
    lines = []
    with subprocess.Popen(command, cwd=course, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line)
    log = "".join(lines)
    if proc.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-30:])
        raise NbgraderFailed(f"nbgrader {args[0]} failed (exit {proc.returncode}):\n{tail}")
    return log


def is_course(folder: Path) -> bool:
    """True when ``folder`` looks like an nbgrader course (config file or gradebook)."""
    return (folder / CONFIG).is_file() or (folder / GRADEBOOK).is_file()


def open_course(folder: str | Path, repo: Path | None = None, create: bool = False) -> Path:
    """Return the course folder, checked; with ``create``, make a new one from the repo's config.

    A course is never the repository itself, and never a non-empty folder that is not a course
    (so a typo in ``--course`` cannot scatter nbgrader folders over unrelated files).
    """
    path = Path(folder).expanduser().resolve()
    if repo is not None and path == repo.resolve():
        raise GradingError(
            f"{path} is the course repository, not a course folder: pass --course DIR "
            f"(for example --course course)"
        )
    if is_course(path):
        return path
    if not create:
        raise GradingError(
            f"{path} is not an nbgrader course folder (no {CONFIG} or {GRADEBOOK}): pass "
            f"--course DIR, or run `beyondbert release EXERCISE --course DIR` first"
        )
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise GradingError(
            f"{path} is not an nbgrader course folder and not empty: pass --course with a new "
            f"or empty folder"
        )
    assert repo is not None, "creating a course needs the repository (for its configuration)"
    config = course_config(repo)
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config, path / CONFIG)
    return path


def install_source(course: Path, exercise: str, repo: Path) -> Path:
    """Copy ``solutions/<exercise>.ipynb`` to ``source/<exercise>/<exercise>.ipynb``."""
    target = course / "source" / exercise / f"{exercise}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(solution_path(exercise, repo), target)
    return target


def generate(course: Path, exercise: str, database: bool = True) -> Path:
    """``nbgrader generate_assignment``: write ``release/<ex>/<ex>.ipynb``, return its path.

    With ``database`` (the default) the exercise's cells and points go into the gradebook, which
    autograding needs; ``database=False`` only produces the student notebook.
    """
    args = ["generate_assignment", exercise, "--force"]
    if not database:
        args.append("--no-db")
    run_nbgrader(args, course)
    return course / "release" / exercise / f"{exercise}.ipynb"


# What a handed-in notebook may be, checked before nbgrader (whose reading, sanitising and
# saving run in the grader's process, outside the sandbox's time and memory limits) touches it.
MAX_NOTEBOOK_BYTES = 16 * 2**20  # an honest exercise notebook with outputs: well under 1 MiB
MAX_CELLS = 1000  # exercise 1 has 40 cells
MAX_NESTING = 64  # levels of JSON (metadata, outputs); a notebook needs fewer than 10


def _nesting(value: object, limit: int) -> int:
    """How deep ``value`` nests (lists and dicts), counted without recursion, up to ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _parse(text: bytes) -> object:
    """JSON nested at most ``MAX_NESTING`` levels. Python's parser refuses (RecursionError) what
    nests deeper than its recursion limit, and integers longer than the int-string limit
    (ValueError); the rest is measured without recursion. Every failure is an exception the
    caller turns into a refusal of this file."""
    value = json.loads(text.decode("utf-8"))
    if _nesting(value, MAX_NESTING) > MAX_NESTING:
        raise ValueError(f"nested deeper than {MAX_NESTING} levels")
    return value


def read_notebook(path: Path, validate: bool = False) -> dict:
    """Read a notebook's JSON, or raise :class:`GradingError` saying why it cannot be graded.

    Refused: a symbolic link or anything but a regular file (checked without following links),
    a file over ``MAX_NOTEBOOK_BYTES``, JSON nested deeper than ``MAX_NESTING`` levels or not
    parsable at all (a 5,000-digit integer included), not nbformat 4, more than ``MAX_CELLS``
    cells; with ``validate``, anything nbformat's schema rejects (a cell whose metadata is not
    an object, ...). Any failure while checking is such a refusal, never a crash.
    """
    path = Path(path)
    try:
        st = path.lstat()
    except OSError:
        raise GradingError(f"missing file: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise GradingError(f"{path} is {kind}: only regular files are graded")
    if st.st_size > MAX_NOTEBOOK_BYTES:
        raise GradingError(f"{path} is {st.st_size / 2**20:.1f} MiB, over the grader's cap of "
                           f"{MAX_NOTEBOOK_BYTES // 2**20} MiB")
    try:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW)) as fh:
            nb = _parse(fh.read(MAX_NOTEBOOK_BYTES + 1))
    except Exception as err:  # noqa: BLE001 - whatever the bytes, a refusal of this file only
        raise GradingError(f"{path} is not a readable notebook: {type(err).__name__}: "
                           f"{str(err)[:200]}") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise GradingError(f"{path} is not a readable notebook: expected nbformat 4 with cells")
    try:
        json.dumps(nb, ensure_ascii=False).encode("utf-8")
    except Exception as err:  # noqa: BLE001 - a lone surrogate: nbgrader could never save it
        raise GradingError(f"{path} holds text that is not valid Unicode ({type(err).__name__})"
                           ) from None
    if len(nb["cells"]) > MAX_CELLS:
        raise GradingError(f"{path} has {len(nb['cells'])} cells, over the grader's cap of "
                           f"{MAX_CELLS}")
    if validate:
        problem = notebook_shape_problem(nb)
        if problem:
            raise GradingError(f"{path} is not a valid notebook: {problem}")
    return nb


def notebook_shape_problem(nb: dict) -> str | None:
    """Why nbformat's schema rejects ``nb`` (None when it is a valid nbformat 4 notebook)."""
    import nbformat

    try:
        nbformat.validate(copy.deepcopy(nb))
    except nbformat.ValidationError as err:
        where = "/".join(str(p) for p in list(getattr(err, "absolute_path", []))[:6])
        return f"{str(getattr(err, 'message', err))[:200]} (at {where or 'the top'})"
    except Exception as err:  # noqa: BLE001 - the validator itself failed on these bytes
        return f"{type(err).__name__}: {str(err)[:200]}"
    return None


def submission_flags(source: Path, submitted: Path) -> list[str]:
    """What the instructor should know about a submission's graded cells before trusting it.

    A test cell deleted (or its nbgrader metadata stripped) scores 0; a grade id used twice
    makes nbgrader drop the copies. Both are flagged; the rest of the notebook is graded.
    """
    def grade_ids(path: Path) -> list[str]:
        cells = read_notebook(path)["cells"]
        metas = (c.get("metadata") for c in cells if isinstance(c, dict))
        meta = (m.get("nbgrader") for m in metas if isinstance(m, dict))
        return [str(m.get("grade_id", "")) for m in meta if isinstance(m, dict) and m.get("grade")]

    expected, found = grade_ids(source), grade_ids(submitted)
    flags = [f"test cell {gid!r} is missing or lost its nbgrader metadata: it scores 0"
             for gid in expected if gid not in found]
    flags += [f"grade id {gid!r} appears {found.count(gid)} times: only one cell is graded"
              for gid in sorted(set(found)) if found.count(gid) > 1]
    return flags


def submit(course: Path, exercise: str, student: str, notebook: Path) -> Path:
    """Place ``notebook`` as ``submitted/<student>/<exercise>/<exercise>.ipynb``.

    Like ``beyondbert collect``, this records the collection time in ``timestamp.txt`` beside it:
    the gradebook's submission time comes from there, never from the notebook's contents.
    """
    read_notebook(notebook)
    target = course / "submitted" / student / exercise / f"{exercise}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)
    collected = datetime.now(timezone.utc).strftime(TIMESTAMP_FORMAT)
    (target.parent / "timestamp.txt").write_text(collected)
    return target


def timestamp_problem(folder: Path) -> str | None:
    """Why nbgrader cannot read ``folder/timestamp.txt`` (None when it can, or there is none)."""
    path = folder / "timestamp.txt"
    if not path.is_file() or path.is_symlink():
        return None
    expected = "a time such as 2026-01-31 23:59:00.000000 UTC"
    try:
        text = path.read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return f"timestamp.txt is not readable text (expected {expected})"
    if not text:
        return None  # nbgrader takes an empty file as "no time given"
    from nbgrader.utils import parse_utc  # nbgrader's own parser; imported only when needed

    try:
        parse_utc(text)
    except (ValueError, OverflowError, TypeError):
        return f"timestamp.txt holds {text[:60]!r}, not a time (expected {expected})"
    return None


def submission_problem(folder: Path, exercise: str) -> str | None:
    """Why the submission in ``submitted/<student>/<exercise>/`` cannot be graded, in one line
    naming the file (None when it can): an empty folder, a notebook under another name or
    several, a file that is not a notebook, a timestamp nbgrader cannot read."""
    expected = f"{exercise}.ipynb"
    notebook = folder / expected
    try:
        irregular = folder.parent.name if folder.parent.is_symlink() else _not_regular(folder)
    except OSError as err:
        return f"the folder {folder.name}/ cannot be read: {err.strerror}"
    if irregular:
        return (f"{irregular} is not a regular file (a symbolic link, FIFO or device could hand "
                f"the student the grader's files): nothing of this submission is graded")
    if not notebook.is_file():
        others = sorted(p.name for p in folder.glob("*.ipynb"))
        if not any(folder.iterdir()):
            return f"the folder {folder.name}/ is empty: nothing was handed in"
        if not others:
            return f"no notebook handed in: expected {expected}"
        if len(others) == 1:
            return f"{others[0]} is not graded: the notebook must be named {expected}"
        return f"{len(others)} notebooks ({', '.join(others)}) and none named {expected}"
    try:
        read_notebook(notebook, validate=True)
    except GradingError as err:
        return str(err).replace(str(notebook), expected)
    return timestamp_problem(folder)


def _not_regular(folder: Path) -> str | None:
    """The first entry under ``folder`` (itself included) that is neither a regular file nor a
    folder, as a path relative to its parent, checked with ``lstat`` (links are not followed)."""
    stack = [folder]
    while stack:
        path = stack.pop()
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            stack.extend(sorted(path.iterdir(), reverse=True))
        elif not stat.S_ISREG(mode):
            return path.relative_to(folder.parent).as_posix()
    return None


def find_submissions(course: Path, exercise: str) -> tuple[dict[str, Path], dict[str, str]]:
    """``({student: notebook}, {student: problem})`` under ``submitted/*/<exercise>/``: the
    submissions that can be graded, and why each of the others cannot (any failure while
    checking one is that submission's problem, never the class's)."""
    found, problems = {}, {}
    for folder in sorted((course / "submitted").glob(f"*/{exercise}")):
        student = folder.parent.name
        try:
            problem = submission_problem(folder, exercise)
        except Exception as err:  # noqa: BLE001 - one submission's failure is its own
            problem = f"the grader could not check it: {type(err).__name__}: {str(err)[:200]}"
        if problem:
            problems[student] = problem
        else:
            found[student] = folder / f"{exercise}.ipynb"
    if not found and not problems:
        raise GradingError(
            f"no submissions of {exercise} in {course / 'submitted'}: each student's notebook "
            f"goes to submitted/<student>/{exercise}/{exercise}.ipynb"
        )
    return found, problems


def submissions(course: Path, exercise: str) -> dict[str, Path]:
    """``{student: notebook}`` under ``submitted/*/<exercise>/``; GradingError (nothing graded)
    if any submission cannot be graded (``autograde --strict``)."""
    found, problems = find_submissions(course, exercise)
    if problems:
        raise GradingError("cannot grade these submissions (nothing was graded):\n  " + "\n  ".join(
            f"{student}: {problem}" for student, problem in problems.items()))
    return found


def read_all_flags(course: Path) -> dict[str, dict[str, list[str]]]:
    """``{exercise: {student: flags}}``: what autograde flagged in this course."""
    path = course / FLAGS
    return json.loads(path.read_text()) if path.is_file() else {}


def read_flags(course: Path, exercise: str) -> dict[str, list[str]]:
    """``{student: flags}`` that autograde recorded for ``exercise`` in this course."""
    return read_all_flags(course).get(exercise, {})


def write_flags(course: Path, exercise: str, flags: dict[str, list[str]]) -> None:
    """Record the flags of the students in ``flags`` (an empty list clears a student's); the
    other students' stay as they were."""
    recorded = read_all_flags(course)
    mine = recorded.setdefault(exercise, {})
    for student, student_flags in flags.items():
        if student_flags:
            mine[student] = list(student_flags)
        else:
            mine.pop(student, None)
    (course / FLAGS).write_text(json.dumps(recorded, indent=1, sort_keys=True))


# Most submissions per nbgrader process: its ~4 s of imports (nbgrader, torch) and its warm
# sandbox's start are paid once per batch; more batches than jobs balance uneven submissions.
BATCH = 16
SUBMISSION_DONE = "Setting destination file permissions"  # nbgrader's last line per submission


MACHINE_RETRIES = 2  # more tries for a submission whose sandbox could not start
MACHINE_FAULT = ("not graded: the grading machine could not start a sandbox for it (not the "
                 "student's doing; tried {tries} times): autograde it again")
_FAILED_STUDENT = re.compile(r"There was an error processing assignment '(?P<exercise>[^']*)' "
                             r"for student '(?P<student>[^']*)'")


def _nbgrader_autograde(course: Path, exercise: str, selection: list[str], force: bool,
                        unsafe_no_sandbox: bool, cell_timeout: float | None,
                        time_budget: float | None, graded: Callable[[], None],
                        ledger: Path | None = None) -> tuple[str | None, list[str]]:
    """Run ``nbgrader autograde`` with ``selection`` options: ``(problem, failed)``, where
    ``problem`` is None when it ran, else why not, and ``failed`` the students nbgrader says it
    could not grade (all of them may be unknown: an empty list then).

    ``graded()`` is called each time nbgrader finishes a submission.
    """
    args = ["autograde", exercise, *selection]
    if cell_timeout is not None:
        args.append(f"--SandboxedExecute.timeout={float(cell_timeout)}")
    if time_budget is not None:
        args.append(f"--SandboxedExecute.time_budget={float(time_budget)}")
    if ledger is not None:
        args.append(f"--SandboxedExecute.budget_ledger={ledger}")
    if force:
        args.append("--force")
    if unsafe_no_sandbox:
        args.append("--SandboxedExecute.unsafe_no_sandbox=True")

    def on_line(line: str) -> None:
        if SUBMISSION_DONE in line:
            graded()

    try:
        log = run_nbgrader(args, course, on_line)
    except NbgraderFailed as failure:
        log = str(failure)
    else:
        if "| ERROR]" not in log:  # nbgrader may log a failed notebook and still exit 0
            return None, []
    failed = sorted({m["student"] for m in _FAILED_STUDENT.finditer(log)
                     if m["exercise"] == exercise})
    said = log_warnings(log, continued=False)
    return "nbgrader could not grade it: " + (" | ".join(said) or log.strip()[-300:]), failed


def _machine_fault(ledger: Path | None, student: str) -> str | None:
    """What the executor noted when ``student``'s sandbox could not start (None: it started)."""
    if ledger is None:
        return None
    note = ledger / f"{student}.machine-fault"
    try:
        text = note.read_text()
    except OSError:
        return None
    note.unlink()
    return text or "the sandbox did not start"


def autograde_batch(course: Path, exercise: str, students: list[str], force: bool = False,
                    unsafe_no_sandbox: bool = False, cell_timeout: float | None = None,
                    time_budget: float | None = None,
                    graded: Callable[[], None] = lambda: None,
                    ledger: Path | None = None) -> dict[str, str]:
    """``nbgrader autograde`` some students' submissions in one process; ``{student: problem}``.

    Without ``force``, nbgrader skips a submission it already graded (unless resubmitted with a
    newer ``timestamp.txt``); ``force`` grades it again and replaces its scores. Student code runs
    in the sandbox (``SandboxedExecute`` in the course's ``nbgrader_config.py``);
    ``cell_timeout`` and ``time_budget`` override its seconds per cell and per submission.

    nbgrader goes on past a submission it cannot grade and names it at the end: only those are
    graded again, each alone (an error it names nobody for: each half of the batch again) (their time budget is per student per autograde, kept in
    ``ledger``: a retry gets what is left of it). A submission whose sandbox could not start (a
    fault of the machine, never of the student) is tried up to ``MACHINE_RETRIES`` more times,
    and if it still has none, it is flagged as not graded, never scored.
    """
    options = dict(force=force, unsafe_no_sandbox=unsafe_no_sandbox, cell_timeout=cell_timeout,
                   time_budget=time_budget, graded=graded, ledger=ledger)
    others = sorted(p.parent.name for p in (course / "submitted").glob(f"*/{exercise}")
                    if p.parent.name not in students)
    if len(students) == 1:
        selection = [f"--student={students[0]}"]
    else:
        selection = [f"--CourseDirectory.student_id_exclude={','.join(others)}"] if others else []
    problem, failed = _nbgrader_autograde(course, exercise, selection, **options)
    if problem is None:
        return {}
    if len(students) == 1:
        failed = list(students)
    elif not failed:  # an error nbgrader names nobody for: each half is graded again
        half = len(students) // 2
        return (autograde_batch(course, exercise, students[:half], **options)
                | autograde_batch(course, exercise, students[half:], **options))
    problems = {}
    for student in failed:
        tries = 1
        fault = _machine_fault(ledger, student)
        if len(students) > 1 or fault:  # a batch's failure is retried alone, a fault again
            while True:
                tries += 1
                problem, _ = _nbgrader_autograde(course, exercise, [f"--student={student}"],
                                                 **options)
                fault = _machine_fault(ledger, student)
                if problem is None or not fault or tries > MACHINE_RETRIES:
                    break
        if problem is not None:
            problems[student] = (MACHINE_FAULT.format(tries=tries) + f" ({fault[:300]})"
                                 if fault else problem)
    return problems
def autograde(course: Path, exercise: str, students: list[str], force: bool = False,
              jobs: int = 1, unsafe_no_sandbox: bool = False, cell_timeout: float | None = None,
              time_budget: float | None = None, progress: bool = True) -> dict[str, str]:
    """Autograde ``students``' submissions, ``jobs`` batches at a time; ``{student: problem}``.

    The batches are as even as can be, of at most ``BATCH`` submissions, and a multiple of
    ``jobs`` in number (20 submissions with 2 jobs: two batches of 10).

    A submission that cannot be graded (a broken notebook, a duplicated test id) is reported
    and the others are graded all the same. Each student's time budget holds for this whole
    call, retries included (a ledger folder in the course, removed at the end).
    """
    import uuid

    if jobs < 1:
        raise GradingError(f"--jobs must be a positive number of parallel graders, got {jobs}")
    rounds = max(1, math.ceil(len(students) / (jobs * BATCH)))
    size = max(1, math.ceil(len(students) / (jobs * rounds)))
    batches = [students[i:i + size] for i in range(0, len(students), size)]
    problems: dict[str, str] = {}
    ledger = course / LEDGERS / uuid.uuid4().hex
    ledger.mkdir(parents=True)
    try:
        _autograde_batches(course, exercise, batches, force, unsafe_no_sandbox, cell_timeout,
                           time_budget, progress, jobs, ledger, problems, len(students))
    finally:
        shutil.rmtree(ledger, ignore_errors=True)
    return problems


LEDGERS = ".beyondbert-budget"  # in the course: one ledger folder per running autograde


def _autograde_batches(course, exercise, batches, force, unsafe_no_sandbox, cell_timeout,
                       time_budget, progress, jobs, ledger, problems, total) -> None:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=jobs) as pool, tqdm(
            total=total, desc=f"autograde {exercise}", unit="submission",
            disable=not progress, file=sys.stderr) as bar:
        counted = [0] * len(batches)  # submissions of each batch already on the bar

        def graded_in(i: int) -> Callable[[], None]:
            def graded() -> None:
                if counted[i] < len(batches[i]):  # a batch graded again one by one counts once
                    counted[i] += 1
                    bar.update()
            return graded

        futures = {pool.submit(autograde_batch, course, exercise, batch, force, unsafe_no_sandbox,
                               cell_timeout, time_budget, graded_in(i), ledger): i
                   for i, batch in enumerate(batches)}
        for future in as_completed(futures):
            problems.update(future.result())
            i = futures[future]
            bar.update(len(batches[i]) - counted[i])  # the ones nbgrader could not grade


def course_setting(course: Path, section: str, name: str) -> str | None:
    """``c.<section>.<name>`` from the course's ``nbgrader_config.py``, or None when unset."""
    from traitlets.config.loader import PyFileConfigLoader

    if not (course / CONFIG).is_file():
        return None
    config = PyFileConfigLoader(CONFIG, path=str(course)).load_config()
    value = config[section].get(name) if section in config else None
    return str(value) if value else None


def exchange_root(course: Path) -> str | None:
    """``Exchange.root`` if the course's ``nbgrader_config.py`` sets one (a JupyterHub course)."""
    return course_setting(course, "Exchange", "root")


def gradebook_url(course: Path) -> str:
    """The gradebook's database URL: ``CourseDirectory.db_url`` (e.g. PostgreSQL for several
    graders) if the course sets one, else nbgrader's default ``gradebook.db`` in the course."""
    return (course_setting(course, "CourseDirectory", "db_url")
            or f"sqlite:///{course / GRADEBOOK}")


def has_gradebook(course: Path) -> bool:
    """Whether the course's gradebook exists (a database server's is assumed to)."""
    url = gradebook_url(course)
    return not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).is_file()


def release_to_exchange(course: Path, exercise: str, exchange: str) -> None:
    """``nbgrader release_assignment``: publish the student version to the exchange folder."""
    run_nbgrader(["release_assignment", exercise, "--force", f"--Exchange.root={exchange}"],
                 course)


class Collected(list):
    """The students whose submission is new (a list), with ``warnings``: what nbgrader's collect
    logged as a warning (refused folders and why), for the instructor to read."""

    def __init__(self, students: list[str], warnings: list[str]) -> None:
        super().__init__(students)
        self.warnings = warnings


SAFE_COLLECT = "beyondbert.grading.exchange.SafeCollect"


def collect_from_exchange(course: Path, exercise: str, exchange: str) -> Collected:
    """``nbgrader collect --update`` with :class:`~.exchange.SafeCollect` (whatever the course's
    config says): only regular files of folders the named student owns are copied, each new
    submission stamped with the time of collection. Returns the students collected anew, and
    nbgrader's warnings (a refused folder says why)."""
    from .exchange import collected_record

    before = collected_record(course).get(exercise, {})
    log = run_nbgrader(["collect", exercise, "--update", f"--Exchange.root={exchange}",
                        f"--ExchangeFactory.collect={SAFE_COLLECT}"], course)
    after = collected_record(course).get(exercise, {})
    collected = sorted(s for s, seen in after.items() if before.get(s) != seen)
    return Collected(collected, log_warnings(log))


def log_warnings(log: str, continued: bool = True) -> list[str]:
    """nbgrader's WARNING and ERROR messages in ``log``, one string each (with ``continued``,
    their continuation lines joined; else only the first line)."""
    said, current = [], None
    for line in log.splitlines():
        if line.startswith("["):
            current = None
            if "| WARNING]" in line or "| ERROR]" in line:
                current = [line.split("]", 1)[1].strip()]
                said.append(current)
        elif continued and current is not None and line.strip():
            current.append(line.strip())
    return [" ".join(part for part in parts if part) for parts in said]


def export_csv(course: Path, output: Path) -> Path:
    """``nbgrader export``: one CSV row per (exercise, student) of the gradebook."""
    output = output.expanduser().resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    run_nbgrader(["export", f"--to={output}"], course)
    return output
