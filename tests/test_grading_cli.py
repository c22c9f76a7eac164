"""The instructor's round trip through the ``beyondbert`` console script, and its errors.

release -> two students' notebooks in submitted/<student>/<exercise>/ -> autograde -> export CSV
-> re-grade one student with --force; ``grade --json`` on one file; bad input fails with exit
status 2 before anything is written.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from beyondbert.grading import GradingError, find_repo
from beyondbert.grading.checks import assert_own_work, library_calls
from beyondbert.grading.gradebook import test_points as points_of  # not a test of its own

EXERCISE = "01-encoders-and-bert"
NOTEBOOK = f"{EXERCISE}.ipynb"
_POINTS = points_of(Path(__file__).resolve().parents[1] / "solutions" / NOTEBOOK)
TESTS, FULL = list(_POINTS), sum(_POINTS.values())  # the test cells in order, and full marks
_SCRIPT = Path(sys.executable).parent / "beyondbert"
COMMAND = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "beyondbert.cli"]

pytestmark = pytest.mark.xdist_group("grading_cli")  # see test_exercises.py


def beyondbert(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the console script; return the finished process (exit status, stdout, stderr)."""
    return subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def place(course: Path, student: str, notebook: Path) -> None:
    target = course / "submitted" / student / EXERCISE / NOTEBOOK
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(notebook, target)


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh)}


def instructor_workflow(work: Path, repo: Path) -> dict:
    """Run every step of the instructor's workflow in ``work``; return what each step printed."""
    course = work / "course"
    steps = {"release": beyondbert("release", EXERCISE, "--course", course, cwd=work)}
    released = course / "release" / EXERCISE / NOTEBOOK
    place(course, "alice", repo / "solutions" / NOTEBOOK)  # the full solution
    place(course, "bob", released)  # the untouched student version
    steps["autograde"] = beyondbert("autograde", EXERCISE, "--course", course, "--jobs", "2",
                                    cwd=work)
    steps["feedback"] = beyondbert("feedback", EXERCISE, "--course", course, cwd=work)
    steps["export"] = beyondbert("export", "--course", course, "--output", work / "grades.csv",
                                 cwd=work)
    # bob hands in the solution later: only --force grades him again
    place(course, "bob", repo / "solutions" / NOTEBOOK)
    steps["no_force"] = beyondbert("autograde", EXERCISE, "--course", course, cwd=work)
    steps["regrade"] = beyondbert("autograde", EXERCISE, "--course", course, "--force",
                                  "--student", "bob", cwd=work)
    steps["export_again"] = beyondbert("export", "--course", course, "--output",
                                       work / "grades-after-regrade.csv", cwd=work)
    return {"work": str(work), "course": str(course), "released": str(released),
            "steps": {name: {"returncode": step.returncode, "stdout": step.stdout,
                             "stderr": step.stderr} for name, step in steps.items()}}


@pytest.fixture(scope="module")
def round_trip(run_once, repo):
    """The instructor workflow, run once per test run; the tests below read what it left."""
    done = run_once("instructor-workflow", lambda work: instructor_workflow(work, repo))
    steps = {name: SimpleNamespace(**step) for name, step in done["steps"].items()}
    return SimpleNamespace(work=Path(done["work"]), course=Path(done["course"]),
                           released=Path(done["released"]), steps=steps)


def test_release_creates_the_course_and_the_student_version(round_trip, repo):
    step = round_trip.steps["release"]
    assert step.returncode == 0, step.stderr
    course = round_trip.course
    assert (course / "nbgrader_config.py").is_file()
    assert (course / "gradebook.db").is_file()
    assert (course / "source" / EXERCISE / NOTEBOOK).is_file()
    assert round_trip.released.is_file()
    assert str(round_trip.released) in step.stdout
    assert "no exchange configured" in step.stdout
    assert round_trip.released.read_bytes() == (repo / "exercises" / NOTEBOOK).read_bytes()


