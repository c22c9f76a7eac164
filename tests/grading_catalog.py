"""The grading catalog: crafted submissions of exercise 01 that try to cheat or break the grader.

Each :class:`Case` builds one submission from the student version (answers filled in, cells
added, edited or removed) and says what the grader must do with it. ``tests/test_grading_catalog.py``
grades them all in one course, ``--jobs 2``, and checks every case; the table it writes is the
one the instructor guide shows (``tests/grading-catalog.csv``).
"""

from __future__ import annotations

import copy
import json
import os
import pwd
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from notebooks import answer_cells, nbgrader_meta, solution_answers

EXERCISE = "01-encoders-and-bert"
REPO = Path(__file__).resolve().parents[1]


def _test_points(solution: Path) -> dict[str, float]:
    """``{grade_id: points}`` of the solution's graded test cells."""
    return {nbgrader_meta(c)["grade_id"]: float(nbgrader_meta(c)["points"])
            for c in nbformat.read(solution, as_version=4).cells if nbgrader_meta(c).get("grade")}


# Exercise 1's test cells and points, read from the solution: the expectations below follow them.
TEST_POINTS = _test_points(REPO / "solutions" / f"{EXERCISE}.ipynb")
FULL_MARKS = sum(TEST_POINTS.values())
ALL_TESTS = set(TEST_POINTS)
ATTENTION_TESTS = {t for t in TEST_POINTS if t.startswith("test_attention")}   # task 1
CAUSAL_TESTS = {t for t in TEST_POINTS if t.startswith("test_causal_mask")}    # task 2
POOL_TESTS = {t for t in TEST_POINTS if t.startswith("test_mean_pool")}        # task 3
EMBEDDING_TESTS = {t for t in TEST_POINTS if t.startswith("test_embeddings")}  # task 4
assert ATTENTION_TESTS | CAUSAL_TESTS | POOL_TESTS | EMBEDDING_TESTS == ALL_TESTS


def full(note: str = "") -> str:
    """An expected result of full marks, e.g. "full credit: 26"."""
    return f"{note}{FULL_MARKS:g}"


# Answer cells of a submission whose answers come from an exploit cell above them.
NO_ANSWERS = {"masked_attention": "# answered above", "causal_mask": "# answered above",
              "mean_pool": "# answered above", "bert_embeddings": "# answered above"}
# A wrong answer the visible and hidden tests catch: it averages the padding too.
WRONG_POOL = '''
def mean_pool(hidden, attention_mask):
    return hidden.mean(dim=1)
'''
# The tests WRONG_POOL fails: all of task 3's but a one-token sentence's (no padding to average).
WRONG_POOL_FAILS = POOL_TESTS - {"test_mean_pool_one_token"}
# Task 3's visible tests (sequences of at most 3 tokens); its hidden tests pass longer ones.
VISIBLE_POOL_TESTS = {"test_mean_pool", "test_mean_pool_one_token"}
# Task 3's tests that run after a hidden test handed the answer inputs it could keep (cases 20b,
# 20c, 27b): in the visible pass no hidden input was ever sent, so they pass there; in the hidden
# pass they fail, with the fixed text only.
AFTER_KEPT_INPUTS = POOL_TESTS - {"test_mean_pool", "test_mean_pool_padding"}


@dataclass
class Where:
    """What a crafted submission may know: the paths of the course and of the repository."""

    course: Path
    port: int  # a TCP port on 127.0.0.1 where the test listens for connections


@dataclass
class Case:
    """One crafted submission and the result the grader must give it."""

    number: str
    attack: str
    expected: str
    answers: dict[str, str] = field(default_factory=dict)  # {answer grade_id: source}; rest solved
    stub_answers: bool = False                               # keep the stubs instead of solving
    cells_after: dict[str, str] = field(default_factory=dict)  # {grade_id or "setup": new cell}
    edit: Callable[[nbformat.NotebookNode], None] | None = None
    exploit: Callable[[Where], str] | None = None            # a cell, placed after "setup"
    fails: set[str] | None = None  # the tests that must fail (all others pass); None: see checks
    flagged: bool = False
    time_budget: float | None = None  # graded in a run of its own with this time budget
    broken: Callable[[Path], None] | None = None  # changes its submitted/ folder: not gradable
    # Handed in through the exchange, as the OS user ``student`` (the grader collects it):
    # ``exchange(inbound folder, notebook, student)`` makes the inbound folders.
    exchange: Callable[[Path, Path, str], None] | None = None
    student: str | None = None

    @property
    def key(self) -> str:
        return self.student or f"case-{self.number}"

    def build(self, student_version: Path, where: Where, target: Path) -> Path:
        """Write this case's submission notebook to ``target``."""
        nb = nbformat.read(student_version, as_version=4)
        answers = {} if self.stub_answers else solution_answers(
            REPO / "solutions" / f"{EXERCISE}.ipynb")
        answers.update(self.answers)
        cells = answer_cells(nb)
        for grade_id, source in answers.items():
            cells[grade_id].source = source.strip("\n")
        extra = dict(self.cells_after)
        if self.exploit is not None:
            extra["setup"] = self.exploit(where)
        for grade_id, source in extra.items():
            index = next(i for i, c in enumerate(nb.cells)
                         if nbgrader_meta(c).get("grade_id") == grade_id)
            nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source.strip("\n")))
        if self.edit is not None:
            self.edit(nb)
        nbformat.write(nb, target)
        return target


