"""The sandbox on its own: plain data across the boundary, and one sandboxed worker's guarantees.

The grading catalog (test_grading_catalog.py) checks the same guarantees end to end through
nbgrader; these tests pin them down at the level of the modules.
"""

from __future__ import annotations

import errno
import json
import math
import random
import struct
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from beyondbert.sandbox import launcher, warm
from beyondbert.sandbox import session as session_module
from beyondbert.sandbox.executor import (HIDDEN_ENAME, HIDDEN_FAILED, SandboxedExecute,
                                         StudentObject, _grader_module, _grader_side_function)
from beyondbert.sandbox.seccomp import keyring_filter
from beyondbert.sandbox.plaindata import (MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, MalformedMessage,
                                          NotPlainData, decode_message, encode_message,
                                          from_plain, to_plain)
from beyondbert.sandbox.session import (BUDGET_FLAG, FLAGS_FILE, PROTOCOL_FLAG, NoSandbox,
                                        SandboxBroken, SandboxError, SandboxSession, error_name)
from beyondbert.seeding import seed_everything

REPO_SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


# ------------------------------------------------------------------------------ plain data
def test_plain_data_round_trip_keeps_types_and_values():
    value = {"ints": [1, -2], "pair": (0.5, "text"), "flags": [True, None],
             "special": [math.inf, -math.inf], "array": np.arange(6, dtype=np.int16).reshape(2, 3),
             "tensor": torch.linspace(0, 1, 5, dtype=torch.float64)}
    back = from_plain(to_plain(value))
    assert back["ints"] == [1, -2] and back["pair"] == (0.5, "text")
    assert back["flags"] == [True, None] and back["special"] == [math.inf, -math.inf]
    assert back["array"].dtype == np.int16 and np.array_equal(back["array"], value["array"])
    assert isinstance(back["tensor"], torch.Tensor) and back["tensor"].dtype == torch.float64
    assert torch.equal(back["tensor"], value["tensor"])
    assert math.isnan(from_plain(to_plain(float("nan"))))
    scalar = from_plain(to_plain(torch.tensor(2.5)))  # a loss: 0-d stays 0-d, not shape (1,)
    assert scalar.shape == () and scalar.item() == 2.5


class AlwaysEqual:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("value, message", [
    (AlwaysEqual(), "not plain data"),
    ([1, AlwaysEqual()], "not plain data"),
    ({1: "a"}, "keys must be strings"),
    (np.array([AlwaysEqual()], dtype=object), "numeric or bool"),
    (torch.ones(2, dtype=torch.bfloat16), "bfloat16"),
    (lambda: 0, "not plain data"),
])
def test_values_that_are_not_plain_data_cannot_cross(value, message):
    with pytest.raises(NotPlainData, match=message):
        to_plain(value)


def test_unknown_tags_are_refused():
    with pytest.raises(NotPlainData, match="unknown plain-data tag"):
        from_plain({"__pickle__": "gASVAAAAAAAAAA=="})


@pytest.mark.parametrize("data", [
    {"__tuple__": 3}, {"__dict__": []}, {"__float__": "1e5"}, {"__ndarray__": "not base64!"},
    {"__ndarray__": 12}, {"__tensor__": "AAAA", "requires_grad": False, "extra": 1},
    {"a": 1, "b": 2}, {1: 2}, [[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]],
])
def test_malformed_plain_data_is_refused_with_one_error_type(data):
    """Whatever a forged reply holds, decoding it raises NotPlainData and nothing else."""
    with pytest.raises(NotPlainData):
        from_plain(data)


