"""The grading catalog, graded: every crafted submission of ``grading_catalog.py`` gets the result
it must get, in one course graded with ``--jobs 2`` (a few graded again with 1 and 2 jobs).

The table of cases and results is written to ``artifacts/grading-catalog.csv``; the committed
``tests/grading-catalog.csv`` (shown in the book's instructor guide) must equal it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import socket
import sqlite3
import threading
from pathlib import Path

import nbformat
import pytest

from beyondbert.grading import autograde, collect, grade_submissions
from beyondbert.grading.course import release_to_exchange, submit
from beyondbert.grading.runner import not_graded
from beyondbert.grading.feedback import feedback_html
from beyondbert.grading.gradebook import SubmissionResult, TestResult
from beyondbert.sandbox.session import SandboxSession
from grading_catalog import CASES, EXERCISE, FULL_MARKS, REPO, STALL_BUDGET, Case, Where
from notebooks import secret_regions, solution_answers, write_answers

pytestmark = pytest.mark.xdist_group("catalog")

CATALOG_CSV = REPO / "tests" / "grading-catalog.csv"
ARTIFACT_CSV = REPO / "artifacts" / "grading-catalog.csv"
SOLUTION = REPO / "solutions" / f"{EXERCISE}.ipynb"
AGAIN = ["case-01", "case-13a", "case-23", "case-24"]  # graded again with --jobs 1 and --jobs 2
CELL_TIMEOUT = 20.0  # seconds: case 11's endless loop costs this much; margin for a busy CI machine
# What the sandbox sets (launcher.py), plus PWD (bubblewrap's --chdir), LC_CTYPE (Python's
# C-locale coercion, PEP 538) and the offline settings `import beyondbert` sets in every kernel
# (a student's own too, so they reveal nothing about grading).
SANDBOX_ENV = {"PATH", "HOME", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "MPLBACKEND",
               "MPLCONFIGDIR", "HF_HUB_OFFLINE", "OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM",
               "PWD", "LC_CTYPE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS",
               "TRANSFORMERS_VERBOSITY"}


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts (case 22)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port, self.connections, self._stop = self.server.getsockname()[1], 0, False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                self.server.accept()[0].close()
                self.connections += 1
            except TimeoutError:
                continue

    def close(self) -> int:
        self._stop = True
        self.thread.join()
        self.server.close()
        return self.connections


def sandbox_environment() -> dict[str, str]:
    """The environment variables student code sees in the sandbox."""
    with SandboxSession(None) as session:
        session.run_cell("import os\nenvironment = dict(os.environ)", timeout=60)
        return session.describe("environment")["value"]


def submission_times(course: Path) -> dict[str, str]:
    """``{student: submission time}`` as the gradebook records it."""
    db = sqlite3.connect(f"{(course / 'gradebook.db').as_uri()}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT student_id, timestamp FROM submitted_assignment"))
    finally:
        db.close()


def gradebook_rows(course: Path) -> list[tuple]:
    """Every grade and submission time in the course's gradebook, sorted (to compare runs)."""
    db = sqlite3.connect(f"{(course / 'gradebook.db').as_uri()}?mode=ro", uri=True)
    try:
        return sorted(db.execute(
            "SELECT sa.student_id, sa.timestamp, g.cell_id, g.auto_score, g.manual_score "
            "FROM grade AS g JOIN submitted_notebook AS sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment AS sa ON sn.assignment_id = sa.id"))
    finally:
        db.close()


