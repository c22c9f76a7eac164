"""The ``beyondbert`` console script: the instructor's grading commands.

    beyondbert list                                          the course's exercises
    beyondbert generate [EXERCISE ...]                       exercises/ from solutions/
    beyondbert release EXERCISE [--course DIR]               add an exercise to a course folder
    beyondbert collect EXERCISE [--course DIR]               fetch submissions from the exchange
    beyondbert autograde EXERCISE [--course DIR] [--force] [--jobs N] [--strict]
                                                             grade submitted/<student>/<EXERCISE>/
    beyondbert grade SUBMISSION.ipynb --exercise EXERCISE [--json]   grade one file
    beyondbert feedback EXERCISE [--course DIR]              per-student HTML feedback
    beyondbert export [--course DIR] [--output grades.csv]   every grade as CSV
    beyondbert check NOTEBOOK.ipynb [--exercise EXERCISE] [--json]
                                             a student's check: visible tests, the grader's way
    beyondbert report EXERCISE [--course DIR] [--output DIR]  the class report (HTML and CSV)

Student code always runs in a bubblewrap sandbox; without one, grading is refused unless
--unsafe-no-sandbox is given (``check``, a student's own run, then runs the code as the student).
Exit status: 0 done, 1 an nbgrader step failed, a submission is flagged or (check) a visible test
fails, 2 bad input (nothing was changed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .grading import (
    GradingError,
    NbgraderFailed,
    SubmissionResult,
    autograde,
    collect,
    export_grades,
    find_repo,
    generate_exercises,
    grade_notebook,
    list_exercises,
    release,
    write_feedback,
)
from .grading.exercises import REPO_ENV

EXIT_OK, EXIT_NBGRADER_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class SubmissionsFlagged(NbgraderFailed):
    """Grading finished, but some submissions need the instructor's eye (exit status 1)."""


class ChecksFailed(NbgraderFailed):
    """``beyondbert check`` ran, and some visible tests fail (exit status 1)."""


def _points(x: float) -> str:
    return f"{x:g}"


def _say(message: str) -> None:
    """Progress for the person at the terminal (stderr, so --json output stays clean)."""
    print(message, file=sys.stderr, flush=True)


def _cmd_list(args: argparse.Namespace) -> None:
    for name in list_exercises(find_repo(args.repo)):
        print(name)


def _cmd_generate(args: argparse.Namespace) -> None:
    repo = find_repo(args.repo)
    _say("Generating student versions with nbgrader (a few seconds each)...")
    for path in generate_exercises(repo, args.exercises or None):
        print(f"wrote {path.relative_to(repo)}")


def _cmd_release(args: argparse.Namespace) -> None:
    repo = find_repo(args.repo)
    _say(f"Releasing {args.exercise} in {Path(args.course).resolve()} ...")
    done = release(args.exercise, Path(args.course), repo, exchange=args.exchange)
    from .grading.student import create_course_secret

    secret = create_course_secret(Path(args.course))  # kept if it exists: same hidden inputs
    print(f"student version: {done.student_notebook}")
    print(f"course secret (hidden test inputs; back it up, never commit it): {secret}")
    if done.exchange:
        print(f"released to the exchange {done.exchange}: students can fetch it")
    else:
        print("no exchange configured: hand the student version out yourself; collect each "
              f"student's notebook as submitted/<student>/{args.exercise}/{args.exercise}.ipynb")