def test_messages_are_checked_for_size_and_depth_before_parsing():
    deep = b"[" * 200_000 + b"]" * 200_000  # the review's payload: json.loads would recurse
    for body, why in [(deep, "nesting"), (b'{"a": "no end', "not JSON"),
                      (b'{"a": "' + b"[" * 100 + b'}', "not terminated"),
                      (b'["\\\\"' + b"[" * 100 + b"]" * 100 + b"]", "nesting"),  # "\\" ends
                      (b"]]][[[" * 20, "unbalanced"), (b"[1, 2]", "JSON object"),
                      (b"\xff\xfe", "not JSON")]:
        with pytest.raises(MalformedMessage, match=why):
            decode_message(body)
    escaped = b'{"a": "\\"' + b"[" * 100 + b'"}'  # \" does not end the string: no nesting
    assert decode_message(escaped) == {"a": '"' + "[" * 100}
    depth = MAX_JSON_DEPTH - 1  # brackets inside strings do not count; escaped quotes are handled
    body = json.dumps({"text": 'a "quoted" [[[ \\', "v": [[[0]]]}).encode()
    nested = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    assert decode_message(body)["v"] == [[[0]]] and decode_message(nested)
    with pytest.raises(MalformedMessage, match="over the"):
        encode_message({"big": "x" * MAX_MESSAGE_BYTES})


def test_check_message_agrees_with_a_json_parser_on_random_documents():
    def depth(value):
        if not isinstance(value, (dict, list)):
            return 0
        children = value.values() if isinstance(value, dict) else value
        return 1 + max(map(depth, children), default=0)

    def leaf():
        return random.choice([1, None, "a[b", 'q"]}', "\\", '\\"[', "é{", "", [], {}])

    def draw(level, target):  # one branch reaches ``target`` levels, with leaves beside it
        if level >= target:
            return leaf()
        children = [leaf() for _ in range(random.randint(0, 2))]
        children.insert(random.randint(0, len(children)), draw(level + 1, target))
        if random.random() < 0.5:
            return children
        return {f"{random.choice('[{]')}{i}": child for i, child in enumerate(children)}

    random.seed(0)
    for _ in range(2000):
        value = {"v": draw(2, random.randint(MAX_JSON_DEPTH - 6, MAX_JSON_DEPTH + 4))}
        body = json.dumps(value).encode()
        try:
            decode_message(body)
            accepted = True
        except MalformedMessage:
            accepted = False
        assert accepted == (depth(value) <= MAX_JSON_DEPTH), body[:200]
    for _ in range(300):  # random bytes: MalformedMessage or a dict, never another error
        noise = bytes(random.choice(b'[]{}",:\\ 1an') for _ in range(random.randint(0, 60)))
        try:
            assert isinstance(decode_message(noise), dict)
        except MalformedMessage:
            pass


def test_student_exception_names_are_shown_only_when_they_are_plain_names():
    assert error_name("ValueError") == "ValueError" and error_name("np.linalg.LinAlgError")
    for forged in ("LEAK[[1.0, 2.0]]", "x" * 101, "a b", "<b>", "", None, 42):
        assert error_name(forged) == "Exception"


# ------------------------------------------------------------------------------- the worker
needs_sandbox = pytest.mark.skipif(launcher.sandbox_problem() is not None,
                                   reason="bubblewrap cannot start a sandbox here")


@pytest.fixture(scope="module")
def session():
    if launcher.sandbox_problem() is not None:
        pytest.skip("bubblewrap cannot start a sandbox here")
    with SandboxSession(None, ("beyondbert.pooling",)) as sandboxed:
        yield sandboxed


@needs_sandbox
def test_cells_functions_and_data_cross_as_plain_data(session):
    out = session.run_cell("import torch\nx = torch.arange(3.0)\ndef double(t):\n    return 2 * t\n"
                           "print('hello')", timeout=60)
    assert out["stdout"] == "hello\n"
    assert torch.equal(session.describe("x")["value"], torch.arange(3.0))
    assert torch.equal(session.call("double", (torch.ones(2),), {}, timeout=10), torch.full((2,), 2.0))
    assert session.describe("nothing_here")["kind"] == "missing"
    assert session.describe("torch") == {"ok": True, "kind": "module", "module": "torch",
                                         "stdout": "", "stderr": ""}