def grade_catalog(tmp: Path) -> dict:
    """Build every case's submission, grade them all, and collect what the checks need.

    Most cases are graded in one course; the stalling ones (``time_budget``) in one of their own
    with that budget; the ungradable files (``broken``) are then added to the first course and
    ``autograde`` runs again there, as an instructor would, without ``--force``.
    """
    course, listener = tmp / "course", Listener()
    where = Where(course=course, port=listener.port)
    student_version = REPO / "exercises" / f"{EXERCISE}.ipynb"
    submissions = {case.key: case.build(student_version, where, tmp / f"{case.key}.ipynb")
                   for case in CASES}
    submissions["reference"] = write_answers(student_version, solution_answers(SOLUTION),
                                             tmp / "reference.ipynb")
    stalling = {c.key for c in CASES if c.time_budget is not None}
    broken = {c.key: c for c in CASES if c.broken is not None}
    handed_in = {c.key: c for c in CASES if c.exchange is not None}  # through the exchange
    solution_hash = hashlib.sha256(SOLUTION.read_bytes()).hexdigest()
    results = grade_submissions(EXERCISE, {k: v for k, v in submissions.items()
                                           if k not in stalling and k not in broken
                                           and k not in handed_in},
                                REPO, jobs=2, cell_timeout=CELL_TIMEOUT, keep_course=course)
    results.update(grade_submissions(EXERCISE, {k: submissions[k] for k in stalling}, REPO,
                                     jobs=2, cell_timeout=CELL_TIMEOUT,
                                     time_budget=STALL_BUDGET))
    before = gradebook_rows(course)
    for key, case in broken.items():
        case.broken(submit(course, EXERCISE, key, submissions[key]).parent)
    exchange = tmp / "exchange"
    inbound = exchange / "beyond-bert" / "inbound"
    inbound.mkdir(parents=True)
    release_to_exchange(course, EXERCISE, str(exchange))
    for key, case in handed_in.items():
        case.exchange(inbound, submissions[key], key)
    collected_now = collect(EXERCISE, course, REPO, exchange=str(exchange))
    again_in_course = autograde(EXERCISE, course, REPO, jobs=2)
    results.update({key: again_in_course[key] for key in broken})
    for key in handed_in:  # a refused folder was never collected: no submission, no grade
        results[key] = again_in_course.get(key) or not_graded(
            course, EXERCISE, key, [w for w in collected_now.warnings if f"/{key}+" in w])
    old_students = {row[0] for row in before}
    others_unchanged = [row for row in gradebook_rows(course) if row[0] in old_students] == before
    again = {jobs: grade_submissions(EXERCISE, {k: submissions[k] for k in AGAIN}, REPO,
                                     jobs=jobs, cell_timeout=CELL_TIMEOUT) for jobs in (1, 2)}
    collected = {student: (course / "submitted" / student / EXERCISE / "timestamp.txt").read_text()
                 for student in ("case-21", "reference", *handed_in)
                 if (course / "submitted" / student / EXERCISE / "timestamp.txt").is_file()}
    return {
        "course": str(course),
        "results": {k: r.as_dict() for k, r in results.items()},
        "again": {str(jobs): {k: r.as_dict() for k, r in rs.items()} for jobs, rs in again.items()},
        "others_unchanged": others_unchanged,
        "connections": listener.close(),
        "solution_unchanged": hashlib.sha256(SOLUTION.read_bytes()).hexdigest() == solution_hash,
        "submission_times": submission_times(course),
        "collected": collected,
        "collect_warnings": list(collected_now.warnings),
        "collected_students": list(collected_now),
        "sandbox_environment": sandbox_environment(),
    }


@pytest.fixture(scope="module")
def catalog(run_once) -> dict:
    return run_once("grading-catalog", grade_catalog)


def as_result(student: str, data: dict) -> SubmissionResult:
    tests = [TestResult(t["name"], t["score"], t["max_score"], t["message"]) for t in data["tests"]]
    return SubmissionResult(student, tests, data["flags"])


def failed(data: dict) -> set[str]:
    return {t["name"] for t in data["tests"] if not t["passed"]}


