"""nbgrader's execute step, sandboxed: student cells run in the sandbox, tests run outside.

``SandboxedExecute`` replaces nbgrader's ``Execute`` preprocessor in ``Autograde``. For each code
cell of the (already sanitised) submission:

* a test cell (nbgrader ``grade`` and not ``solution``; its source restored from the course's
  record by nbgrader) runs HERE, in the trusted grader process. Every name it uses that the student
  defined is looked up in the sandbox: functions become proxies whose calls send plain data in and
  bring plain data back; data is copied out; modules are imported here. The student's process
  can therefore not patch the asserts, the comparison functions or the grader.
* every other cell runs in the student's sandbox (see ``session``).

The notebook is graded in two passes (see ``SandboxedExecute.preprocess``):

1. the **visible pass** runs every cell, each test cell with its ``### BEGIN HIDDEN TESTS``
   blocks blanked out, and only the names on visible lines are looked up in the sandbox. No
   hidden input (and no hidden name) is ever sent to the sandbox in this pass, so everything it
   shows (an error's name and message, a printout) can carry nothing of a hidden test, however
   the student's code counts processes, measures time or keeps state;
2. the **hidden pass** starts the notebook over in a fresh worker (after the visible pass has
   ended: nothing of it can reach the first) and runs the test cells whole, up to the last one
   with hidden tests. It says only pass or fail: a test cell whose visible part passed but that
   fails here gets one fixed output, ``HiddenTestFailed: a hidden test failed``.

A test cell scores only if it passes in both passes.

What the grader must know about a submission beyond its scores (a forged reply on the sandbox's
channel, the time budget running out) goes to ``.beyondbert-flags.json`` beside the graded
notebook, which ``beyondbert.grading`` reads.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import io
import json
import traceback
from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution
from traitlets import Bool, Dict, Float, Integer, List, Unicode

from .errors import SandboxBroken, SandboxError
from .session import FLAGS_FILE, SandboxSession, clean_text

TEST_FILENAME = "<test cell>"
GRADER_SIDE = {"beyondbert.seeding.seed_everything",  # library functions tests run here
               "beyondbert.grading.student.plain", "beyondbert.grading.student.gradient",
               "beyondbert.grading.student.hidden_rng", "beyondbert.grading.student.hidden_seed"}
# The modules a test may use under a name a student cell bound (``import numpy as np``), by exact
# name: the grader imports its own copy of these and of nothing else a student names.
TEST_MODULES = ("math", "random", "numpy", "numpy.linalg", "numpy.testing", "scipy",
                "scipy.stats", "torch", "torch.nn", "torch.nn.functional", "torch.testing",
                "beyondbert", "beyondbert.seeding")
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
HIDDEN_ENAME, HIDDEN_FAILED = "HiddenTestFailed", "a hidden test failed"


class StudentFunction:
    """A callable standing for a function defined in the sandbox; calls go through plain data."""

    def __init__(self, session: SandboxSession, name: str, info: dict, timeout: float) -> None:
        self._session, self._name, self._timeout = session, name, timeout
        self.__name__ = name
        self.__module__ = info.get("module", "")
        self.defined_in_notebook = bool(info.get("defined_in_notebook"))

    def __call__(self, *args, **kwargs):
        return self._session.call(self._name, args, kwargs, self._timeout)

    def gradient(self, args: tuple, kwargs: dict, wrt: object, output: object = None) -> tuple:
        """The gradient of this function's scalar result, computed in the sandbox (used by
        ``beyondbert.grading.student.gradient``)."""
        return self._session.gradient(self._name, args, kwargs, wrt, self._timeout, output)

    def __repr__(self) -> str:
        return f"<student function {self._name}>"


class StudentObject:
    """A student value that is not plain data: using it in a test (even ``bool`` or ``==``)
    fails the test."""

    def __init__(self, name: str, reason: str) -> None:
        self._name, self._reason = name, reason

    def _refuse(self, *args, **kwargs):
        raise TypeError(f"{self._name} is not plain data ({self._reason})")

    __getattr__ = __bool__ = __eq__ = __len__ = __iter__ = __getitem__ = __call__ = _refuse


def _grader_side_function(info: dict):
    """The grader's own copy of a student name that is one of ``GRADER_SIDE``, else None.

    ``from beyondbert.seeding import seed_everything`` in a student cell must seed the grader,
    where the tests draw their random inputs. Every other student function is called in the
    sandbox, so the student cannot choose grader-side code for a test to run.
    """
    if info.get("kind") != "function" or info.get("defined_in_notebook"):
        return None
    module, qualname = info.get("module", ""), info.get("qualname", "")
    if f"{module}.{qualname}" not in GRADER_SIDE:
        return None
    return getattr(importlib.import_module(module), qualname)


def _grader_module(module: str, name: str, allowed=TEST_MODULES):
    """The grader's own import of a module a student cell imported as ``name``.

    Only the modules tests work with (``allowed``, exact names: not their submodules) are
    imported: the student must not choose which module the grader imports, nor its side effects.
    """
    if module not in allowed:
        return StudentObject(name, f"the grader does not import {module[:100]}")
    try:
        return importlib.import_module(module)
    except ImportError:
        return StudentObject(name, f"the grader cannot import {module}")


def _loaded_names(code: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def _hidden_lines(source: str) -> set[int]:
    """1-based line numbers inside hidden-test blocks (markers included)."""
    hidden, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if HIDDEN_BEGIN in line:
            inside = True
        if inside:
            hidden.add(number)
        if HIDDEN_END in line:
            inside = False
    return hidden


def visible_source(source: str) -> str:
    """``source`` with every line of its hidden-test blocks (markers included) blanked: what the
    student version holds, on the same line numbers."""
    hidden = _hidden_lines(source)
    return "\n".join("" if number in hidden else line
                     for number, line in enumerate(source.splitlines(), start=1))


def _failing_line(error: BaseException) -> int | None:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == TEST_FILENAME]
    return frames[-1].lineno if frames else None


def _message(failure: BaseException) -> str:
    """A grader-side exception's message, at most 500 characters."""
    try:
        return str(failure)[:500]
    except Exception:  # noqa: BLE001 - str() of an exception should not fail, but never crash
        return ""