@needs_sandbox
def test_an_object_with_custom_eq_cannot_leave(session):
    session.run_cell("class Yes:\n    def __eq__(self, other): return True\n"
                     "def answer(): return Yes()\nyes = Yes()", timeout=10)
    assert session.describe("yes")["kind"] == "object"
    with pytest.raises(SandboxError, match="not plain data"):
        session.call("answer", (), {}, timeout=10)


@needs_sandbox
def test_forbidden_modules_network_and_course_files_are_out_of_reach(session):
    with pytest.raises(SandboxError, match="No module named 'beyondbert.pooling'"):
        session.run_cell("import beyondbert.pooling", timeout=10)
    session.run_cell("import beyondbert.seeding", timeout=10)  # other modules stay importable
    with pytest.raises(SandboxError, match="(FileNotFoundError|PermissionError)"):
        session.run_cell(f"open({str(REPO_SOLUTIONS / '01-encoders-and-bert.ipynb')!r})",
                         timeout=10)
    with pytest.raises(SandboxError, match="(OSError|ConnectionRefusedError|gaierror)"):
        session.run_cell("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)",
                         timeout=10)


@needs_sandbox
def test_a_timeout_or_a_crash_fails_one_cell_and_the_state_comes_back(session):
    session.run_cell("kept = 41 + 1", timeout=10)
    with pytest.raises(SandboxError, match="TimeoutError"):
        session.run_cell("while True:\n    pass", timeout=2)
    with pytest.raises(SandboxError, match="WorkerDied"):
        session.run_cell("import os\nos._exit(1)", timeout=10)
    with pytest.raises(SandboxError, match="SystemExit"):
        session.run_cell("raise SystemExit(3)", timeout=10)
    assert session.describe("kept")["value"] == 42  # replayed after each restart


def test_without_bubblewrap_grading_is_refused(monkeypatch):
    monkeypatch.setattr(launcher.shutil, "which", lambda name: None)
    problem = launcher.sandbox_problem()
    assert "apt-get install bubblewrap" in problem and "--unsafe-no-sandbox" in problem
    with pytest.raises(NoSandbox, match="bubblewrap"):
        SandboxSession(None)


def test_a_student_object_that_is_not_plain_data_fails_any_use():
    value = StudentObject("answer", "values of type Yes are not plain data")
    for use in (bool, lambda v: v == 42, len, iter, lambda v: v[0], lambda v: v.shape, lambda v: v()):
        with pytest.raises(TypeError, match="answer is not plain data"):
            use(value)


def test_only_the_seeding_function_runs_grader_side():
    seeding = {"kind": "function", "module": "beyondbert.seeding", "qualname": "seed_everything",
               "defined_in_notebook": False}
    assert _grader_side_function(seeding) is seed_everything
    for other in (dict(seeding, defined_in_notebook=True),  # the student's own function
                  dict(seeding, module="beyondbert.results", qualname="record"),
                  dict(seeding, module="os", qualname="remove")):
        assert _grader_side_function(other) is None


@needs_sandbox
def test_a_restart_brings_back_cells_not_files_and_has_a_budget(monkeypatch):
    monkeypatch.setattr(session_module, "MAX_RESTARTS", 2)
    with SandboxSession(None) as session:
        session.run_cell("import os\nkept = 1\nos.mkdir('locked')\n"
                         "open('locked/stash.txt', 'w').write('hidden input')\n"
                         "os.chmod('locked', 0o500)\n"
                         "def keep(value):\n    open('call-stash.txt', 'w').write(str(value))\n"
                         "    return value", timeout=30)
        assert session.call("keep", (42,), {}, timeout=10) == 42  # a call writes a file
        for _ in range(2):
            with pytest.raises(SandboxError, match="TimeoutError"):
                session.run_cell("while True:\n    pass", timeout=1)
        session.run_cell("import os\nfiles = sorted(os.listdir('.'))", timeout=30)
        # the replayed cell wrote its file again; what the call wrote is gone
        assert session.describe("kept")["value"] == 1
        assert session.describe("files")["value"] == ["locked"]
        with pytest.raises(SandboxError, match="TimeoutError"):
            session.run_cell("while True:\n    pass", timeout=1)
        with pytest.raises(SandboxError, match="the rest of the notebook is not run"):
            session.run_cell("x = 1", timeout=30)