# -------------------------------------------------------------- checks beyond fails / flagged
def hidden_only_lines() -> set[str]:
    """Lines of the solution's test cells that only hidden tests hold (at least 12 characters)."""
    inside, outside = set(), set()
    for cell in nbformat.read(SOLUTION, as_version=4).cells:
        hidden, visible = secret_regions(cell.source)
        inside.update(hidden)
        outside.update(visible)
    return {line for line in inside - outside if len(line) >= 12}


def check_points_from_record(catalog: dict, case: Case) -> tuple[list[str], str]:
    data = catalog["results"][case.key]
    return ([] if data["max_score"] == FULL_MARKS else
            [f"max score {data['max_score']}, not {FULL_MARKS:g}"]), ""


def check_duplicate_flagged(catalog: dict, case: Case) -> tuple[list[str], str]:
    flags = " ".join(catalog["results"][case.key]["flags"])
    graded = len(catalog["results"])
    problems = [] if "appears 2 times" in flags else [f"no duplicate flag: {flags!r}"]
    return problems, f"{graded - 1} other submissions of the batch graded"


def check_tamper_failed(catalog: dict, case: Case) -> tuple[list[str], str]:
    problems = [] if catalog["solution_unchanged"] else ["solutions/ notebook changed"]
    reference = catalog["results"]["reference"]
    if reference["score"] != FULL_MARKS:
        problems.append(f"another student's score changed to {reference['score']}")
    return problems, "gradebook, other submissions and solutions untouched"


def check_environment(catalog: dict, case: Case) -> tuple[list[str], str]:
    env = catalog["sandbox_environment"]
    problems = [f"unexpected variable {k}" for k in sorted(set(env) - SANDBOX_ENV)]
    problems += [f"{k} reveals a path of the grader: {v}" for k, v in env.items()
                 if catalog["course"] in v or str(REPO) in v]
    return problems, f"student code sees {len(env)} variables: {', '.join(sorted(env))}"


# Visible tests whose own (visible) inputs a case's answer takes for hidden ones and fails on:
# their message shows those visible inputs, which is no leak (the visible pass sends no other).
VISIBLE_MESSAGES = {"20": {"test_mean_pool_all_padding"}, "27c": {"test_mean_pool_all_padding"}}


def check_no_leak(catalog: dict, case: Case) -> tuple[list[str], str]:
    data = catalog["results"][case.key]
    html = feedback_html(EXERCISE, as_result(case.key, data))
    shown = VISIBLE_MESSAGES.get(case.number, set())
    problems = [f"{t['name']}: message {t['message']!r}" for t in data["tests"]
                if not t["passed"] and not t["message"].endswith("a hidden test failed")
                and t["name"] not in shown]
    problems += ["hidden input 1000000.0 in the feedback"] if "1000000" in html else []
    problems += [f"hidden test line in the feedback: {line!r}" for line in hidden_only_lines()
                 if line in html]
    return problems, "feedback: pass/fail and \"a hidden test failed\" only"


def check_timestamp(catalog: dict, case: Case) -> tuple[list[str], str]:
    recorded = catalog["submission_times"].get(case.key, "")
    collected = catalog["collected"].get(case.key, "(not collected)")
    problems = [] if recorded[:19] == collected[:19] else [
        f"gradebook time {recorded!r} is not the collection time {collected!r}"]
    problems += [f"a forged year reached the gradebook: {recorded}"
                 for year in ("2000", "2026-01-01", "2099") if recorded.startswith(year)]
    return problems, "gradebook time = collection time"


def check_refused(words: str):
    """A case handed in through the exchange: refused at collect, with a warning saying why."""
    def check(catalog: dict, case: Case) -> tuple[list[str], str]:
        said = [w for w in catalog["collect_warnings"] if f"/{case.key}+" in w]
        problems = [] if any("refused" in w and words in w for w in said) else [
            f"no warning says {words!r}: {said!r}"]
        if case.key in catalog["collected_students"]:
            problems.append("it was collected")
        return problems, f"collect warned: {words}; nothing collected"
    return check


