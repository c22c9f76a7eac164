"""A PostgreSQL gradebook shared by two graders: nothing lost, the same grades as SQLite.

The test starts its own PostgreSQL server (Debian's ``postgresql``) on a private socket folder and
port, points a course's ``CourseDirectory.db_url`` at it, and lets two ``beyondbert autograde``
processes grade disjoint halves of a class at the same time. Every grade must be there and equal
the grades of the same submissions in a SQLite course. The server is stopped afterwards.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from beyondbert.grading.course import open_course
from beyondbert.grading.gradebook import read_results
from beyondbert.grading.workflow import autograde, release
from hub import free_port
from notebooks import solution_answers, write_answers

REPO = Path(__file__).resolve().parents[1]
EXERCISE = "01-encoders-and-bert"
BEYONDBERT = [sys.executable, "-m", "beyondbert.cli"]

pytestmark = [pytest.mark.xdist_group("postgres"),
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is missing: run scripts/install-system-deps.sh")]


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        pytest.fail("PostgreSQL is not installed: run scripts/install-system-deps.sh")
    return found[-1].parent


@pytest.fixture
def postgres_url():
    """``postgresql+psycopg://`` URL of a fresh private server; stopped after the test."""
    bin_dir = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="beyondbert-pg-"))
    folder.chmod(0o755)
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use its own account
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port, data = free_port(), folder / "data"

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, cwd=folder)

    pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8")
    pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
       f"-k {folder} -p {port} -c listen_addresses=''", "start")
    try:
        pg(str(bin_dir / "createdb"), "-h", str(folder), "-p", str(port), "-U", "grader",
           "gradebook")
        yield f"postgresql+psycopg://grader@/gradebook?host={folder}&port={port}"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def make_class(folder: Path, size: int) -> dict[str, Path]:
    """``size`` submissions: every other student solves everything, the rest hand in the stub."""
    student_version = REPO / "exercises" / f"{EXERCISE}.ipynb"
    answers = solution_answers(REPO / "solutions" / f"{EXERCISE}.ipynb")
    folder.mkdir(parents=True, exist_ok=True)
    return {f"student{i:02d}": (write_answers(student_version, answers, folder / f"s{i}.ipynb")
                                if i % 2 == 0 else student_version) for i in range(size)}


def course_with(folder: Path, submissions: dict[str, Path], db_url: str | None = None) -> Path:
    course = open_course(folder, REPO, create=True)
    if db_url:
        with open(course / "nbgrader_config.py", "a") as config:
            config.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")
    release(EXERCISE, course, REPO)
    for student, notebook in submissions.items():
        target = course / "submitted" / student / EXERCISE / f"{EXERCISE}.ipynb"
        target.parent.mkdir(parents=True)
        shutil.copyfile(notebook, target)
    return course


def grader(course: Path, students: list[str]) -> float:
    """One grader's session: ``beyondbert autograde --student`` for each of its students."""
    start = time.perf_counter()
    for student in students:
        done = subprocess.run([*BEYONDBERT, "autograde", EXERCISE, "--course", str(course),
                               "--repo", str(REPO), "--student", student],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{student}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return time.perf_counter() - start


def scores(course: Path) -> dict[str, dict]:
    return {s: {"score": r.score, "max": r.max_score, "failed": sorted(r.failed())}
            for s, r in read_results(course, EXERCISE).items()}


def test_two_graders_share_a_postgresql_gradebook(postgres_url, tmp_path):
    submissions = make_class(tmp_path / "notebooks", 4)
    students = sorted(submissions)

    sqlite_course = course_with(tmp_path / "sqlite", submissions)
    start = time.perf_counter()
    autograde(EXERCISE, sqlite_course, REPO, jobs=2)
    sqlite_seconds = time.perf_counter() - start

    pg_course = course_with(tmp_path / "postgres", submissions, postgres_url)
    assert not (pg_course / "gradebook.db").exists(), "the course must not fall back to SQLite"
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:  # two graders at once, on disjoint students
        halves = list(pool.map(lambda part: grader(pg_course, part), [students[0::2],
                                                                     students[1::2]]))
    pg_seconds = time.perf_counter() - start

    expected, got = scores(sqlite_course), scores(pg_course)
    assert sorted(got) == students, f"grades lost: {sorted(set(students) - set(got))}"
    assert got == expected
    assert all(got[s]["score"] == got[s]["max"] for s in students[0::2])
    assert all(got[s]["score"] == 0 for s in students[1::2])
    report = REPO / "artifacts" / "postgres-gradebook.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({
        "submissions": len(students), "sqlite_jobs2_seconds": round(sqlite_seconds, 1),
        "postgres_two_graders_seconds": round(pg_seconds, 1),
        "per_grader_seconds": [round(h, 1) for h in halves]}, indent=2))