@needs_sandbox
def test_a_worker_that_cannot_start_is_the_graders_fault(monkeypatch):
    warm.close_all()  # no warm sandbox to reuse: a new one must start, and cannot
    monkeypatch.setattr(launcher, "bwrap_command", lambda *args: ["bwrap", "--no-such-option"])
    with SandboxSession(None) as session:
        with pytest.raises(SandboxBroken, match="did not start: .*no-such-option"):
            session.run_cell("x = 1", timeout=30)


def test_the_grader_imports_only_modules_tests_use():
    import torch.nn.functional

    assert _grader_module("torch.nn.functional", "F") is torch.nn.functional
    for chosen_by_student in ("antigravity", "os", "shutil", "no_such_module",
                              "numpy.f2py.__main__", "numpy.f2py", "torch.__main__", "this",
                              "torch.utils.bottleneck.__main__", "beyondbert.cli", "numpy."):
        with pytest.raises(TypeError, match="not plain data"):
            bool(_grader_module(chosen_by_student, "torch"))


# ---------------------------------------------------------- forged replies, budgets, bounds
def forge(payload: str) -> str:
    """A student cell that writes ``payload`` (a Python bytes expression) to the reply channel."""
    return f"import os, sys\nos.write(int(sys.argv[3]), {payload})"


@needs_sandbox
@pytest.mark.parametrize("payload", [
    "(400002).to_bytes(8, 'big') + b'[' * 200000 + b'{}' + b']' * 200000",
    "(2**62).to_bytes(8, 'big')",
    "(9).to_bytes(8, 'big') + b'not json!'",
    "(6).to_bytes(8, 'big') + b'[1, 2]'",
    "(39).to_bytes(8, 'big') + b'{\"ok\": false, \"error\": {\"ename\": [1]}}'",
], ids=["deep", "oversized", "not-json", "not-an-object", "wrong-fields"])
def test_a_forged_reply_is_a_protocol_violation_of_that_worker(payload):
    with SandboxSession(None) as session:
        session.run_cell("kept = 42", timeout=60)
        with pytest.raises(SandboxError, match="ProtocolViolation"):
            session.run_cell(forge(payload), timeout=30)
        assert session.flags == [PROTOCOL_FLAG]
        assert session.describe("kept")["value"] == 42  # restarted and replayed


FORGING_FUNCTIONS = '''
import os, sys

def send(text):
    body = text.encode()
    os.write(int(sys.argv[3]), len(body).to_bytes(8, "big") + body)

def answer():  # its forged reply holds an array that is not one
    send('{"ok": true, "value": {"__ndarray__": "QUJD"}, "stdout": "", "stderr": ""}')

def look():  # its forged reply answers the grader's next request, a look-up
    send('{"ok": true, "kind": "function", "module": 5, "stdout": "", "stderr": ""}')
'''


@needs_sandbox
def test_forged_data_in_a_call_or_a_look_up_is_a_protocol_violation():
    with SandboxSession(None) as session:
        session.run_cell(FORGING_FUNCTIONS, timeout=60)
        with pytest.raises(SandboxError, match="ProtocolViolation"):
            session.call("answer", (), {}, timeout=30)
        session.run_cell("look()", timeout=60)
        with pytest.raises(SandboxError, match="ProtocolViolation"):
            session.describe("answer")
        assert session.flags == [PROTOCOL_FLAG]


@needs_sandbox
def test_a_time_budget_counts_replays_then_stops_and_flags():
    with SandboxSession(None, time_budget=25) as session:
        session.run_cell("import time\nkept = 1\ntime.sleep(6)", timeout=60)
        with pytest.raises(SandboxError, match="WorkerDied"):  # a crash: the 6 s cell is replayed
            session.run_cell("import os\nos._exit(1)", timeout=60)
        with pytest.raises(SandboxError, match="TimeBudgetExceeded"):
            session.run_cell("time.sleep(30)", timeout=60)  # under the cell's own limit
        assert session.out_of_time and session.flags == [BUDGET_FLAG.format(budget=25)]
        with pytest.raises(SandboxError, match="TimeBudgetExceeded"):
            session.describe("kept")  # nothing runs any more, at once