def test_autograde_prints_a_score_per_student(round_trip):
    step = round_trip.steps["autograde"]
    assert step.returncode == 0, step.stderr
    rows = {line.split()[0]: line.split() for line in step.stdout.splitlines()[1:]}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"][1:4] == [f"{FULL:g}", f"{FULL:g}", "-"]
    assert rows["bob"][1:3] == ["0", f"{FULL:g}"] and "test_mean_pool," in rows["bob"]
    assert (round_trip.course / "autograded" / "alice" / EXERCISE / NOTEBOOK).is_file()


def test_feedback_shows_results_but_no_test_code(round_trip, repo):
    step = round_trip.steps["feedback"]
    assert step.returncode == 0, step.stderr
    pages = {s: round_trip.course / "feedback" / s / EXERCISE / f"{EXERCISE}.html"
             for s in ("alice", "bob")}
    assert all(str(page) in step.stdout for page in pages.values())
    alice, bob = (pages[s].read_text() for s in ("alice", "bob"))
    assert f"Score: <strong>{FULL:g} / {FULL:g}</strong>" in alice and 'class="failed"' not in alice
    assert f"Score: <strong>0 / {FULL:g}</strong>" in bob
    assert bob.count('class="failed"') == len(TESTS)
    assert "NotImplementedError" in bob  # the message of a failed visible test
    solution = (repo / "solutions" / NOTEBOOK).read_text()
    for secret in ("assert_own_work", "reference_mean_pool", "BEGIN HIDDEN TESTS"):
        assert secret in solution and secret not in bob, secret


def test_export_writes_one_csv_row_per_student(round_trip):
    step = round_trip.steps["export"]
    assert step.returncode == 0, step.stderr
    rows = read_csv(round_trip.work / "grades.csv")
    assert set(rows) == {"alice", "bob"}
    for row in rows.values():
        assert row["assignment"] == EXERCISE and float(row["max_score"]) == FULL
    assert float(rows["alice"]["score"]) == FULL
    assert float(rows["bob"]["score"]) == 0


def test_regrading_needs_force_and_replaces_the_old_score(round_trip):
    skipped = round_trip.steps["no_force"]
    assert skipped.returncode == 0, skipped.stderr
    assert ["bob", "0", f"{FULL:g}"] in [line.split()[:3] for line in skipped.stdout.splitlines()]
    step = round_trip.steps["regrade"]
    assert step.returncode == 0, step.stderr
    assert [line.split()[:3] for line in step.stdout.splitlines()[1:]] == [
        ["bob", f"{FULL:g}", f"{FULL:g}"]]
    assert round_trip.steps["export_again"].returncode == 0
    rows = read_csv(round_trip.work / "grades-after-regrade.csv")
    assert float(rows["bob"]["score"]) == FULL and float(rows["alice"]["score"]) == FULL