def _cell(nb, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if nbgrader_meta(c).get("grade_id") == grade_id)


def _gut_tests(nb) -> None:
    for grade_id in POOL_TESTS:
        _cell(nb, grade_id).source = "pass  # the tests are gone"


def _delete_and_strip(nb) -> None:
    nb.cells.remove(_cell(nb, "test_mean_pool"))
    _cell(nb, "test_causal_mask").metadata.pop("nbgrader")


def _inflate_points(nb) -> None:
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade"):
            cell.metadata.nbgrader["points"] = 100


def _duplicate_test(nb) -> None:
    cell = _cell(nb, "test_mean_pool")
    twin = copy.deepcopy(cell)
    twin.id = "twin-of-test-mean-pool"
    nb.cells.insert(nb.cells.index(cell) + 1, twin)


def _change_kernel(nb) -> None:
    nb.metadata["kernelspec"] = {"name": "student-kernel", "display_name": "mine",
                                 "language": "python"}


def _forge_timestamp(nb) -> None:
    nb.metadata["timestamp"] = "2000-01-01 00:00:00"
    nb.metadata.setdefault("nbgrader", {})["timestamp"] = "2000-01-01 00:00:00"


def _blank(nb) -> None:
    nb.cells = []


# Exploits: if the attack works the cell defines the right answers, so any point scored is a leak.
_STEAL = '''
import glob, json, os

def _solve_from(text):
    for cell in json.loads(text)["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            exec("".join(cell["source"]), globals())

_stolen = []
for _pattern in PATTERNS:
    for _path in glob.glob(_pattern, recursive=True):
        try:
            with open(_path) as _f:
                _text = _f.read()
        except (OSError, UnicodeDecodeError):
            continue
        if "BEGIN SOLUTION" in _text or "BEGIN HIDDEN TESTS" in _text:
            _stolen.append(_path)
            try:
                _solve_from(_text)
            except (ValueError, KeyError):
                pass
print("found", len(_stolen), "solution files")
'''


def _steal_solutions(where: Where) -> str:
    patterns = [f"{REPO}/solutions/*.ipynb", f"{REPO}/tests/*.py", f"{where.course}/source/*/*",
                f"{where.course}/release/*/*", f"{where.course}/submitted/*/*/*",
                f"{where.course}/autograded/*/*/*", "/tmp/*", "/tmp/*/*", "/home/*/*",
                "/root/*", "*", "*/*"]
    return _STEAL.replace("PATTERNS", repr(patterns))


def _tamper(where: Where) -> str:
    return f'''
import glob, sqlite3
_done = []
try:
    _db = sqlite3.connect("{where.course}/gradebook.db")
    _db.execute("UPDATE grade SET auto_score = 0, manual_score = 0")
    _db.commit()
    _done.append("gradebook")
except Exception as _err:
    print("gradebook:", type(_err).__name__)
for _path in glob.glob("{where.course}/submitted/*/*/*.ipynb") + ["{REPO}/solutions/{EXERCISE}.ipynb"]:
    try:
        with open(_path, "w") as _f:
            _f.write("{{}}")
        _done.append(_path)
    except OSError as _err:
        print(_path, type(_err).__name__)
print("tampered with", _done)
'''


def _detect_grader(where: Where) -> str:
    return f'''
import os, sys
_clues = [f"{{k}}={{v}}" for k, v in os.environ.items()
          if any(w in (k + v).upper() for w in ("NBGRADER", "JUPYTER", "JPY_", "PYTEST", "HIDDEN",
                                                  "SOLUTION", "SOURCE", "AUTOGRADE"))
          or "{where.course}" in v or "{REPO}" in v]
_clues += [a for a in sys.argv if "grad" in a.lower()]
print("clues", _clues)
if _clues:  # "grading mode": go looking for the hidden tests and take the points
    exec({_steal_solutions(where)!r}, globals())
'''


def _reach_network(where: Where) -> str:
    return f'''
import socket
_reached = []
for _host, _port in (("127.0.0.1", {where.port}), ("10.0.2.2", 80), ("pypi.org", 443)):
    try:
        socket.create_connection((_host, _port), timeout=3).close()
        _reached.append(_host)
    except OSError as _err:
        print(_host, type(_err).__name__)
if _reached:
    exec({solution_answers(REPO / "solutions" / f"{EXERCISE}.ipynb")["mean_pool"]!r})
'''


