"""Grading at course scale: the course's JupyterHub, end to end, on loopback.

One real hub (deploy/jupyterhub's configuration, configurable-http-proxy from the committed npm
lock) with an instructor and two students. Everything goes through the servers' REST APIs with
each user's own token: the instructor's formgrader assigns and releases exercise 1 to the course's
exchange; each student fetches it, answers it through the contents API (one right, one wrong) and
submits; the instructor collects, autogrades (with the course's nbgrader configuration, so in
the sandbox) and generates feedback; the gradebook then holds the expected grades. Students'
tokens are refused on other users' servers and find no formgrader on their own. A second test
puts 30 students on the same hub at once. Everything the hub started is stopped by process id,
and a test fails if anything is left running.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from beyondbert.grading.course import install_source, open_course
from beyondbert.grading.gradebook import read_results
from hub import Hub
from notebooks import answer_cells, solution_answers

REPO = Path(__file__).resolve().parents[1]
EXERCISE = "01-encoders-and-bert"
COURSE_ID = "beyond-bert"
PROBE = "import os\nprint('course folder visible to student code:', os.path.exists({path!r}))"

pytestmark = [pytest.mark.xdist_group("hub"),
              pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is missing: run scripts/install-system-deps.sh")]


@pytest.fixture
def hub(tmp_path):
    # inside the instructor's home, as in the course's set-up: the formgrader only works on a
    # course folder under its server's root
    course = open_course(tmp_path / "home" / "instructor" / "course", REPO, create=True)
    install_source(course, EXERCISE, REPO)
    hub = Hub(tmp_path, course)
    hub.start()
    yield hub
    left = hub.stop()
    assert not left, f"processes still running after the hub stopped: {left}"


def formgrader(hub: Hub, path: str) -> dict:
    answer = hub.as_user(hub.instructor, "POST", f"formgrader/api/{path}")
    assert answer.status == 200 and answer.body.startswith("{"), (
        f"formgrader {path}: HTTP {answer.status} {answer.body[-800:]}")
    value = answer.json()
    assert value.get("success"), f"formgrader {path} failed:\n{value.get('error') or value}"
    return value


def student_action(hub: Hub, student: str, action: str) -> None:
    answer = hub.as_user(student, "POST", f"assignments/{action}",
                         form={"course_id": COURSE_ID, "assignment_id": EXERCISE})
    assert answer.status == 200 and answer.json().get("success"), (
        f"{student} {action}: HTTP {answer.status} {answer.body[:500]}")


def listed(hub: Hub, student: str) -> set[str]:
    """The statuses the student's assignment list shows for the exercise (nbgrader lists a
    fetched exercise and each submission of it as separate entries)."""
    value = hub.as_user(student, "GET", f"assignments?course_id={COURSE_ID}").json()["value"]
    return {a["status"] for a in value if a["assignment_id"] == EXERCISE}


def answer_through_contents_api(hub: Hub, student: str, answers: dict[str, str],
                                extra_cell: str | None = None) -> None:
    """The student opens the fetched notebook, writes answers and saves it (contents API)."""
    path = f"api/contents/{COURSE_ID}/{EXERCISE}/{EXERCISE}.ipynb"
    got = hub.as_user(student, "GET", path)
    assert got.status == 200, f"{student} cannot open the fetched notebook: {got.status}"
    nb = nbformat.from_dict(got.json()["content"])
    for grade_id, cell in answer_cells(nb).items():
        if grade_id in answers:
            cell.source = answers[grade_id]
    if extra_cell:  # a signature cell replaces the one an earlier save added
        nb.cells = [c for c in nb.cells if not c.source.startswith("# handed in by")]
        nb.cells.insert(2, nbformat.v4.new_code_cell(extra_cell))
    saved = hub.as_user(student, "PUT", path,
                        data={"type": "notebook", "format": "json", "content": nb})
    assert saved.status in (200, 201), f"{student} cannot save: {saved.status} {saved.body[:300]}"


def test_round_trip_on_a_real_hub(hub, tmp_path):
    times = {}
    start = time.perf_counter()
    for user in (hub.instructor, "alice", "bob"):
        hub.add_user(user)
    times["hub and 3 servers up"] = time.perf_counter() - start

    # isolation: a student's token works on their own server only, and finds no formgrader
    assert hub.as_user("alice", "GET", "api/contents").status == 200
    assert hub.request("GET", "/user/bob/api/contents", token=hub.tokens["alice"]).status == 403
    assert hub.request("GET", f"/user/{hub.instructor}/formgrader/api/assignments",
                       token=hub.tokens["alice"]).status == 403
    assert hub.as_user("alice", "GET", "formgrader/api/assignments").status == 404

    step = time.perf_counter()
    formgrader(hub, f"assignment/{EXERCISE}/assign")
    formgrader(hub, f"assignment/{EXERCISE}/release")
    for student in ("alice", "bob"):
        assert listed(hub, student) == {"released"}
        student_action(hub, student, "fetch")
        assert listed(hub, student) == {"fetched"}
    solution = solution_answers(REPO / "solutions" / f"{EXERCISE}.ipynb")
    answer_through_contents_api(hub, "alice", solution)
    answer_through_contents_api(hub, "bob", {}, PROBE.format(path=str(hub.course_dir)))
    for student in ("alice", "bob"):
        student_action(hub, student, "submit")
        assert "submitted" in listed(hub, student)
    times["release, fetch, answer, submit"] = time.perf_counter() - step

    step = time.perf_counter()
    formgrader(hub, f"assignment/{EXERCISE}/collect")
    for student in ("alice", "bob"):
        assert (hub.course_dir / "submitted" / student / EXERCISE / f"{EXERCISE}.ipynb").is_file()
        formgrader(hub, f"submission/{EXERCISE}/{student}/autograde")
    formgrader(hub, f"assignment/{EXERCISE}/generate_feedback")
    times["collect, autograde, feedback"] = time.perf_counter() - step

    results = read_results(hub.course_dir, EXERCISE)
    assert set(results) == {"alice", "bob"}
    assert results["alice"].score == results["alice"].max_score >= 10, results["alice"].failed()
    assert results["bob"].score == 0 and results["bob"].max_score == results["alice"].max_score
    for student in ("alice", "bob"):
        assert (hub.course_dir / "feedback" / student / EXERCISE / f"{EXERCISE}.html").is_file()
    # bob's extra cell ran in the course's sandbox: the course folder was not visible to it
    graded = nbformat.read(hub.course_dir / "autograded" / "bob" / EXERCISE / f"{EXERCISE}.ipynb",
                           as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "course folder visible to student code: False" in printed, printed[-500:]

    times["total"] = time.perf_counter() - start
    report = REPO / "artifacts" / "hub-round-trip.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({k: round(v, 1) for k, v in times.items()}, indent=2))


def test_thirty_students_fetch_and_submit_within_a_minute(hub, tmp_path):
    """Load: 30 students fetch and submit at once; every submission is collected under the right
    name, and a student who submits twice is graded on the last submission."""
    students = [f"student{i:02d}" for i in range(30)]
    twice = set(students[::10])  # these hand in a wrong answer first, then the right one
    start = time.perf_counter()
    for user in (hub.instructor, *students):
        hub.add_user(user, wait=False)
    hub.wait_until_ready([hub.instructor, *students])
    spawn_seconds = time.perf_counter() - start
    formgrader(hub, f"assignment/{EXERCISE}/assign")
    formgrader(hub, f"assignment/{EXERCISE}/release")
    solution = solution_answers(REPO / "solutions" / f"{EXERCISE}.ipynb")

    def work(student: str) -> None:
        student_action(hub, student, "fetch")
        if student in twice:
            answer_through_contents_api(hub, student, {}, f"# handed in by {student}, first try")
            student_action(hub, student, "submit")
            time.sleep(1.1)  # nbgrader's submission times have one-second folders
        answer_through_contents_api(hub, student, solution, f"# handed in by {student}")
        student_action(hub, student, "submit")

    start = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(work, students))
    submit_seconds = time.perf_counter() - start

    formgrader(hub, f"assignment/{EXERCISE}/collect")
    for student in students:  # each collected notebook is the one that student handed in last
        nb = nbformat.read(hub.course_dir / "submitted" / student / EXERCISE / f"{EXERCISE}.ipynb",
                           as_version=4)
        signed = [c.source for c in nb.cells if c.source.startswith("# handed in by")]
        assert signed == [f"# handed in by {student}"], f"{student}'s collected notebook: {signed}"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "beyondbert.cli", "autograde", EXERCISE,
                           "--course", str(hub.course_dir), "--repo", str(REPO), "--jobs", "2"],
                          capture_output=True, text=True)
    grade_seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = read_results(hub.course_dir, EXERCISE)
    assert sorted(results) == students, "a submission was lost or graded under another name"
    assert all(r.score == r.max_score for r in results.values()), {
        s: r.failed() for s, r in results.items() if r.score != r.max_score}
    assert submit_seconds < 60, f"30 students took {submit_seconds:.0f} s to fetch and submit"
    report = REPO / "artifacts" / "hub-load.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({
        "students": len(students), "submitted_twice": len(twice),
        "servers_up_seconds": round(spawn_seconds, 1),
        "fetch_and_submit_seconds": round(submit_seconds, 1),
        "collected": len(results), "grading_seconds_jobs2": round(grade_seconds, 1),
        "graded_per_minute": round(60 * len(results) / grade_seconds, 1)}, indent=2))