def _error_output(ename: str, evalue: str) -> NotebookNode:
    ename, evalue = clean_text(ename), clean_text(evalue)
    return NotebookNode(output_type="error", ename=ename, evalue=evalue,
                        traceback=[f"{ename}: {evalue}" if evalue else ename])


def _stream(name: str, text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name=name, text=clean_text(text))


FAULT_SUFFIX = ".machine-fault"  # beside a student's ledger entry: the sandbox did not start


def _ledger_entry(ledger: str, student: str) -> Path | None:
    """The file in ``ledger`` that holds ``student``'s seconds spent in this autograde."""
    if not ledger or not student or "/" in student or student.startswith("."):
        return None
    return Path(ledger) / student


def spent_before(ledger: str, student: str) -> float:
    """Seconds of ``student``'s time budget already used in this autograde (0 if none)."""
    entry = _ledger_entry(ledger, student)
    try:
        return max(float(entry.read_text()), 0.0) if entry is not None else 0.0
    except (OSError, ValueError):
        return 0.0


class SandboxedExecute(NbGraderPreprocessor):
    """Execute a submission with student code sandboxed and tests run by the grader."""

    timeout = Float(60.0, help="Seconds one cell or one call may run.").tag(config=True)
    unsafe_no_sandbox = Bool(False, help="Run student code without a sandbox (unsafe)."
                             ).tag(config=True)
    forbidden_modules = Dict(value_trait=List(Unicode()), default_value={},
                             help="{exercise: [beyondbert modules hidden from its student code]}: "
                                  "the modules an exercise asks students to write themselves."
                             ).tag(config=True)
    seed = Integer(0, help="Seed of Python, NumPy and PyTorch on both sides.").tag(config=True)
    time_budget = Float(600.0, help="Seconds one submission's sandboxed work may take in all "
                        "(cells, calls, restarts and replays); past it the rest is not run and "
                        "the submission is flagged. 0: no budget.").tag(config=True)
    budget_ledger = Unicode("", help="A folder where each student's seconds spent are kept "
                            "during one autograde: a submission graded again (a retry) gets only "
                            "what is left of its time budget. A sandbox that cannot start is "
                            "noted there too (a machine fault, retried).").tag(config=True)
    test_modules = List(Unicode(), default_value=list(TEST_MODULES),
                        help="Exact names of the modules test cells may use under a name a "
                             "student cell bound (import numpy as np): the grader imports its "
                             "own copy of these, and of no other module a student names."
                        ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        from ..seeding import seed_everything

        folder = Path(resources.get("metadata", {}).get("path") or ".")
        exercise = resources.get("nbgrader", {}).get("assignment", "")
        trusted: dict = {"__name__": "__grader__"}
        hidden_modules = tuple(self.forbidden_modules.get(exercise, ()))
        flags_file = folder / FLAGS_FILE
        flags_file.unlink(missing_ok=True)  # only the grader writes it (a student could hand one in)
        student = str(resources.get("nbgrader", {}).get("student", ""))
        tests = [cell for cell in nb.cells if cell.cell_type == "code"
                 and is_grade(cell) and not is_solution(cell)]
        last_hidden = max((nb.cells.index(c) for c in tests if _hidden_lines(c.source)),
                          default=-1)
        entry = _ledger_entry(self.budget_ledger, student)
        before = spent_before(self.budget_ledger, student)
        budget = max(self.time_budget - before, 0.0) if self.time_budget else None
        session = None
        try:
            with SandboxSession(folder, hidden_modules, seed=self.seed,
                                unsafe_no_sandbox=self.unsafe_no_sandbox,
                                time_budget=budget) as session:
                seed_everything(self.seed, threads=None)  # imports torch while the worker boots
                passed = {}  # id(test cell): whether its visible part passed
                for cell in nb.cells:  # the visible pass: no hidden input or name leaves here
                    if cell.cell_type != "code":
                        continue
                    cell.outputs = []
                    if is_grade(cell) and not is_solution(cell):
                        outputs, ok = self._execute_test(visible_source(cell.source), session,
                                                         trusted)
                        cell.outputs.extend(outputs)
                        passed[id(cell)] = ok
                    else:
                        self._run_student(cell, session)
                if last_hidden >= 0:  # the hidden pass: pass or fail only
                    session.new_pass()
                    seed_everything(self.seed, threads=None)
                    trusted = {"__name__": "__grader__"}
                    for cell in nb.cells[:last_hidden + 1]:
                        if cell.cell_type != "code":
                            continue
                        if not (is_grade(cell) and not is_solution(cell)):
                            self._run_student(cell, session, keep_outputs=False)
                            continue
                        _, ok = self._execute_test(cell.source, session, trusted)
                        if passed[id(cell)] and not ok:
                            cell.outputs = [_error_output(HIDDEN_ENAME, HIDDEN_FAILED)]
        except SandboxBroken as fault:  # the machine's fault: the grader tries again
            if entry is not None:
                entry.with_name(entry.name + FAULT_SUFFIX).write_text(str(fault)[:1000])
            raise
        finally:
            if entry is not None and session is not None:
                entry.write_text(repr(before + session.spent))
        if session.flags:
            flags_file.write_text(json.dumps(session.flags))
        return nb, resources

    def _run_student(self, cell: NotebookNode, session: SandboxSession,
                     keep_outputs: bool = True) -> None:
        try:
            streams = session.run_cell(cell.source, self.timeout)
        except SandboxError as failure:
            if keep_outputs:
                cell.outputs.append(_error_output(failure.ename, failure.evalue))
            return
        if not keep_outputs:
            return
        for name in ("stdout", "stderr"):
            if streams[name]:
                cell.outputs.append(_stream(name, streams[name]))

    def _bind_student_names(self, code: str, session: SandboxSession, trusted: dict,
                            from_student: set[str]) -> None:
        for name in _loaded_names(code):
            if (name in trusted and name not in from_student) or hasattr(builtins, name):
                continue
            info = session.describe(name)
            kind = info.get("kind")
            grader_side = _grader_side_function(info)
            if grader_side is not None:
                trusted[name] = grader_side
            elif kind in ("function", "callable"):
                trusted[name] = StudentFunction(session, name, info, self.timeout)
            elif kind == "data":
                trusted[name] = info["value"]
            elif kind == "module":
                trusted[name] = _grader_module(info["module"], name, frozenset(self.test_modules))
            elif kind == "object":
                trusted[name] = StudentObject(name, info.get("reason", ""))
            else:
                trusted.pop(name, None)
                continue
            from_student.add(name)

    def _execute_test(self, source: str, session: SandboxSession,
                      trusted: dict) -> tuple[list, bool]:
        """Execute one test cell's ``source`` in ``trusted``: its outputs (an error, or what it
        printed) and whether it passed. Only the names ``source`` loads are looked up in the
        sandbox (the visible pass gives it without its hidden lines). A failure on a line of a
        hidden block, or with no line of the cell to blame in a cell that has hidden lines, is
        the fixed hidden-test failure."""
        from_student: set[str] = trusted.setdefault("__student_names__", set())
        hidden = _hidden_lines(source)
        out = io.StringIO()
        try:
            code = compile(source, TEST_FILENAME, "exec")
            self._bind_student_names(source, session, trusted, from_student)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                exec(code, trusted)
        except BaseException as failure:  # noqa: BLE001 - even SystemExit fails this test only
            line = _failing_line(failure)
            if line in hidden or (line is None and hidden):
                return [_error_output(HIDDEN_ENAME, HIDDEN_FAILED)], False  # fixed text only
            if isinstance(failure, SandboxError):
                return [_error_output(failure.ename, failure.evalue)], False
            return [_error_output(type(failure).__name__, _message(failure))], False
        if out.getvalue() and not hidden:
            return [_stream("stdout", out.getvalue()[:2000])], True
        return [], True