# --- issue 17 and 16: forged exception names, module look-alikes, filling memory and disk,
# stalling, forged replies on the sandbox's channel, and files that cannot be graded.
ORDER = list(TEST_POINTS)  # the test cells in notebook order
EARLY = ORDER[2]  # a test near the start: the stalls and forgeries below come after it
AFTER_EARLY = set(ORDER[ORDER.index(EARLY) + 1:])
STALL_BUDGET = 90.0  # seconds of student time: the stalling cases are graded with this budget


def _cells_after(grade_id: str, *sources: str) -> Callable[[nbformat.NotebookNode], None]:
    """An edit that puts new code cells right after the cell ``grade_id``."""
    def edit(nb) -> None:
        index = nb.cells.index(_cell(nb, grade_id))
        nb.cells[index + 1:index + 1] = [nbformat.v4.new_code_cell(s.strip("\n")) for s in sources]
    return edit


def _forge(payload: str) -> str:
    """A cell that writes ``payload`` (a bytes expression) to the worker's reply channel."""
    return f"import os, sys\nos.write(int(sys.argv[3]), {payload})"


def _submitted_as(*names: str, content: bytes | None = None) -> Callable[[Path], None]:
    """A change to a submission folder: its notebook under ``names`` (none: an empty folder),
    or ``content`` written over it."""
    def change(folder: Path) -> None:
        notebook = folder / f"{EXERCISE}.ipynb"
        if content is not None:
            notebook.write_bytes(content)
            return
        data = notebook.read_bytes()
        for path in folder.iterdir():
            path.unlink()
        for name in names:
            (folder / name).write_bytes(data)
    return change


def _rewritten(change: Callable[[dict], bytes]) -> Callable[[Path], None]:
    """A change to a submission folder: its notebook's JSON rewritten as ``change`` says."""
    def edit(folder: Path) -> None:
        notebook = folder / f"{EXERCISE}.ipynb"
        notebook.write_bytes(change(json.loads(notebook.read_text())))
    return edit


def _nested_metadata(nb: dict) -> bytes:  # a cell's metadata nested 100,000 levels deep
    text = json.dumps(nb)
    return text.replace('"metadata": {', '"metadata": {"deep": ' + "[" * 100_000 + "]" * 100_000
                        + ", ", 1).encode()


def _huge_int(nb: dict) -> bytes:  # a 5,000-digit integer (over Python's int-string limit)
    return json.dumps(nb).replace('"metadata": {', '"metadata": {"n": ' + "7" * 5000 + ", ",
                                  1).encode()


def _metadata_list(nb: dict) -> bytes:
    nb["cells"][3]["metadata"] = []
    return json.dumps(nb).encode()


def _many_cells(count: int) -> Callable[[dict], bytes]:
    def change(nb: dict) -> bytes:
        nb["cells"] += [{"cell_type": "markdown", "id": f"empty-{i}", "metadata": {},
                         "source": ""} for i in range(count)]
        return json.dumps(nb).encode()
    return change


def _big_output(nb: dict) -> bytes:  # 20 MiB of printed text in one cell's outputs
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * (20 * 2**20)}]
    return json.dumps(nb).encode()


def _linked(*links: tuple[str, str], replace: bool = False,
            fifo: str | None = None) -> Callable[[Path], None]:
    """A change to a submission folder: ``(name, target)`` symbolic links put in it (targets are
    relative to the course folder), the notebook itself replaced by the first with ``replace``,
    or a FIFO named ``fifo``."""
    def change(folder: Path) -> None:
        course = folder.parents[2]
        for i, (name, target) in enumerate(links):
            if replace and i == 0:
                (folder / name).unlink()
            (folder / name).symlink_to(course / target)
        if fifo:
            os.mkfifo(folder / fifo)
    return change


SOURCE = f"source/{EXERCISE}/{EXERCISE}.ipynb"  # the solution, in the course folder


def _inbound(inbound: Path, student: str, notebook: Path, stamp: str,
             owner: str | None = None) -> Path:
    """An inbound folder of the exchange as ``nbgrader submit`` makes it, owned by ``owner``
    (default: the student it names)."""
    folder = inbound / f"{student}+{EXERCISE}+{stamp}+{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    shutil.copyfile(notebook, folder / f"{EXERCISE}.ipynb")
    _own(folder, owner or student)
    return folder


def _own(folder: Path, user: str) -> None:
    uid = pwd.getpwnam(user).pw_uid
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)


def _hand_in(*extra: tuple[str, Callable[[Path, Path], None]], stamp_text: bytes | None = None,
             stamp: str = "2099-01-01 00:00:00.000000 UTC") -> Callable[[Path, Path, str], None]:
    """A student's own inbound folder, with ``extra`` entries made in it (``(name, make)``:
    ``make(path, course)``) and a ``timestamp.txt`` of ``stamp_text``."""
    def hand_in(inbound: Path, notebook: Path, student: str) -> None:
        folder = _inbound(inbound, student, notebook, stamp)
        course = inbound.parents[2] / "course"
        for name, make in extra:
            make(folder / name, course)
        if stamp_text is not None:
            (folder / "timestamp.txt").write_bytes(stamp_text)
        _own(folder, student)
    return hand_in