def test_strict_refuses_to_grade_anything_while_one_submission_is_broken(round_trip, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(round_trip.course, course)
    before = (course / "gradebook.db").read_bytes()
    broken = course / "submitted" / "carol" / EXERCISE / NOTEBOOK
    broken.parent.mkdir(parents=True)
    broken.write_text("{ this is not a notebook")
    misnamed = course / "submitted" / "dave" / EXERCISE / "my-answers.ipynb"
    misnamed.parent.mkdir(parents=True)
    shutil.copyfile(round_trip.released, misnamed)
    step = beyondbert("autograde", EXERCISE, "--course", course, "--force", "--strict",
                      cwd=tmp_path)
    assert step.returncode == 2
    assert "carol" in step.stderr and "not a readable notebook" in step.stderr
    assert "dave: my-answers.ipynb is not graded" in step.stderr and NOTEBOOK in step.stderr
    assert (course / "gradebook.db").read_bytes() == before
    assert not (course / "autograded" / "carol").exists()


def test_grade_one_file_as_json(repo, tmp_path):
    step = beyondbert("grade", repo / "solutions" / NOTEBOOK, "--exercise", EXERCISE, "--json",
                      cwd=tmp_path)
    assert step.returncode == 0, step.stderr
    result = json.loads(step.stdout)  # stdout holds the JSON only
    assert set(result) == {"score", "max_score", "flags", "tests"} and result["flags"] == []
    assert result["score"] == result["max_score"] == FULL
    assert [t["name"] for t in result["tests"]] == TESTS
    for test in result["tests"]:
        assert set(test) == {"name", "score", "max_score", "passed", "message"}
        assert test["passed"] is True and test["score"] == test["max_score"] > 0
    assert list(tmp_path.iterdir()) == [], "grade must not write into the current folder"


ME = pwd.getpwuid(os.getuid()).pw_name  # a student whose inbound folders this user owns


def _inbound(exchange: Path, student: str, stamp: str = "2000-01-01 00:00:00.000000 UTC",
             notebook: Path | None = None) -> Path:
    """An inbound folder as ``nbgrader submit`` makes it, named after ``student``."""
    folder = exchange / "beyond-bert" / "inbound" / f"{student}+{EXERCISE}+{stamp}+a1b2c3"
    folder.mkdir(parents=True)
    source = notebook or exchange / "beyond-bert" / "outbound" / EXERCISE / NOTEBOOK
    shutil.copyfile(source, folder / NOTEBOOK)
    return folder


@pytest.fixture
def released(tmp_path):
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    step = beyondbert("release", EXERCISE, "--course", tmp_path / "course", "--exchange", exchange,
                      cwd=tmp_path)
    assert step.returncode == 0, step.stderr
    return exchange


def _collect(tmp_path: Path, exchange: Path) -> subprocess.CompletedProcess:
    return beyondbert("collect", EXERCISE, "--course", tmp_path / "course", "--exchange",
                      exchange, cwd=tmp_path)


def test_release_to_an_exchange_and_collect_with_the_course_s_time(tmp_path, released):
    exchange = released
    assert (exchange / "beyond-bert" / "outbound" / EXERCISE / NOTEBOOK).is_file()

    # the student submits through the exchange, with a forged submission time of their own, in
    # the folder's name and in a timestamp.txt that is not even text
    inbound = _inbound(exchange, ME)
    (inbound / "timestamp.txt").write_bytes(b"\xff\xfe")
    step = _collect(tmp_path, exchange)
    assert step.returncode == 0, step.stderr
    assert f"collected 1 new submission(s): {ME}" in step.stdout
    submitted = tmp_path / "course" / "submitted" / ME / EXERCISE
    assert (submitted / NOTEBOOK).is_file()
    stamp = (submitted / "timestamp.txt").read_text()
    assert not stamp.startswith("2000") and stamp[:4] == str(datetime.now(timezone.utc).year)
    again = _collect(tmp_path, exchange)
    assert "collected 0 new submission(s)" in again.stdout
    assert (submitted / "timestamp.txt").read_text() == stamp  # nothing new: the stamp stays
    # a newer folder whose name claims an older time, and one whose name is not a time: the
    # newest by what the grader observes (its change time) wins, and nothing stops the class
    time.sleep(0.05)
    _inbound(exchange, ME, stamp="not a time at all")
    step = _collect(tmp_path, exchange)
    assert step.returncode == 0 and f"collected 1 new submission(s): {ME}" in step.stdout, step
    assert (submitted / "timestamp.txt").read_text() != stamp


def test_collect_refuses_links_and_files_that_are_not_regular(tmp_path, released, repo):
    exchange = released
    course = tmp_path / "course"
    solution = course / "source" / EXERCISE / NOTEBOOK
    linked = _inbound(exchange, ME)  # the notebook itself a link to the solution
    (linked / NOTEBOOK).unlink()
    (linked / NOTEBOOK).symlink_to(solution)
    step = _collect(tmp_path, exchange)
    assert step.returncode == 0, step.stderr
    assert "collected 0 new submission(s)" in step.stdout
    assert "refused" in step.stderr and "is a symbolic link" in step.stderr
    assert not (course / "submitted" / ME).exists()
    shutil.rmtree(linked)
    for name, make in [("gradebook.db", lambda p: p.symlink_to(course / "gradebook.db")),
                       ("notes", lambda p: os.mkfifo(p)),
                       ("data", lambda p: (p.mkdir(), (p / "x").symlink_to("/etc/passwd")))]:
        folder = _inbound(exchange, ME, stamp=name)
        make(folder / name)
        step = _collect(tmp_path, exchange)
        assert "collected 0 new submission(s)" in step.stdout, (name, step.stdout, step.stderr)
        assert "refused" in step.stderr, (name, step.stderr)
        assert not (course / "submitted" / ME).exists(), name
        shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a folder to another user")
def test_collect_refuses_a_folder_another_user_made_in_a_student_s_name(tmp_path, released):
    exchange = released
    own = _inbound(exchange, ME, stamp="2026-01-01 00:00:00.000000 UTC")
    time.sleep(0.05)
    forged = _inbound(exchange, ME, stamp="2099-01-01 00:00:00.000000 UTC")
    (forged / NOTEBOOK).write_text('{"cells": [], "metadata": {}, "nbformat": 4, '
                                   '"nbformat_minor": 5}')
    nobody = pwd.getpwnam("nobody").pw_uid
    for path in (forged, forged / NOTEBOOK):
        os.chown(path, nobody, nobody)
    step = _collect(tmp_path, exchange)
    assert step.returncode == 0, step.stderr
    assert f"collected 1 new submission(s): {ME}" in step.stdout
    assert f"names {ME} but is owned by nobody" in step.stderr
    submitted = tmp_path / "course" / "submitted" / ME / EXERCISE / NOTEBOOK
    assert submitted.read_bytes() == (own / NOTEBOOK).read_bytes()


@pytest.mark.parametrize("args", [
    ("grade", "x.ipynb", "--exercise", "99-nope"),
    ("release", "99-nope", "--course", "course"),
    ("autograde", "99-nope", "--course", "course"),
    ("generate", "99-nope"),
])
def test_unknown_exercise_lists_the_known_ones(args, tmp_path):
    step = beyondbert(*args, cwd=tmp_path)
    assert step.returncode == 2
    assert "unknown exercise '99-nope'" in step.stderr and EXERCISE in step.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be written on bad input"


def test_grading_a_missing_file_fails(tmp_path):
    step = beyondbert("grade", tmp_path / "absent.ipynb", "--exercise", EXERCISE, cwd=tmp_path)
    assert step.returncode == 2 and "missing file" in step.stderr


@pytest.mark.parametrize("command", [("autograde", EXERCISE), ("export",)])
def test_commands_refuse_a_folder_that_is_not_a_course(command, tmp_path):
    (tmp_path / "notes.txt").write_text("not a course")
    step = beyondbert(*command, cwd=tmp_path)  # --course defaults to the current folder
    assert step.returncode == 2 and "not an nbgrader course folder" in step.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_release_refuses_a_non_empty_folder_and_the_repository(repo, tmp_path):
    (tmp_path / "notes.txt").write_text("not a course")
    step = beyondbert("release", EXERCISE, cwd=tmp_path)
    assert step.returncode == 2 and "not empty" in step.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    step = beyondbert("release", EXERCISE, "--course", repo, cwd=tmp_path)
    assert step.returncode == 2 and "is the course repository" in step.stderr
    assert not (repo / "source").exists() and not (repo / "gradebook.db").exists()


def test_autograde_needs_a_released_exercise(repo, tmp_path):
    shutil.copyfile(repo / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    step = beyondbert("autograde", EXERCISE, cwd=tmp_path)
    assert step.returncode == 2 and "was not released" in step.stderr
    assert not (tmp_path / "gradebook.db").exists()


def test_without_a_sandbox_grading_is_refused_unless_the_instructor_opts_out(repo, tmp_path):
    """With no `bwrap` on PATH nothing runs, and the message names the fix and the opt-out;
    with --unsafe-no-sandbox the same notebook is graded (student code unconfined)."""
    bin_dir = str(Path(sys.executable).parent)
    no_bwrap = {"PATH": f"{bin_dir}:/nonexistent", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    grade = [*COMMAND, "grade", str(repo / "solutions" / NOTEBOOK), "--exercise", EXERCISE]
    step = subprocess.run(grade, cwd=tmp_path, capture_output=True, text=True, env=no_bwrap)
    assert step.returncode == 2, step.stderr
    assert "refusing to grade" in step.stderr and "apt-get install bubblewrap" in step.stderr
    assert "--unsafe-no-sandbox" in step.stderr
    step = subprocess.run([*grade, "--unsafe-no-sandbox", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, env=no_bwrap)
    assert step.returncode == 0, step.stderr
    assert json.loads(step.stdout)["score"] == FULL


def test_jobs_must_be_positive(round_trip, tmp_path):
    step = beyondbert("autograde", EXERCISE, "--course", round_trip.course, "--jobs", "0",
                      cwd=tmp_path)
    assert step.returncode == 2 and "--jobs must be a positive number" in step.stderr


def test_usage_errors_exit_2(tmp_path):
    assert beyondbert(cwd=tmp_path).returncode == 2
    assert beyondbert("grade", "x.ipynb", cwd=tmp_path).returncode == 2  # --exercise missing


def test_list_prints_the_exercises(tmp_path, repo):
    step = beyondbert("list", "--repo", repo, cwd=tmp_path)
    assert step.returncode == 0 and EXERCISE in step.stdout.split()


def test_find_repo_from_option_env_and_package(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BEYONDBERT_REPO", raising=False)
    assert find_repo() == repo  # not below the current folder: the package's checkout
    assert find_repo(repo) == repo
    monkeypatch.setenv("BEYONDBERT_REPO", str(repo))
    assert find_repo() == repo
    with pytest.raises(GradingError, match="no solutions/ folder"):
        find_repo(tmp_path)


def _own_mean(hidden, mask):
    return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)


def _wrapped_mean(hidden, mask):
    from beyondbert.pooling import mean_pool

    return mean_pool(hidden, mask)


def test_assert_own_work_tells_own_code_from_the_library():
    from beyondbert.pooling import mean_pool

    hidden, mask = torch.ones(2, 3, 4), torch.ones(2, 3)
    assert_own_work(_own_mean, hidden, mask)  # passes: written here, uses torch only
    with pytest.raises(AssertionError, match="not written in this notebook"):
        assert_own_work(mean_pool, hidden, mask)
    with pytest.raises(AssertionError, match="calls the course library"):
        assert_own_work(_wrapped_mean, hidden, mask)
    assert "beyondbert.pooling.mean_pool" in library_calls(_wrapped_mean, hidden, mask)


# ------------------------------------------- a class with broken submissions (issue 16)
GOOD = {"ann": "solution", "ben": "student version", "cara": "solution", "dan": "student version",
        "eve": "solution"}
# The broken ones: the words their flag must hold (student, file, reason).
BROKEN = {"hal": f"{NOTEBOOK} is not a readable notebook",
          "ivy": f"my-answers.ipynb is not graded: the notebook must be named {NOTEBOOK}",
          "jon": "timestamp.txt holds 'handed in on Friday', not a time",
          "kim": "the folder 01-encoders-and-bert/ is empty",
          "lee": f"2 notebooks (copy.ipynb, draft.ipynb) and none named {NOTEBOOK}"}


def hand_in_broken(course: Path, released: Path) -> None:
    folders = {s: course / "submitted" / s / EXERCISE for s in BROKEN}
    for folder in folders.values():
        folder.mkdir(parents=True)
    (folders["hal"] / NOTEBOOK).write_text('{"cells": [')  # cut off: not JSON
    shutil.copyfile(released, folders["ivy"] / "my-answers.ipynb")
    shutil.copyfile(released, folders["jon"] / NOTEBOOK)
    (folders["jon"] / "timestamp.txt").write_text("handed in on Friday")
    for name in ("draft.ipynb", "copy.ipynb"):
        shutil.copyfile(released, folders["lee"] / name)


def class_run(work: Path, repo: Path) -> dict:
    """Release, hand in 5 good and 5 broken submissions, autograde, export, feedback; then hal
    hands in a fixed notebook and autograde runs again, while each good notebook is graded alone
    (in a course of its own)."""
    from concurrent.futures import ThreadPoolExecutor

    from beyondbert.grading.gradebook import read_results

    course = work / "course"
    beyondbert("release", EXERCISE, "--course", course, cwd=work)
    released = course / "release" / EXERCISE / NOTEBOOK
    notebooks = {"solution": repo / "solutions" / NOTEBOOK, "student version": released}
    for student, kind in GOOD.items():
        place(course, student, notebooks[kind])
    hand_in_broken(course, released)
    start = time.perf_counter()
    steps = {"autograde": beyondbert("autograde", EXERCISE, "--course", course, "--jobs", "2",
                                     cwd=work)}
    seconds = time.perf_counter() - start
    steps["export"] = beyondbert("export", "--course", course, "--output", work / "grades.csv",
                                 cwd=work)
    steps["feedback"] = beyondbert("feedback", EXERCISE, "--course", course, cwd=work)
    graded = {s: r.as_dict() for s, r in read_results(course, EXERCISE).items()}
    before = gradebook_rows(course)
    place(course, "hal", notebooks["solution"])  # hal fixes the file, handed in later
    (course / "submitted" / "hal" / EXERCISE / "timestamp.txt").write_text(
        datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
    with ThreadPoolExecutor(3) as pool:
        alone = {kind: pool.submit(beyondbert, "grade", notebook, "--exercise", EXERCISE, "--json",
                                   cwd=work) for kind, notebook in notebooks.items()}
        steps["after_fix"] = beyondbert("autograde", EXERCISE, "--course", course, "--jobs", "2",
                                        cwd=work)
        alone = {kind: json.loads(step.result().stdout) for kind, step in alone.items()}
    return {"course": str(course), "seconds": seconds, "graded": graded, "alone": alone,
            "before_fix": before, "after_fix": gradebook_rows(course),
            "steps": {name: {"returncode": step.returncode, "stdout": step.stdout,
                             "stderr": step.stderr} for name, step in steps.items()}}


def gradebook_rows(course: Path) -> list[list]:
    """Every (student, submission time, test, score) in the gradebook, sorted."""
    import sqlite3

    db = sqlite3.connect(f"{(course / 'gradebook.db').as_uri()}?mode=ro", uri=True)
    try:
        return sorted(map(list, db.execute(
            "SELECT sa.student_id, sa.timestamp, g.cell_id, g.auto_score FROM grade AS g "
            "JOIN submitted_notebook AS sn ON g.notebook_id = sn.id "
            "JOIN submitted_assignment AS sa ON sn.assignment_id = sa.id")))
    finally:
        db.close()


@pytest.fixture(scope="module")
def a_class(run_once, repo):
    done = run_once("class-run", lambda work: class_run(work, repo))
    done["steps"] = {name: SimpleNamespace(**step) for name, step in done["steps"].items()}
    return SimpleNamespace(**done)


def test_autograde_grades_every_good_submission_and_flags_each_broken_one(a_class):
    step = a_class.steps["autograde"]
    assert step.returncode == 1, step.stderr  # 1: something is flagged
    rows = {line.split()[0]: line.split() for line in step.stdout.splitlines()[1:]
            if not line.startswith("FLAGGED")}
    for student, kind in GOOD.items():
        expected = FULL if kind == "solution" else 0
        assert rows[student][1:3] == [f"{expected:g}", f"{FULL:g}"], rows[student]
    flagged = [line for line in step.stdout.splitlines() if line.startswith("FLAGGED")]
    assert len(flagged) == len(BROKEN)  # one line each
    for student, words in BROKEN.items():
        assert any(line.startswith(f"FLAGGED {student}: not graded: ") and words in line
                   for line in flagged), (student, flagged)
    assert "Traceback" not in step.stdout + step.stderr
    assert set(a_class.graded) == set(GOOD)  # nothing of the broken ones reached the gradebook


def test_each_good_submission_is_graded_as_when_graded_alone(a_class):
    for student, kind in GOOD.items():
        in_class = a_class.graded[student]
        alone = a_class.alone[kind]
        assert [(t["name"], t["score"], t["message"]) for t in in_class["tests"]] == \
            [(t["name"], t["score"], t["message"]) for t in alone["tests"]], student


def test_flagged_submissions_are_in_the_export_and_get_feedback(a_class):
    assert a_class.steps["export"].returncode == 0, a_class.steps["export"].stderr
    rows = read_csv(Path(a_class.course).parent / "grades.csv")
    assert set(rows) == set(GOOD) | set(BROKEN)
    for student, words in BROKEN.items():
        assert float(rows[student]["score"]) == 0 and words in rows[student]["flags"]
        assert float(rows[student]["max_score"]) == FULL
    assert all(rows[student]["flags"] == "" for student in GOOD)
    assert a_class.steps["feedback"].returncode == 0, a_class.steps["feedback"].stderr
    for student, words in BROKEN.items():
        page = (Path(a_class.course) / "feedback" / student / EXERCISE /
                f"{EXERCISE}.html").read_text()
        assert "could not be graded" in page and escape(words) in page, student


def test_a_fixed_file_is_graded_on_the_next_run_and_nobody_else_changes(a_class):
    step = a_class.steps["after_fix"]
    assert step.returncode == 1  # the four others are still flagged
    rows = {line.split()[0]: line.split() for line in step.stdout.splitlines()[1:]
            if not line.startswith("FLAGGED")}
    assert rows["hal"][1:4] == [f"{FULL:g}", f"{FULL:g}", "-"]
    assert not any(line.startswith("FLAGGED hal") for line in step.stdout.splitlines())
    others = [row for row in a_class.after_fix if row[0] != "hal"]
    assert others == a_class.before_fix and len(others) == len(GOOD) * len(TESTS)
    assert len(a_class.after_fix) == len(others) + len(TESTS)


def test_the_class_run_time_is_recorded(a_class):
    assert 0 < a_class.seconds < 3600
    print(f"class of {len(GOOD) + len(BROKEN)} graded in {a_class.seconds:.0f} s")


def test_only_the_failing_student_is_graded_again_and_a_machine_fault_is_never_scored(
        tmp_path, monkeypatch):
    """Issue 23: a failed batch was halved and graded again and again; now only the students
    nbgrader names are graded again, each alone, and a sandbox that never starts (the machine's
    fault) is tried three times in all, then flagged as not graded."""
    from beyondbert.grading import course as nbg

    for student in ("alice", "bob", "carol"):
        (tmp_path / "submitted" / student / EXERCISE).mkdir(parents=True)
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    runs = []

    def fake(course, exercise, selection, force, unsafe_no_sandbox, cell_timeout, time_budget,
             graded, ledger=None):
        runs.append(selection)
        if selection and selection[0] == "--student=carol":
            (ledger / "carol.machine-fault").write_text("bwrap: Resource temporarily unavailable")
            return "nbgrader could not grade it", ["carol"]
        if selection and selection[0].startswith("--student="):
            return None, []
        return "nbgrader could not grade it", ["bob", "carol"]

    monkeypatch.setattr(nbg, "_nbgrader_autograde", fake)
    problems = nbg.autograde_batch(tmp_path, EXERCISE, ["alice", "bob", "carol"], ledger=ledger)
    assert runs == [[], ["--student=bob"], ["--student=carol"], ["--student=carol"]]
    assert list(problems) == ["carol"]
    assert problems["carol"].startswith("not graded: the grading machine could not start")
    assert "tried 3 times" in problems["carol"] and "Resource temporarily" in problems["carol"]


def test_an_error_nbgrader_names_nobody_for_is_found_by_halving(tmp_path, monkeypatch):
    from beyondbert.grading import course as nbg

    for student in ("alice", "bob", "carol", "dave"):
        (tmp_path / "submitted" / student / EXERCISE).mkdir(parents=True)
    runs = []

    def fake(course, exercise, selection, force, unsafe_no_sandbox, cell_timeout, time_budget,
             graded, ledger=None):
        runs.append(selection)
        excluded = selection[0].split("=", 1)[1].split(",") if selection else []
        if selection and selection[0] == "--student=dave":
            return "nbgrader could not grade it", []
        if not selection or (selection[0].startswith("--CourseDirectory") and "dave" not in excluded):
            return "nbgrader could not grade it", []
        return None, []

    monkeypatch.setattr(nbg, "_nbgrader_autograde", fake)
    problems = nbg.autograde_batch(tmp_path, EXERCISE, ["alice", "bob", "carol", "dave"])
    assert list(problems) == ["dave"] and len(runs) == 5  # all, 2 halves, then carol and dave
