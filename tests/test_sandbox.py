"""The sandbox on its own: plain data across the boundary, and one sandboxed worker's guarantees.

The grading catalog (test_grading_catalog.py) checks the same guarantees end to end through
nbgrader; these tests pin them down at the level of the modules.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from beyondbert.sandbox import launcher
from beyondbert.sandbox import session as session_module
from beyondbert.sandbox.executor import StudentObject, _grader_module, _grader_side_function
from beyondbert.sandbox.plaindata import NotPlainData, from_plain, to_plain
from beyondbert.sandbox.session import NoSandbox, SandboxBroken, SandboxError, SandboxSession
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
    monkeypatch.setattr(launcher, "bwrap_command", lambda *args: ["bwrap", "--no-such-option"])
    with SandboxSession(None) as session:
        with pytest.raises(SandboxBroken, match="did not start: .*no-such-option"):
            session.run_cell("x = 1", timeout=30)


def test_the_grader_imports_only_modules_tests_use():
    import torch.nn.functional

    assert _grader_module("torch.nn.functional", "F") is torch.nn.functional
    for chosen_by_student in ("antigravity", "os", "shutil", "no_such_module"):
        with pytest.raises(TypeError, match="not plain data"):
            bool(_grader_module(chosen_by_student, "torch"))