def _forged_by(other: str) -> Callable[[Path, Path, str], None]:
    """The student hands in; then ``other`` makes a later folder in the student's name holding
    an empty notebook."""
    def hand_in(inbound: Path, notebook: Path, student: str) -> None:
        _inbound(inbound, student, notebook, "2026-01-01 00:00:00.000000 UTC")
        time.sleep(0.05)
        empty = inbound.parent / "empty.ipynb"
        empty.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
        _inbound(inbound, student, empty, "2099-01-01 00:00:00.000000 UTC", owner=other)
    return hand_in


def _link_to(target: str) -> Callable[[Path, Path], None]:
    def make(path: Path, course: Path) -> None:
        if path.exists():
            path.unlink()
        path.symlink_to(course / target)
    return make


FORK_BOMB = """import os, signal, time
kids = []
while len(kids) < 100000:  # sleeping children until fork fails
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    kids.append(pid)
time.sleep(8)  # hold them while the other grading job starts its sandboxes
for pid in kids:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print(len(kids), "children")"""
# Two visible tests report the process id and the clock; between them only a hidden test (the
# padding of 1e6) makes the answer fork 7 times and sleep 10 s. Run once, a visible test that
# showed something after hidden inputs ran again in a new fork of the same sandbox: its process
# id and clock then carried what the hidden test did.
LEAK_THROUGH_PID_AND_CLOCK = '''
import os, time

def mean_pool(hidden, attention_mask):
    if hidden.abs().max() >= 1e6:  # only a hidden test pads with 1e6
        for _ in range(7):
            if os.fork() == 0:
                os._exit(0)
            os.wait()
        time.sleep(10)
    if tuple(hidden.shape[:2]) in ((2, 3), (4, 1)):  # the two visible tests report
        raise ValueError(f"pid {os.getpid()} clock {time.monotonic():.2f}")
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
'''