@needs_sandbox
def test_tmp_home_root_and_dev_are_bounded_or_read_only():
    small = launcher.Limits(tmp_bytes=8 * 1024**2, home_bytes=8 * 1024**2)
    with SandboxSession(None, limits=small) as session:
        for folder in ("/tmp", "."):
            with pytest.raises(SandboxError, match="No space left"):
                session.run_cell(f"for i in range(3):\n    open(f'{folder}/f{{i}}', 'wb')"
                                 f".write(bytes(4 * 2**20))", timeout=60)
        for path in ("/x", "/dev/shm/x", "/dev/x", "/srv/submission/x", "/var/tmp/x"):
            with pytest.raises(SandboxError, match="(Read-only|Permission|No such file)"):
                session.run_cell(f"open({path!r}, 'w').write('x')", timeout=30)


@needs_sandbox
@pytest.mark.skipif(launcher.memory_confinement().startswith("address space"),
                    reason="no memory cgroup can be created here (address-space limit only)")
def test_the_memory_cgroup_counts_files_in_tmpfs():
    """2 GiB for everything: 1.2 GiB of memory and 0.9 GiB of files in /tmp exceed it together,
    though each fits its own limit (RLIMIT_AS does not count files)."""
    limits = launcher.Limits(memory_bytes=2 * 1024**3, tmp_bytes=1024**3)
    with SandboxSession(None, limits=limits) as session:
        session.run_cell("kept = 1", timeout=60)
        with pytest.raises(SandboxError, match="WorkerDied"):
            session.run_cell("hog = bytearray(1200 * 2**20)\nfor i in range(15):\n"
                             "    open(f'/tmp/f{i}', 'wb').write(bytes(60 * 2**20))", timeout=60)
        assert session.describe("kept")["value"] == 1


# ------------------------------------------- one warm sandbox, one submission after another
# What a submission leaves behind in its sandbox: files, a detached process that writes later,
# patched modules and builtins, a patched worker, an environment variable, System V shared
# memory. (Keyrings cannot be used at all: see the test after this one.)
LEAVE_TRACES = """
import builtins, ctypes, math, os, subprocess, sys
import torch
open("/tmp/left-in-tmp", "w").write("A")
open("left-in-home", "w").write("A")
os.environ["LEFT_BY_A"] = "A"
builtins.round = lambda *args: 42
torch.softmax = lambda *args, **kwargs: "patched"
math.sqrt = lambda value: 42
sys.modules["beyondbert.sandbox.worker"].to_plain = lambda value, depth=0: "forged"
later = "import os, time\\nos.setsid()\\ntime.sleep(1)\\nopen('/tmp/written-later', 'w').write('A')"
background = subprocess.Popen([sys.executable, "-c", later], start_new_session=True)
libc = ctypes.CDLL(None, use_errno=True)
shm = libc.shmget(4242, 4096, 0o1666)  # IPC_CREAT | 0666
running = background.poll() is None
"""
LOOK_FOR_TRACES = """
import builtins, ctypes, math, os, sys, time
import torch
time.sleep(1.5)  # a process of A left running would have written /tmp/written-later by now
libc = ctypes.CDLL(None, use_errno=True)
seen = {"tmp": sorted(os.listdir("/tmp")), "home": sorted(os.listdir(".")),
        "handed in": sorted(os.listdir("/srv/submission")),
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != 1),
        "me and my parent": sorted([os.getpid(), os.getppid()]),
        "env": "LEFT_BY_A" in os.environ, "round": round(2.4), "sqrt": math.sqrt(4.0),
        "softmax": torch.softmax(torch.zeros(2), dim=0).tolist(),
        "shm": libc.shmget(4242, 0, 0)}
"""


def submission_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}-notes.txt").write_text(name)
    return folder