def check_forged_folder_refused(catalog: dict, case: Case) -> tuple[list[str], str]:
    words = f"names {case.key} but is owned by bin"
    said = [w for w in catalog["collect_warnings"] if words in w]
    return ([] if said else [f"no warning says {words!r}: {catalog['collect_warnings']!r}"],
            f"collect warned: {words}")


def check_pid_and_clock(catalog: dict, case: Case) -> tuple[list[str], str]:
    """The two visible tests' messages: the same process id, and no 10 s between them."""
    messages = {t["name"]: t["message"] for t in catalog["results"][case.key]["tests"]}
    try:
        seen = [messages[name].split("pid ", 1)[1].split() for name in
                ("test_mean_pool", "test_mean_pool_one_token")]
        (pid1, _, clock1), (pid2, _, clock2) = seen
        gap = float(clock2) - float(clock1)
    except (IndexError, KeyError, ValueError):
        return [f"the visible messages are not as expected: {messages!r}"], ""
    problems = [] if pid1 == pid2 else [f"the process id changed: {pid1} -> {pid2}"]
    problems += [] if gap < 10 else [f"{gap:.1f} s between the visible tests: the clock leaks"]
    return problems, "both visible messages from one process, no hidden sleep between them"


def check_network(catalog: dict, case: Case) -> tuple[list[str], str]:
    n = catalog["connections"]
    return ([] if n == 0 else [f"the local server saw {n} connections"]), \
        f"the test's server on 127.0.0.1 saw {n} connections"


def check_deterministic(catalog: dict, case: Case) -> tuple[list[str], str]:
    runs = [catalog["results"][case.key], catalog["again"]["1"][case.key],
            catalog["again"]["2"][case.key]]
    same = all(run == runs[0] for run in runs)
    return ([] if same else ["the three gradings differ"]), "3 gradings identical" if same else ""


def check_modules_refused(catalog: dict, case: Case) -> tuple[list[str], str]:
    messages = " ".join(t["message"] for t in catalog["results"][case.key]["tests"])
    refused = sorted({m.split("does not import ", 1)[1].split(")", 1)[0]
                      for m in messages.split("TypeError: ")[1:] if "does not import " in m})
    problems = [] if refused else [f"no test says the grader refused a module: {messages[:300]!r}"]
    return problems, f"tests say: the grader does not import {', '.join(refused)}"


def check_flag(words: str, note: str):
    def check(catalog: dict, case: Case) -> tuple[list[str], str]:
        flags = catalog["results"][case.key]["flags"]
        problems = [] if any(words in flag for flag in flags) else [
            f"no flag says {words!r}: {flags!r}"]
        if case.broken is not None and not catalog["others_unchanged"]:
            problems.append("the other students' grades changed when autograde ran again")
        return problems, note
    return check