def _timestamp(text: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        (folder / "timestamp.txt").write_text(text)
    return change


LEAK_IN_NAME = '''
kept = []

def mean_pool(hidden, attention_mask):
    kept.append(attention_mask.tolist())  # every mask, hidden ones included
    if hidden.shape[1] > 3:  # only the hidden tests pass longer sequences
        leak = "LEAK" + repr(hidden.tolist()) + repr(kept)
        raise type(leak, (Exception,), {})("a hidden test failed")
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
'''
LEAK_IN_METACLASS = '''
seen = []

class Named(type):
    @property
    def __name__(cls):  # what type(error).__name__ reads
        return "LEAK" + repr(seen)

def mean_pool(hidden, attention_mask):
    if seen:  # kept hidden inputs, in a later visible test's error: in its class's name,
        # qualname and module, with the fixed text of a hidden failure as its message
        attributes = {"__str__": lambda self: "a hidden test failed",
                      "__qualname__": "LEAK" + repr(seen), "__module__": "LEAK" + repr(seen)}
        raise Named("Leak", (Exception,), attributes)()
    if hidden.shape[1] > 3:  # only the hidden tests pass longer sequences
        seen.append(hidden.tolist())
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
'''
LEAK_IN_ATTRIBUTES = '''
def mean_pool(hidden, attention_mask):
    if hidden.shape[1] > 3:  # only the hidden tests pass longer sequences
        data = repr(hidden.tolist())
        error = type("LEAK\\n" + data * 100, (Exception,), {"__str__": lambda self: 1 / 0})(data)
        error.add_note(data)
        raise error from ValueError(data)
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
'''
STALL_SLEEP = "import time\ntime.sleep(19)  # just under the catalog's 20 s cell limit"
STALL_BUSY = "import time\nend = time.time() + 15\nwhile time.time() < end:\n    pass"
CRASH = "import os\nos._exit(1)"
FILL_TMP = "for i in range(100):  # 100 files of 60 MiB (under the 64 MiB per-file cap)\n" \
           "    open(f'/tmp/fill{i}', 'wb').write(bytes(60 * 2**20))"
FILL_HOME = "for i in range(34):\n    open(f'fill{i}', 'wb').write(bytes(60 * 2**20))"
FILL_ELSEWHERE = "for path in ('/fill', '/dev/shm/fill', '/var/tmp/fill', '/srv/submission/fill'):\n" \
                 "    try:\n        open(path, 'wb').write(bytes(2**20))\n" \
                 "    except OSError as error:\n        print(path, type(error).__name__)\n" \
                 "    else:\n        raise AssertionError(f'wrote {path}')"
MEMORY_AND_FILES = "hog = bytearray(3686 * 2**20)\nfor i in range(4):\n" \
                   "    open(f'/tmp/f{i}', 'wb').write(bytes(60 * 2**20))\n" \
                   "    open(f'h{i}', 'wb').write(bytes(60 * 2**20))"


CASES = [
    Case("01", "answer is an object whose `__eq__` is always true",
         "0 for every test that uses it", answers={"causal_mask": '''
class AlwaysEqual:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __getattr__(self, name): return self
    def __call__(self, *args, **kwargs): return self
    def __getitem__(self, key): return self

def causal_mask(n):
    return AlwaysEqual()
''', "mean_pool": '''
def mean_pool(hidden, attention_mask):
    return causal_mask(0)
'''}, fails=CAUSAL_TESTS | POOL_TESTS),
    Case("02", "no-op `numpy.testing` / `torch.testing` asserts, `torch.allclose` always true",
         "0 for the wrong answer's tests", answers={"mean_pool": WRONG_POOL}, cells_after={"setup": '''
import numpy, numpy.testing, torch, torch.testing
numpy.testing.assert_allclose = lambda *args, **kwargs: None
torch.testing.assert_close = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
'''}, fails=WRONG_POOL_FAILS),
    Case("03", "IPython AST transformer that deletes `assert` statements",
         "0 for the wrong answer's tests", answers={"mean_pool": WRONG_POOL}, cells_after={"setup": '''
import ast

class StripAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()

get_ipython().ast_transformers.append(StripAsserts())
'''}, fails=WRONG_POOL_FAILS),
    Case("04", "IPython input transformer that blanks cells containing `assert`",
         "0 for the wrong answer's tests", answers={"mean_pool": WRONG_POOL}, cells_after={"setup": '''
get_ipython().input_transformers_cleanup.append(
    lambda lines: [] if any("assert" in line for line in lines) else lines)
'''}, fails=WRONG_POOL_FAILS),
    Case("05", "`set_custom_exc` and a silent `sys.excepthook` hide tracebacks",
         "0 for the wrong answer's tests", answers={"mean_pool": WRONG_POOL}, cells_after={"setup": '''
import sys
get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
sys.excepthook = lambda *args: None
'''}, fails=WRONG_POOL_FAILS),
    Case("06", "test cells edited to `pass`", "restored and graded as the original: 0 for them",
         answers={"mean_pool": WRONG_POOL}, edit=_gut_tests, fails=WRONG_POOL_FAILS),
    Case("07", "a test cell deleted, another one's nbgrader metadata stripped",
         "those two score 0 and are flagged; the others are graded",
         edit=_delete_and_strip, fails={"test_mean_pool", "test_causal_mask"}, flagged=True),
    Case("08", "`points` raised to 100 in every test cell's metadata",
         f"points from the course's record: {full()} of {full()}", edit=_inflate_points, fails=set()),
    Case("09", "a test cell duplicated (same grade id)",
         "that submission is flagged and not graded; the batch goes on", edit=_duplicate_test,
         flagged=True),
    Case("10", "kernel changed in the notebook's metadata", full("graded with the course's kernel: "),
         edit=_change_kernel, fails=set()),
    Case("11", "an infinite loop in a cell", "that cell times out; later tests still earn credit",
         cells_after={"test_attention_values": "while True:\n    pass"}, fails=set()),
    Case("12", "a memory bomb (64 GiB of bytearrays)",
         "that cell fails at the memory cap; the batch is unaffected", cells_after={
             "test_attention_values": "hog = [bytearray(2**30) for _ in range(64)]"},
         fails=set()),
    Case("13a", "`os._exit(1)` mid-notebook", "tests before and after keep their credit",
         cells_after={"test_causal_mask": "import os\nos._exit(1)"}, fails=set()),
    Case("13b", "a segmentation fault mid-notebook", "tests before and after keep their credit",
         cells_after={"test_causal_mask": "import ctypes\nctypes.string_at(0)"}, fails=set()),
    Case("14", "`raise SystemExit` in a cell", "that cell fails, grading continues",
         cells_after={"test_causal_mask_blocks_future": "raise SystemExit(0)"}, fails=set()),
    Case("15", "a correct answer that writes warnings to stderr", full("full credit: "),
         answers={"mean_pool": '''
import sys
import warnings

def mean_pool(hidden, attention_mask):
    warnings.warn("mean_pool: this is only a warning", UserWarning)
    print("a note on stderr", file=sys.stderr)
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
'''}, fails=set()),
    Case("16", f"printing \"All tests passed! {full()}/{full()}\" with unsolved tasks",
         "no effect: 0", stub_answers=True,
         cells_after={"setup": f'print("All tests passed! Score: {full()}/{full()}")'},
         fails=ALL_TESTS),
    Case("17", "reading the solution, the hidden tests or another student's submission",
         "not possible: the files are not there; 0", answers=NO_ANSWERS, exploit=_steal_solutions,
         fails=ALL_TESTS),
    Case("18", "writing to the gradebook, to other submissions and to the solutions",
         f"not possible: own score {full()}, everyone else's intact", exploit=_tamper, fails=set()),
    Case("19", "detecting the grader through environment variables",
         "nothing reveals the grader, the hidden tests or their inputs; 0", answers=NO_ANSWERS,
         exploit=_detect_grader, fails=ALL_TESTS),
    Case("20", "an answer that raises with its (hidden) inputs in the message and prints them",
         "feedback says only \"a hidden test failed\"", answers={"mean_pool": '''
def mean_pool(hidden, attention_mask):
    if hidden.shape[1] > 3:  # only the hidden tests pass longer sequences
        print("inputs:", hidden.tolist())
        raise ValueError(f"leaked inputs: {hidden.tolist()} {attention_mask.tolist()}")
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
'''}, fails=POOL_TESTS - VISIBLE_POOL_TESTS),
    Case("20b", "an answer that keeps hidden inputs and shows them in a later visible test",
         "it passes in the visible pass (no hidden input sent) and fails in the hidden pass "
         "with the fixed text: no hidden input in any message",
         answers={"mean_pool": '''
seen = []

def mean_pool(hidden, attention_mask):
    if seen:  # inputs kept from a hidden test, shown in the next visible failure
        raise ValueError(f"kept inputs: {seen}")
    if hidden.shape[1] > 3:  # only the hidden tests pass longer sequences
        seen.append(hidden.tolist())
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
'''}, fails=AFTER_KEPT_INPUTS),
    Case("20c", "an answer that keeps hidden inputs in a file and shows them later",
         "the hidden pass starts over from the submission's files: the file never reaches the "
         "visible pass; no leak",
         answers={"mean_pool": '''
import os

def mean_pool(hidden, attention_mask):
    if os.path.exists("kept.txt"):  # inputs kept from a hidden test, shown in a visible failure
        raise ValueError("kept inputs: " + open("kept.txt").read())
    if hidden.shape[1] > 3:  # only the hidden tests pass longer sequences
        open("kept.txt", "w").write(str(hidden.tolist()))
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
'''}, fails=AFTER_KEPT_INPUTS),
    Case("21", "a forged submission time in the notebook",
         "the collection time recorded by the course wins", edit=_forge_timestamp, fails=set()),
    Case("22", "network access from student code", "refused; 0", answers=NO_ANSWERS,
         exploit=_reach_network, fails=ALL_TESTS),
    Case("23", "answers that depend on random numbers (Python, NumPy, PyTorch)",
         "seeds set: three gradings give identical results", answers={"mean_pool": '''
import random
import numpy as np

def mean_pool(hidden, attention_mask):
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    right = (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    luck = random.random() + np.random.rand() + torch.rand(1).item()
    return right if luck < 1.5 else hidden.mean(dim=1)
'''}),
    Case("24", "a correct answer in another style (loops, other names, float64 inside)",
         full("full credit: "), answers={"masked_attention": '''
def masked_attention(q, k, v, mask):
    query, key, value = q.double(), k.double(), v.double()
    allowed = mask.expand(*query.shape[:-1], key.shape[-2])
    scores = torch.matmul(query, key.transpose(-1, -2)) / query.shape[-1] ** 0.5
    scores = torch.where(allowed, scores, torch.full_like(scores, -1e300))
    scores = scores - scores.max(dim=-1, keepdim=True).values
    weights = torch.exp(scores) * allowed
    total = weights.sum(dim=-1, keepdim=True)
    weights = torch.where(total > 0, weights / torch.where(total > 0, total, 1.0), 0.0)
    return torch.matmul(weights, value).to(q.dtype), weights.to(q.dtype)
''', "causal_mask": '''
def causal_mask(n):
    rows = [[key <= query for key in range(n)] for query in range(n)]
    return torch.tensor(rows, dtype=torch.bool).reshape(n, n)
''', "mean_pool": '''
def mean_pool(hidden, attention_mask):
    sentences = []
    for vectors, flags in zip(hidden, attention_mask):
        total, count = torch.zeros(hidden.shape[-1], dtype=torch.float64), 0
        for vector, flag in zip(vectors, flags):
            if flag:
                total, count = total + vector.double(), count + 1
        sentences.append(total / max(count, 1))
    return torch.stack(sentences).to(hidden.dtype)
''', "bert_embeddings": '''
def bert_embeddings(input_ids, token_type_ids, word_table, position_table, segment_table, gamma, beta, eps):
    batch, seq = input_ids.shape
    rows = []
    for b in range(batch):
        for t in range(seq):
            z = word_table[input_ids[b, t]] + position_table[t] + segment_table[token_type_ids[b, t]]
            variance = ((z - z.mean()) ** 2).mean()
            rows.append((z - z.mean()) * torch.rsqrt(variance + eps) * gamma + beta)
    return torch.stack(rows).reshape(batch, seq, -1)
'''}, fails=set()),
    Case("25a", "the untouched student version", "0, not an error", stub_answers=True,
         fails=ALL_TESTS),
    Case("25b", "a blank notebook (no cells at all)", "0 and flagged, not an error",
         edit=_blank, fails=ALL_TESTS, flagged=True),
    Case("26", "importing the course library's own `masked_attention` and `mean_pool`",
         "no credit for those tasks (the exercise says so)", answers={
             "masked_attention": "from beyondbert.attention import "
                                 "scaled_dot_product_attention as masked_attention",
             "mean_pool": "from beyondbert.pooling import mean_pool"},
         fails=ATTENTION_TESTS | POOL_TESTS),
    Case("27a", "an answer that raises an exception whose class *name* carries its hidden inputs "
         "and the hidden masks it kept", "feedback says only \"a hidden test failed\"",
         answers={"mean_pool": LEAK_IN_NAME}, fails=POOL_TESTS - VISIBLE_POOL_TESTS),
    Case("27b", "kept hidden inputs in a later visible test's error: a metaclass `__name__`, "
         "`__qualname__`, `__module__`, and the hidden failure's text as message",
         "it passes in the visible pass (no hidden input sent) and fails in the hidden pass "
         "with the fixed text: no hidden input in any message",
         answers={"mean_pool": LEAK_IN_METACLASS}, fails=AFTER_KEPT_INPUTS),
    Case("27c", "hidden inputs in an exception's args, notes, cause, a multi-line 100-fold name and "
         "a `__str__` that raises", "feedback says only \"a hidden test failed\"",
         answers={"mean_pool": LEAK_IN_ATTRIBUTES}, fails=POOL_TESTS - VISIBLE_POOL_TESTS),
    Case("28a", "module look-alikes the tests use: `torch = types.ModuleType(\"numpy.f2py.__main__\")`, "
         "`math` named `torch.utils.bottleneck.__main__`",
         "the grader imports neither (its tests say so); 0", cells_after={"setup": '''
import types
torch = types.ModuleType("numpy.f2py.__main__")
math = types.ModuleType("torch.utils.bottleneck.__main__")
'''}, fails=ALL_TESTS),
    Case("28b", "real modules off the allow-list under names the tests use "
         "(`import numpy.f2py as torch`, `import this as math`)",
         "the grader imports neither (its tests say so); 0", cells_after={"setup": '''
import numpy.f2py as torch
import this as math
'''}, fails=ALL_TESTS),
    Case("29a", "filling `/tmp` (100 files of 60 MiB), the home folder (34 more), and writing to "
         "`/`, `/dev/shm`, `/var/tmp` and the handed-in files",
         "those cells fail (tmpfs full, read-only); every test earns credit", edit=_cells_after(
             EARLY, FILL_TMP, FILL_HOME, FILL_ELSEWHERE), fails=set()),
    Case("29b", "3.6 GiB of memory, then files in `/tmp` and the home folder on top",
         "that cell fails at the memory limit; every test earns credit",
         edit=_cells_after(EARLY, MEMORY_AND_FILES), fails=set()),
    # Two-pass grading spends the whole budget in the visible pass here, and the hidden pass then
    # fails every test cell: the credit earned before is lost (a known gap, issue 23 stays open).
    Case("30a", "cells that sleep just under the cell limit, then crashes that replay them",
         f"stopped at the time budget ({STALL_BUDGET:g} s here); flagged; the hidden pass has no "
         "time left so no credit (a known gap of two-pass grading)",
         edit=_cells_after(EARLY, *[STALL_SLEEP] * 3, *[CRASH] * 6),
         fails=ALL_TESTS, flagged=True, time_budget=STALL_BUDGET),
    Case("30b", "cells that keep the CPU busy just under the cell limit",
         f"stopped at the time budget ({STALL_BUDGET:g} s here); flagged; the hidden pass has no "
         "time left so no credit (a known gap of two-pass grading)",
         edit=_cells_after(EARLY, *[STALL_BUSY] * 8),
         fails=ALL_TESTS, flagged=True, time_budget=STALL_BUDGET),
    Case("31a", "a 200 000-deep nested JSON reply written to the worker's reply pipe",
         "a protocol violation: that process restarts, every test earns credit; flagged",
         edit=_cells_after(EARLY, _forge(
             "(400002).to_bytes(8, 'big') + b'[' * 200000 + b'{}' + b']' * 200000")),
         fails=set(), flagged=True),
    Case("31b", "other forged replies: a 2**62-byte length, bytes that are not JSON, a JSON list, "
         "an error whose name is a list", "each a protocol violation: every test earns credit; "
         "flagged", edit=_cells_after(
             EARLY, _forge("(2**62).to_bytes(8, 'big')"),
             _forge("(9).to_bytes(8, 'big') + b'not json!'"),
             _forge("(6).to_bytes(8, 'big') + b'[1, 2]'"),
             _forge("(39).to_bytes(8, 'big') + b'{\"ok\": false, \"error\": {\"ename\": [1]}}'")),
         fails=set(), flagged=True),
    Case("32a", "a file that is not a notebook (not JSON) under the right name",
         "not graded, flagged with the reason; the class is graded", fails=ALL_TESTS,
         flagged=True, broken=_submitted_as(content=b"{ this is not a notebook")),
    Case("32b", "the right notebook under another file name",
         "not graded, flagged with the reason; the class is graded", fails=ALL_TESTS,
         flagged=True, broken=_submitted_as("my-answers.ipynb")),
    Case("32c", "two notebooks, neither under the right name",
         "not graded, flagged with the reason; the class is graded", fails=ALL_TESTS,
         flagged=True, broken=_submitted_as("draft.ipynb", "final (1).ipynb")),
    Case("32d", "a `timestamp.txt` nbgrader cannot parse",
         "not graded, flagged naming the file and the format; the class is graded",
         fails=ALL_TESTS, flagged=True, broken=_timestamp("next Tuesday at noon")),
    Case("32e", "an empty submission folder", "not graded, flagged; the class is graded",
         fails=ALL_TESTS, flagged=True, broken=_submitted_as()),
    # --- issue 23: links, the exchange, malformed and oversized files, fork bombs, surrogates,
    # and hidden inputs through the process counter and the clock.
    Case("33a", "the handed-in notebook is a symbolic link to the course's solution",
         "not graded (a link is not a regular file), flagged; the class is graded",
         fails=ALL_TESTS, flagged=True, broken=_linked((f"{EXERCISE}.ipynb", SOURCE),
                                                      replace=True)),
    Case("33b", "links to the gradebook and the solution beside an honest notebook",
         "not graded, flagged: nothing is copied through a link", fails=ALL_TESTS, flagged=True,
         broken=_linked(("gradebook.db", "gradebook.db"), ("solution.ipynb", SOURCE))),
    Case("33c", "a FIFO beside an honest notebook", "not graded, flagged", fails=ALL_TESTS,
         flagged=True, broken=_linked(fifo="answers")),
    Case("34a", "through the exchange: the notebook is a link to the course's solution",
         "refused at collect, the instructor warned; nothing collected", fails=ALL_TESTS,
         flagged=True, student="man",
         exchange=_hand_in((f"{EXERCISE}.ipynb", _link_to(SOURCE)))),
    Case("34b", "through the exchange: links to the gradebook and the solution beside the "
         "notebook", "refused at collect, the instructor warned; nothing collected",
         fails=ALL_TESTS, flagged=True, student="lp", exchange=_hand_in(
             ("gradebook.db", _link_to("gradebook.db")), ("solution.ipynb", _link_to(SOURCE)))),
    Case("34c", "through the exchange: a FIFO in the folder",
         "refused at collect, the instructor warned; nothing collected", fails=ALL_TESTS,
         flagged=True, student="mail",
         exchange=_hand_in(("answers", lambda path, course: os.mkfifo(path)))),
    Case("35", "another user makes a later inbound folder in this student's name (an empty "
         "notebook dated 2099)", f"the forged folder refused, the instructor warned; the student's "
         f"own notebook graded: {full()}", fails=set(), student="daemon",
         exchange=_forged_by("bin")),
    Case("36a", "through the exchange: a forged `timestamp.txt` (2026-01-01) and a folder named "
         "2099", "the collection time is recorded", fails=set(), student="sys",
         exchange=_hand_in(stamp_text=b"2026-01-01 00:00:00.000000 UTC")),
    Case("36b", "through the exchange: a `timestamp.txt` of the bytes ff fe and a folder name "
         "that is no time", "collected and graded; the collection time is recorded",
         fails=set(), student="games",
         exchange=_hand_in(stamp_text=b"\xff\xfe", stamp="not a time")),
    Case("37a", "one cell's metadata nested 100,000 levels deep",
         "not graded, flagged (not a readable notebook); the class is graded", fails=ALL_TESTS,
         flagged=True, broken=_rewritten(_nested_metadata)),
    Case("37b", "a 5,000-digit integer in a cell's metadata",
         "not graded, flagged (not a readable notebook); the class is graded", fails=ALL_TESTS,
         flagged=True, broken=_rewritten(_huge_int)),
    Case("37c", "a cell whose `metadata` is `[]`",
         "not graded, flagged (nbformat validation); the class is graded", fails=ALL_TESTS,
         flagged=True, broken=_rewritten(_metadata_list)),
    Case("38a", "50,000 empty markdown cells", "over the cell cap: not graded, flagged",
         fails=ALL_TESTS, flagged=True, broken=_rewritten(_many_cells(50_000))),
    Case("38b", "a 20 MiB output in one cell", "over the file-size cap: not graded, flagged",
         fails=ALL_TESTS, flagged=True, broken=_rewritten(_big_output)),
    Case("39", "a cell that prints a lone surrogate (`print('\\ud800')`) after a 5 s sleep",
         f"output cleaned: graded once, {full()}, not flagged", fails=set(),
         cells_after={"setup": "import time\ntime.sleep(5)\nprint('\\ud800')"}),
    Case("40", "a fork bomb: sleeping children until fork fails, held 8 s (graded with --jobs 2 "
         "beside the others)", f"its own sandbox's process cap stops it; {full()}; every other "
         "submission graded as usual", fails=set(), cells_after={"setup": FORK_BOMB}),
    Case("41", "hidden inputs through the process-id counter and the clock: a hidden test's "
         "input makes the answer fork 7 times and sleep 10 s; visible tests report `os.getpid()` "
         "and the clock", "visible messages come from a pass with no hidden input: the same "
         "process id, no 10 s between them", answers={"mean_pool": LEAK_THROUGH_PID_AND_CLOCK},
         fails={"test_mean_pool", "test_mean_pool_one_token"}),
]