@needs_sandbox
def test_nothing_of_a_submission_reaches_the_next_one_in_the_same_warm_sandbox(tmp_path):
    with SandboxSession(submission_folder(tmp_path, "a")) as first:
        first.run_cell(LEAVE_TRACES, timeout=60)
        assert first.describe("running")["value"] == "forged"  # A's worker is patched...
        first.run_cell("import beyondbert.sandbox.worker as w, beyondbert.sandbox.plaindata as p\n"
                       "w.to_plain = p.to_plain", timeout=30)
        assert first.describe("running")["value"] is True  # ...and its process is running
        assert first.describe("shm")["value"] >= 0
        sandbox = first._warm
    with SandboxSession(submission_folder(tmp_path, "b")) as second:
        assert second._warm is sandbox  # the same warm sandbox, reset
        second.run_cell(LOOK_FOR_TRACES, timeout=60)
        seen = second.describe("seen")["value"]
    assert seen["processes"] == seen["me and my parent"]  # the worker and its zygote, no more
    assert seen == {"tmp": [], "home": ["b-notes.txt"], "handed in": ["b-notes.txt"],
                    "processes": seen["processes"], "me and my parent": seen["processes"],
                    "env": False, "round": 2, "sqrt": 2.0, "softmax": [0.5, 0.5],
                    "shm": -1}


TRY_KEYRINGS = """
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
add_key, request_key, keyctl = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}[platform.machine()]
tried = []
for call in (lambda: libc.syscall(add_key, b"user", b"note", b"A", 1, ctypes.c_int(-4)),
             lambda: libc.syscall(request_key, b"user", b"note", None, ctypes.c_int(-4)),
             lambda: libc.syscall(keyctl, 0, ctypes.c_int(-4), 0)):  # KEYCTL_GET_KEYRING_ID
    ctypes.set_errno(0)
    tried.append([call(), ctypes.get_errno()])
"""


@needs_sandbox
@pytest.mark.skipif(keyring_filter() is None, reason="no keyring filter for this machine")
def test_the_kernel_keyrings_are_refused_in_the_sandbox():
    """A keyring belongs to a uid, so it could pass values between two sandboxes running at once."""
    with SandboxSession(None) as session:
        session.run_cell(TRY_KEYRINGS, timeout=60)
        assert session.describe("tried")["value"] == [[-1, errno.EPERM]] * 3


def test_the_keyring_filter_program():
    program = keyring_filter("x86_64")
    assert len(program) == 9 * 8  # nine struct sock_filter of 8 bytes
    code, jump_if, jump_else, k = struct.unpack("=HBBI", program[8:16])
    assert (jump_if, jump_else, k) == (0, 6, 0xC000003E)  # another architecture: refused
    assert struct.unpack("=HBBI", program[-8:])[3] == 0x00050000 | errno.EPERM
    assert keyring_filter("sparc") is None


@needs_sandbox
def test_student_code_cannot_reach_into_the_warm_zygote():
    with SandboxSession(None) as session:
        session.run_cell("""
import ctypes, os
zygote = os.getppid()
refused = []
for path in (f"/proc/{zygote}/mem", f"/proc/{zygote}/environ"):
    try:
        open(path, "rb").read(1)
    except OSError as err:
        refused.append(type(err).__name__)
try:
    os.listdir(f"/proc/{zygote}/fd")
except OSError as err:
    refused.append(type(err).__name__)
attached = ctypes.CDLL(None, use_errno=True).ptrace(16, zygote, None, None)  # PTRACE_ATTACH
""", timeout=60)
        assert session.describe("refused")["value"] == ["PermissionError"] * 3
        assert session.describe("attached")["value"] == -1


RUNAWAYS = {
    "endless loop": "while True:\n    pass",
    "memory bomb": "hog = bytearray(64 * 2**30)",
    "crash": "import os\nos._exit(1)",
    "many processes": "import subprocess, sys\nkids = [subprocess.Popen([sys.executable, '-c', "
                      "'import time; time.sleep(60)']) for _ in range(20)]",
    # The sleep keeps the cell running until the sandbox falls with its zygote, so the cell fails
    # (and is not replayed); without it the worker may answer first and the *next* request fails.
    "zygote killed": "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(10)",
    "zygote stopped": "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)",
}