EXTRA_CHECKS = {"08": check_points_from_record, "09": check_duplicate_flagged,
                "18": check_tamper_failed, "19": check_environment, "20": check_no_leak,
                "20b": check_no_leak, "20c": check_no_leak,
                "21": check_timestamp, "22": check_network, "23": check_deterministic,
                "27a": check_no_leak, "27b": check_no_leak, "27c": check_no_leak,
                "28a": check_modules_refused, "28b": check_modules_refused,
                "30a": check_flag("time budget", "flag: the time budget ran out"),
                "30b": check_flag("time budget", "flag: the time budget ran out"),
                "31a": check_flag("malformed message", "flag: a forged reply"),
                "31b": check_flag("malformed message", "flag: a forged reply"),
                "32a": check_flag("is not a readable notebook", "flag: not a readable notebook; "
                                  "the others' grades unchanged"),
                "32b": check_flag("my-answers.ipynb is not graded: the notebook must be named",
                                  "flag: the file name; the others' grades unchanged"),
                "32c": check_flag("2 notebooks (draft.ipynb, final (1).ipynb) and none named",
                                  "flag: several notebooks; the others' grades unchanged"),
                "32d": check_flag("timestamp.txt holds 'next Tuesday at noon', not a time",
                                  "flag: the timestamp; the others' grades unchanged"),
                "32e": check_flag("is empty: nothing was handed in",
                                  "flag: an empty folder; the others' grades unchanged"),
                "33a": check_flag("is not a regular file", "flag: a link; the others' grades "
                                  "unchanged"),
                "33b": check_flag("is not a regular file", "flag: links; the others' grades "
                                  "unchanged"),
                "33c": check_flag("is not a regular file", "flag: a FIFO; the others' grades "
                                  "unchanged"),
                "34a": check_refused("is a symbolic link"), "34b": check_refused(
                    "is a symbolic link"), "34c": check_refused("is a FIFO"),
                "35": check_forged_folder_refused, "36a": check_timestamp,
                "36b": check_timestamp,
                "37a": check_flag("is not a readable notebook: RecursionError",
                                  "flag: not a readable notebook; the others' grades unchanged"),
                "37b": check_flag("is not a readable notebook: ValueError: Exceeds the limit",
                                  "flag: not a readable notebook; the others' grades unchanged"),
                "37c": check_flag("is not a valid notebook: [] is not of type 'object'",
                                  "flag: nbformat validation; the others' grades unchanged"),
                "38a": check_flag("cells, over the grader's cap of 1000",
                                  "flag: the cell cap; the others' grades unchanged"),
                "38b": check_flag("MiB, over the grader's cap of 16 MiB",
                                  "flag: the size cap; the others' grades unchanged"),
                "41": check_pid_and_clock}


def judge(catalog: dict, case: Case) -> tuple[list[str], str]:
    """(problems, what was observed) for one case."""
    data = catalog["results"][case.key]
    problems = []
    if case.fails is not None and failed(data) != case.fails:
        problems.append(f"expected failing tests {sorted(case.fails)}, got {sorted(failed(data))}")
    if bool(data["flags"]) != case.flagged:
        problems.append(f"flagged {data['flags']!r}, expected flagged={case.flagged}")
    observed = f"{data['score']:g} of {data['max_score']:g} points"
    observed += "; flagged" if data["flags"] else ""
    if case.number in EXTRA_CHECKS:
        more, note = EXTRA_CHECKS[case.number](catalog, case)
        problems += more
        observed += f"; {note}" if note else ""
    return problems, observed


def catalog_table(catalog: dict) -> str:
    """The CSV table: case, attack, expected, observed, verdict."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["case", "the submission", "expected", "observed", "verdict"])
    for case in CASES:
        problems, observed = judge(catalog, case)
        writer.writerow([case.number, case.attack, case.expected, observed,
                         "as expected" if not problems else "WRONG"])
    return out.getvalue()


# ------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.key)
def test_case_gets_the_expected_result(catalog, case):
    problems, _ = judge(catalog, case)
    assert not problems, f"case {case.number} ({case.attack}):\n  " + "\n  ".join(problems)


def test_reference_submission_gets_full_marks(catalog):
    reference = catalog["results"]["reference"]
    assert reference["score"] == reference["max_score"] == FULL_MARKS and reference["flags"] == []


def test_jobs_1_and_jobs_2_give_identical_results(catalog):
    for key in AGAIN:
        assert catalog["again"]["1"][key] == catalog["again"]["2"][key] == \
            catalog["results"][key], key


def test_committed_catalog_table_is_current(catalog):
    table = catalog_table(catalog)
    ARTIFACT_CSV.parent.mkdir(exist_ok=True)
    ARTIFACT_CSV.write_text(table)
    assert CATALOG_CSV.is_file() and CATALOG_CSV.read_text() == table, (
        f"{CATALOG_CSV.relative_to(REPO)} differs from this run's table: copy "
        f"{ARTIFACT_CSV.relative_to(REPO)} over it after reading the difference")
