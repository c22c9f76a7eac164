"""Grading throughput: stock nbgrader vs beyondbert's sandboxed autograder, on exercise 1.

N submissions of 01-encoders-and-bert (odd students a copy of the solution, even students the
untouched student version) are graded three ways, each in a fresh Python of its own:

* plain nbgrader: one ``nbgrader autograde`` process over all of them, with nbgrader's own
  kernel-based Execute (no sandbox); the seconds are the autograde step alone;
* beyondbert, jobs 1 and jobs 2: ``grade_submissions``, sandboxed: one nbgrader process per
  batch of at most 16 submissions (20 submissions: two of 10), 1 or 2 at a time, each keeping
  one bubblewrap sandbox warm whose zygote has imported torch and forks a fresh student process
  per submission (and per restart after a hidden test); scores saved in one gradebook commit
  per submission. The seconds include building the temporary course (``generate_assignment``).

Prints a Markdown table: wall seconds, submissions per minute, the peak memory of the largest
child process (``ru_maxrss`` of ``RUSAGE_CHILDREN``, so each run gets its own Python) and whether
every score is as expected (solutions full marks, student versions 0). Not a pass/fail test: run
``.venv/bin/python benchmarks/grading_throughput.py [--submissions N]`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from beyondbert.grading import course as nbg
from beyondbert.grading.gradebook import read_results, test_points
from beyondbert.grading.runner import grade_submissions

REPO = Path(__file__).resolve().parents[1]
EXERCISE = "01-encoders-and-bert"
SOLUTION = REPO / "solutions" / f"{EXERCISE}.ipynb"
STUDENT_VERSION = REPO / "exercises" / f"{EXERCISE}.ipynb"
# The course's configuration without the sandbox: nbgrader's stock autograde steps.
PLAIN_CONFIG = """c = get_config()
c.CourseDirectory.course_id = "beyond-bert"
c.Execute.timeout = 120
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
"""
RUNS = {"plain": ("plain nbgrader", 1), "jobs1": ("beyondbert", 1), "jobs2": ("beyondbert", 2)}


def submissions(n: int) -> dict[str, Path]:
    """``{student01: solution, student02: student version, ...}`` for ``n`` students."""
    return {f"student{i:02d}": SOLUTION if i % 2 else STUDENT_VERSION for i in range(1, n + 1)}


def grade_plain(notebooks: dict[str, Path]) -> tuple[float, dict[str, dict]]:
    """Seconds of one stock ``nbgrader autograde`` over all ``notebooks``, and their results."""
    with tempfile.TemporaryDirectory(prefix="grading-throughput-") as tmp:
        course = nbg.open_course(Path(tmp) / "course", REPO, create=True)
        (course / nbg.CONFIG).write_text(PLAIN_CONFIG)
        nbg.install_source(course, EXERCISE, REPO)
        nbg.generate(course, EXERCISE)
        for student, notebook in notebooks.items():
            nbg.submit(course, EXERCISE, student, notebook)
        start = time.perf_counter()
        nbg.run_nbgrader(["autograde", EXERCISE, "--force"], course)
        seconds = time.perf_counter() - start
        results = read_results(course, EXERCISE)
    return seconds, {student: result.as_dict() for student, result in results.items()}


def grade_beyondbert(notebooks: dict[str, Path], jobs: int) -> tuple[float, dict[str, dict]]:
    """Seconds of ``grade_submissions`` with ``jobs`` graders at a time, and its results."""
    start = time.perf_counter()
    results = grade_submissions(EXERCISE, notebooks, REPO, jobs=jobs)
    seconds = time.perf_counter() - start
    return seconds, {student: result.as_dict() for student, result in results.items()}


def measure(run: str, n: int) -> dict:
    """Grade ``n`` submissions the ``run`` way in this process: seconds, peak KiB, results."""
    notebooks = submissions(n)
    if run == "plain":
        seconds, results = grade_plain(notebooks)
    else:
        seconds, results = grade_beyondbert(notebooks, RUNS[run][1])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "peak_kib": peak_kib, "results": results}


def measure_in_child(run: str, n: int) -> dict:
    """:func:`measure` in a fresh Python, so ``RUSAGE_CHILDREN`` counts only that run."""
    command = [sys.executable, str(Path(__file__).resolve()), "--only", run, "--submissions", str(n)]
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def unexpected_scores(results: dict[str, dict], n: int) -> list[str]:
    """Students not scoring full marks (solutions) or 0 (student versions); empty when all do."""
    full = sum(test_points(SOLUTION).values())
    problems = []
    for student, notebook in submissions(n).items():
        expected = full if notebook == SOLUTION else 0.0
        got = results.get(student, {}).get("score")
        if got != expected:
            problems.append(f"{student} scored {got}, expected {expected}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=20, metavar="N",
                        help="how many submissions to grade (default 20)")
    parser.add_argument("--only", choices=RUNS,
                        help="measure only this run, in this process, and print it as one JSON "
                             "line (how the table's runs are measured)")
    args = parser.parse_args()
    n = args.submissions
    if args.only:
        print(json.dumps(measure(args.only, n)))
        return
    measured = {run: measure_in_child(run, n) for run in RUNS}
    print(f"{date.today().isoformat()}, os.cpu_count() = {os.cpu_count()}, exercise {EXERCISE}, "
          f"{n} submissions: half solutions, half untouched student versions")
    rows = []
    for run, (grader, jobs) in RUNS.items():
        m = measured[run]
        problems = unexpected_scores(m["results"], n)
        for problem in problems:
            print(f"warning: {grader}, jobs {jobs}: {problem}")
        rows.append(f"| {grader} | {jobs} | {n} | {m['seconds']:.1f} | "
                    f"{n / m['seconds'] * 60:.1f} | {m['peak_kib'] / 1024:.0f} | "
                    f"{'no' if problems else 'yes'} |")
    print()
    print("| grader | jobs | submissions | seconds | submissions/minute "
          "| largest child process (MiB) | scores as expected |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    identical = measured["jobs1"]["results"] == measured["jobs2"]["results"]
    print()
    print(f"beyondbert jobs 1 and jobs 2 give identical results per student: "
          f"{'yes' if identical else 'no'}")


if __name__ == "__main__":
    main()