@needs_sandbox
@pytest.mark.parametrize("runaway", RUNAWAYS.values(), ids=RUNAWAYS.keys())
def test_a_runaway_submission_leaves_the_next_one_a_working_sandbox(runaway, monkeypatch):
    monkeypatch.setattr(warm, "ANSWER_TIMEOUT", 5.0)  # a stopped zygote: replaced after 5 s
    with SandboxSession(None) as first:
        first.run_cell("kept = 1", timeout=60)
        try:
            first.run_cell(runaway, timeout=3)
        except SandboxError:
            pass  # a time-out, MemoryError or crash fails that cell only
        assert first.describe("kept")["value"] == 1
    with SandboxSession(None) as second:
        second.run_cell("import os\nothers = sorted(set(int(p) for p in os.listdir('/proc') "
                        "if p.isdigit()) - {1, os.getpid(), os.getppid()})\n"
                        "total = sum(range(10))", timeout=60)
        assert second.describe("others")["value"] == [] and second.describe("total")["value"] == 45


# ------------------------------------------------------------ the executor, without nbgrader
def graded_notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook of ``(kind, source)`` cells: "student" cells and "test" cells (graded)."""
    nb = nbformat.v4.new_notebook()
    for i, (kind, source) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        if kind == "test":
            cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                         "grade_id": f"test_{i}", "points": 1}
        nb.cells.append(cell)
    return nb


def run_executor(cells, folder: Path, **config) -> tuple[list, list]:
    """Each cell's outputs after SandboxedExecute, and what it wrote to the flags file."""
    nb = graded_notebook(cells)
    resources = {"metadata": {"path": str(folder)}, "nbgrader": {"assignment": "x"}}
    SandboxedExecute(timeout=30, **config).preprocess(nb, resources)
    flags = folder / FLAGS_FILE
    return [c.outputs for c in nb.cells], json.loads(flags.read_text()) if flags.exists() else []


LEAKY = '''
import torch
kept = []

def answer(x):
    kept.append(x.tolist())
    if x.shape[0] > 2:  # only the hidden test passes a longer input: its values in the name
        raise type("LEAK" + "_".join(str(int(v)) for v in x.tolist()), (Exception,), {})()
    if len(kept) > 2:  # a later visible test: the kept input in the name, the fixed text as message
        raise type("LEAK" + "_".join(str(int(v)) for v in kept[1]), (Exception,),
                   {"__str__": lambda self: "a hidden test failed"})()
    return x
'''
HIDDEN_TEST = '''assert answer(torch.tensor([1.0]))[0] == 1
### BEGIN HIDDEN TESTS
answer(torch.tensor([7.0, 3.0, 9.0]))
### END HIDDEN TESTS'''


@needs_sandbox
def test_hidden_failures_show_fixed_text_and_visible_ones_come_from_the_visible_pass(tmp_path):
    outputs, flags = run_executor([("student", LEAKY), ("test", HIDDEN_TEST),
                                   ("test", "answer(torch.tensor([5.0]))\nprint(kept)")], tmp_path)
    assert outputs[1] == [{"output_type": "error", "ename": HIDDEN_ENAME, "evalue": HIDDEN_FAILED,
                           "traceback": [f"{HIDDEN_ENAME}: {HIDDEN_FAILED}"]}]
    # the printout comes from the visible pass: the student's process saw visible inputs only
    assert outputs[2] == [{"output_type": "stream", "name": "stdout", "text": "[[1.0]]\n"}]
    assert flags == []