def _cmd_collect(args: argparse.Namespace) -> None:
    repo = find_repo(args.repo)
    students = collect(args.exercise, Path(args.course), repo, exchange=args.exchange)
    for warning in getattr(students, "warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"collected {len(students)} new submission(s): {', '.join(students) or '-'}")


def _score_table(results: dict[str, SubmissionResult]) -> str:
    rows = [("student", "score", "max", "failed tests")]
    for student, result in results.items():
        rows.append((student, _points(result.score), _points(result.max_score),
                     ", ".join(result.failed()) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}"
             for r in rows]
    flagged = [f"FLAGGED {student}: {flag}" for student, result in results.items()
               for flag in result.flags]
    return "\n".join(lines + flagged)


def _cmd_autograde(args: argparse.Namespace) -> None:
    repo = find_repo(args.repo)
    _say(f"Autograding {args.exercise} in {Path(args.course).resolve()} ...")
    started = time.monotonic()
    results = autograde(args.exercise, Path(args.course), repo, force=args.force,
                        student=args.student, jobs=args.jobs,
                        unsafe_no_sandbox=args.unsafe_no_sandbox, strict=args.strict)
    if results:  # for the class report's "time spent grading"
        from .grading.report import record_grading_run

        record_grading_run(Path(args.course), args.exercise, len(results),
                           time.monotonic() - started, args.jobs)
    print(_score_table(results))
    if any(result.flags for result in results.values()):
        raise SubmissionsFlagged("some submissions are flagged (listed above): look at them")


def _cmd_grade(args: argparse.Namespace) -> None:
    repo = find_repo(args.repo)
    _say(f"Grading {args.submission} against {args.exercise} ...")
    result = grade_notebook(args.exercise, Path(args.submission), repo,
                            unsafe_no_sandbox=args.unsafe_no_sandbox)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return
    print(f"{args.exercise}: {_points(result.score)} / {_points(result.max_score)} points")
    width = max(len(t.name) for t in result.tests)
    for t in result.tests:
        status = "passed" if t.passed else "FAILED"
        print(f"  {status}  {t.name:<{width}}  {_points(t.score)}/{_points(t.max_score)}"
              + (f"  {t.message}" if t.message else ""))
    for flag in result.flags:
        print(f"  FLAGGED  {flag}")


def _cmd_feedback(args: argparse.Namespace) -> None:
    repo = find_repo(args.repo)
    for path in write_feedback(args.exercise, Path(args.course), repo):
        print(f"wrote {path}")


def _cmd_export(args: argparse.Namespace) -> None:
    output = export_grades(Path(args.course), Path(args.output), find_repo(args.repo))
    print(f"wrote {output}")


def _cmd_check(args: argparse.Namespace) -> None:
    from .grading.check import check_notebook, format_result

    try:
        repo = find_repo(args.repo)
    except GradingError:
        repo = None  # a student's copy without the course repository: the notebook as it is
    _say(f"Checking {args.notebook} the way it is graded (visible tests only; nothing is "
         f"written)...")
    result = check_notebook(Path(args.notebook), repo, exercise=args.exercise,
                            unsafe_no_sandbox=True if args.unsafe_no_sandbox else None)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(format_result(result))
    if not result.ok:
        raise ChecksFailed("some visible tests fail (listed above)")


def _cmd_report(args: argparse.Namespace) -> None:
    from .grading.report import write_report

    repo = find_repo(args.repo)
    _say(f"Writing the class report of {args.exercise} from {Path(args.course).resolve()} ...")
    written = write_report(args.exercise, Path(args.course), repo,
                           Path(args.output) if args.output else None)
    for path in written:
        print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``beyondbert`` (one sub-command per instructor step)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--repo", metavar="DIR",
                        help=f"the course repository (default: ${REPO_ENV}, else the folder with "
                             f"_toc.yml above the current one, else this package's checkout)")
    course = argparse.ArgumentParser(add_help=False)
    course.add_argument("--course", metavar="DIR", default=".",
                        help="the nbgrader course folder (default: the current folder)")
    sandbox = argparse.ArgumentParser(add_help=False)
    sandbox.add_argument("--unsafe-no-sandbox", action="store_true",
                         help="grade even where no bubblewrap sandbox can start: student code "
                              "then runs with YOUR rights and can read or change your files")

    parser = argparse.ArgumentParser(
        prog="beyondbert", description="Grading tools of the Beyond BERT course (over nbgrader).",
        epilog="Exit status: 0 done, 1 an nbgrader step failed or a submission is flagged, "
               "2 bad input (nothing changed).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="list the course's exercises")
    p.set_defaults(run=_cmd_list)

    p = sub.add_parser("generate", parents=[common],
                       help="regenerate exercises/NN-slug.ipynb from solutions/ (all by default)")
    p.add_argument("exercises", nargs="*", metavar="EXERCISE")
    p.set_defaults(run=_cmd_generate)

    p = sub.add_parser("release", parents=[common, course],
                       help="add an exercise to a course folder (created if needed)")
    p.add_argument("exercise", metavar="EXERCISE")
    p.add_argument("--exchange", metavar="DIR",
                   help="nbgrader exchange folder to release to (default: Exchange.root of the "
                        "course's nbgrader_config.py, if set)")
    p.set_defaults(run=_cmd_release)

    p = sub.add_parser("collect", parents=[common, course],
                       help="collect submissions from the exchange (nbgrader collect) and stamp "
                            "each new one with the collection time")
    p.add_argument("exercise", metavar="EXERCISE")
    p.add_argument("--exchange", metavar="DIR",
                   help="nbgrader exchange folder (default: Exchange.root of the course's config)")
    p.set_defaults(run=_cmd_collect)

    p = sub.add_parser("autograde", parents=[common, course, sandbox],
                       help="autograde submitted/<student>/EXERCISE/ and print the scores")
    p.add_argument("exercise", metavar="EXERCISE")
    p.add_argument("--force", action="store_true",
                   help="grade again submissions that were already graded")
    p.add_argument("--student", metavar="ID", help="grade only this student's submission")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="grade N submissions at a time (default 1; results are the same)")
    p.add_argument("--strict", action="store_true",
                   help="grade nothing if any submission cannot be graded (a file that is not a "
                        "notebook, a wrong file name, an unreadable timestamp.txt, an empty "
                        "folder); by default the others are graded and those are flagged")
    p.set_defaults(run=_cmd_autograde)

    p = sub.add_parser("grade", parents=[common, sandbox],
                       help="grade one notebook file (in a temporary course) and print its score")
    p.add_argument("submission", metavar="SUBMISSION.ipynb")
    p.add_argument("--exercise", required=True, metavar="EXERCISE")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=_cmd_grade)

    p = sub.add_parser("feedback", parents=[common, course],
                       help="write feedback/<student>/EXERCISE/EXERCISE.html for every graded "
                            "student (pass/fail, points and messages; no test code)")
    p.add_argument("exercise", metavar="EXERCISE")
    p.set_defaults(run=_cmd_feedback)

    p = sub.add_parser("export", parents=[common, course],
                       help="write every grade of the course's gradebook to CSV")
    p.add_argument("--output", metavar="FILE", default="grades.csv",
                   help="CSV file to write (default: grades.csv)")
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("check", parents=[common],
                       help="a student's check before handing in: run NOTEBOOK and its visible "
                            "tests the way grading does (sandbox, plain data) and print, per "
                            "task, what would score and why not; writes nothing")
    p.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    p.add_argument("--exercise", metavar="EXERCISE",
                   help="the exercise (default: from the file or folder name, or its test cells)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run your code without the sandbox even where one can start (it already "
                        "runs unsandboxed, as you, where none can)")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(run=_cmd_check)

    p = sub.add_parser("report", parents=[common, course],
                       help="the class report of a graded exercise: one HTML page (score "
                            "histogram, points lost per task and test, common failure "
                            "messages, flagged submissions, grading time) and CSV files")
    p.add_argument("exercise", metavar="EXERCISE")
    p.add_argument("--output", metavar="DIR",
                   help="folder to write to (default: reports/EXERCISE/ in the course folder)")
    p.set_defaults(run=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``beyondbert`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except NbgraderFailed as err:
        print(f"beyondbert {args.command}: error: {err}", file=sys.stderr)
        return EXIT_NBGRADER_FAILED
    except GradingError as err:
        print(f"beyondbert {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