class RecordingSession:
    """Stands for SandboxSession: records what the executor asks the sandbox, in order."""

    log: list = []

    def __init__(self, *args, **kwargs) -> None:
        self.flags, self.spent = [], 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def run_cell(self, code, timeout):
        self.log.append(("cell", code))
        return {"stdout": "", "stderr": ""}

    def describe(self, name, timeout=30.0):
        self.log.append(("describe", name))
        return {"kind": "function", "module": "__main__", "qualname": name,
                "defined_in_notebook": True}

    def call(self, name, args, kwargs, timeout):
        self.log.append(("call", name, repr(args)))
        return args[0] if args else None

    def new_pass(self) -> None:
        self.log.append(("new pass",))


def test_no_hidden_name_or_input_reaches_the_sandbox_before_the_visible_pass_ends(
        tmp_path, monkeypatch):
    """Issue 23, items 4 and 5: the grader looked up every name of a test cell, hidden lines
    included, and sent hidden inputs to the process whose later visible messages were shown."""
    from beyondbert.sandbox import executor

    RecordingSession.log = []
    monkeypatch.setattr(executor, "SandboxSession", RecordingSession)
    test = ("assert answer(1) == 1\n### BEGIN HIDDEN TESTS\nsecret_q4 = pad_none_allowed(777)\n"
            "answer(secret_q4)\n### END HIDDEN TESTS")
    run_executor([("student", "def answer(x): return x"), ("test", test),
                  ("test", "assert answer(2) == 2")], tmp_path)
    log = RecordingSession.log
    split = log.index(("new pass",))
    visible, hidden = log[:split], log[split + 1:]
    assert ("describe", "pad_none_allowed") not in visible and "777" not in repr(visible)
    assert ("describe", "answer") in visible and ("call", "answer", "(2,)") in visible
    assert ("describe", "pad_none_allowed") in hidden and "777" in repr(hidden)
    assert ("call", "answer", "(2,)") not in hidden  # after the last hidden test: not run again


@needs_sandbox
def test_the_executor_writes_the_session_s_flags(tmp_path):
    (tmp_path / FLAGS_FILE).write_text('["planted by the student"]')
    stall = "import time\ntime.sleep(8)"
    outputs, flags = run_executor([("student", stall), ("student", stall), ("test", "x = 1")],
                                  tmp_path, time_budget=12)
    assert flags == [BUDGET_FLAG.format(budget=12)]
    assert outputs[1][0]["ename"] == "TimeBudgetExceeded" and outputs[2] == []
    outputs, flags = run_executor([("student", "y = 1")], tmp_path)
    assert flags == [] and not (tmp_path / FLAGS_FILE).exists()


FORK_UNTIL_REFUSED = '''
import os, time
kids = 0
while kids < 100000:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    kids += 1
'''


@needs_sandbox
def test_a_fork_bomb_in_one_sandbox_leaves_another_sandbox_its_processes():
    """Issue 23: RLIMIT_NPROC counts per user and every sandbox runs as one uid; each sandbox
    now has its own process cap (a pids cgroup), so another one still starts and forks."""
    with SandboxSession(None) as bomb:
        bomb.run_cell(FORK_UNTIL_REFUSED, timeout=120)
        kids = bomb.describe("kids")["value"]
        assert 0 < kids < launcher.Limits().processes
        with SandboxSession(None) as other:
            other.run_cell(FORK_UNTIL_REFUSED.replace("100000", "20"), timeout=120)
            assert other.describe("kids")["value"] == 20


def test_each_sandbox_has_its_own_process_cap_where_pids_cgroups_exist():
    probe = launcher.PidsCgroup.create(8)
    if probe is None:
        pytest.skip("no pids cgroup can be created here")
    probe.remove()
    assert launcher.process_confinement().startswith("a pids cgroup")


def test_the_sandbox_errors_have_a_module_of_their_own_and_warm_never_imports_session():
    """Issue 23: ``session`` and ``warm`` imported each other (over SandboxBroken)."""
    import ast

    from beyondbert.sandbox import errors

    tree = ast.parse(Path(warm.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "session" not in imported and "beyondbert.sandbox.session" not in imported
    assert SandboxBroken is errors.SandboxBroken and warm.WarmSandboxFailed is errors.WarmSandboxFailed
    assert SandboxError is errors.SandboxError and NoSandbox is errors.NoSandbox
