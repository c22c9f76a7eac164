"""The trusted side of one sandboxed worker: send cells and calls, enforce time-outs, recover.

A cell that runs past its time limit, exhausts memory or kills the worker (``os._exit``, a
segfault) fails on its own: the worker is restarted and the cells that had succeeded are replayed,
so tests after it still run and earn credit.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import tempfile
import time
from pathlib import Path

from .launcher import Limits, filtered_library, sandbox_problem, spawn_worker
from .plaindata import MAX_MESSAGE_BYTES, NotPlainData, from_plain, to_plain

START_TIMEOUT = 120.0
MAX_RESTARTS = 10  # after this many time-outs and crashes, the rest of the submission is not run


class SandboxError(RuntimeError):
    """The student code failed in the sandbox (error, time-out, crash); ``ename`` names how."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue = ename, evalue


class NoSandbox(RuntimeError):
    """No sandbox can be started and unsafe grading was not asked for."""


class SandboxBroken(RuntimeError):
    """The worker could not even start: a fault of the grading machine, not of the student.

    It is not caught per cell: grading that submission fails, and the instructor sees why.
    """


def _read_exact(fd: int, size: int, deadline: float) -> bytes:
    chunks, remaining = [], size
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _wipe(folder: Path) -> None:
    """Remove ``folder`` even where student code took away the write permission."""
    if not folder.exists():
        return
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o700)
    shutil.rmtree(folder)


class SandboxSession:
    """One student's worker. Use as a context manager; every method returns plain data."""

    def __init__(self, files_from: Path | None, forbidden_modules: tuple[str, ...] = (),
                 seed: int = 0, limits: Limits = Limits(), uid: int | None = None,
                 unsafe_no_sandbox: bool = False) -> None:
        problem = None if unsafe_no_sandbox else sandbox_problem()
        if problem:
            raise NoSandbox(problem)
        self.sandboxed = not unsafe_no_sandbox
        self.seed, self.limits = seed, limits
        self.uid = uid if uid is not None else (65534 if os.geteuid() == 0 else None)
        self._scratch = Path(tempfile.mkdtemp(prefix="beyondbert-sandbox-"))
        self._files = self._scratch / "files"  # the submission's files, as handed in
        if files_from is not None:
            shutil.copytree(files_from, self._files, ignore=shutil.ignore_patterns("*.ipynb"))
        else:
            self._files.mkdir()
        self.workdir = self._scratch / "home"
        self._library = (filtered_library(self._scratch / "lib", forbidden_modules)
                         if self.sandboxed else None)
        self._history: list[str] = []
        self._process = None
        self._restarts = 0
        self._start()

    # -- life cycle -------------------------------------------------------------------------
    def _start(self) -> None:
        """Start the worker in a home folder holding only the submission's files, as handed in
        (nothing a previous worker wrote survives a restart); it boots (imports torch, ...)
        while the grader gets on with its work."""
        _wipe(self.workdir)
        shutil.copytree(self._files, self.workdir)
        if self.uid is not None:
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.chown(path, self.uid, self.uid)
        self._process, self._requests, self._replies = spawn_worker(
            self.workdir, self._library, self.seed, self.limits, self.uid,
            self._scratch / "worker.log", self.sandboxed)
        self._booted = False

    def _boot(self) -> None:
        """Wait for the worker's "ready", then replay the cells that succeeded before a restart.

        A replayed cell that crashes the worker again means another restart (within the
        ``MAX_RESTARTS`` budget) and another replay.
        """
        while self._process is not None and not self._booted:
            self._booted = True
            try:
                ready = self._receive(time.monotonic() + START_TIMEOUT)
            except (EOFError, TimeoutError, OSError, ValueError):
                ready = {}
            if not ready.get("ready"):
                log = (self._scratch / "worker.log").read_text(errors="replace").strip()
                raise SandboxBroken("the sandbox worker did not start: "
                                    + (log[-1000:] or "it exited without a message"))
            for code in self._history:
                try:
                    self._request({"op": "exec", "code": code}, timeout=START_TIMEOUT)
                except SandboxError:
                    pass
                if not self._booted:  # that cell took the worker down: boot the next one
                    break

    def _kill(self) -> None:
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait()
        for fd in (self._requests, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._process = None

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "SandboxSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- protocol ---------------------------------------------------------------------------
    def _receive(self, deadline: float) -> dict:
        size = int.from_bytes(_read_exact(self._replies, 8, deadline), "big")
        if size > MAX_MESSAGE_BYTES:
            raise EOFError
        message = json.loads(_read_exact(self._replies, size, deadline))
        if not isinstance(message, dict):
            raise EOFError
        return message

    def _request(self, message: dict, timeout: float) -> dict:
        body = json.dumps(message).encode()
        self._boot()
        if self._process is None:
            raise SandboxError("WorkerDied", f"the code crashed or timed out {MAX_RESTARTS} times: "
                               "the rest of the notebook is not run")
        try:
            os.write(self._requests, len(body).to_bytes(8, "big") + body)
            reply = self._receive(time.monotonic() + timeout)
        except TimeoutError:
            self.restart()
            raise SandboxError("TimeoutError", f"the cell ran longer than {timeout:.0f} s") from None
        except (EOFError, OSError, ValueError):
            self.restart()
            raise SandboxError("WorkerDied", "the Python process running the code stopped "
                               "(os._exit, a crash, or the memory limit)") from None
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise SandboxError(str(error.get("ename", "Error")), str(error.get("evalue", "")))
        return reply

    def restart(self) -> None:
        """A fresh worker with the cells that succeeded replayed (nothing else carried over).

        After ``MAX_RESTARTS`` no worker is started again (a notebook of endless loops would
        otherwise cost a time-out and a restart per cell) and every later request fails.
        """
        self._kill()
        self._restarts += 1
        if self._restarts <= MAX_RESTARTS:
            self._start()

    # -- what the grader uses -----------------------------------------------------------------
    def run_cell(self, code: str, timeout: float) -> dict:
        """Execute one student cell; returns ``{"stdout", "stderr"}`` or raises SandboxError."""
        reply = self._request({"op": "exec", "code": code}, timeout)
        self._history.append(code)
        return {"stdout": reply.get("stdout", ""), "stderr": reply.get("stderr", "")}

    def describe(self, name: str, timeout: float = 30.0) -> dict:
        """What ``name`` is in the student's namespace (missing, module, function, data...)."""
        reply = self._request({"op": "describe", "name": name}, timeout)
        if reply.get("kind") == "data":
            reply["value"] = from_plain(reply["value"])
        return reply

    def call(self, name: str, args: tuple, kwargs: dict, timeout: float) -> object:
        """Call the student's function ``name`` on plain-data arguments; returns plain data."""
        try:
            message = {"op": "call", "name": name, "args": to_plain(tuple(args)),
                       "kwargs": to_plain(dict(kwargs))}
        except NotPlainData as err:
            raise SandboxError("NotPlainData", f"arguments must be plain data: {err}") from None
        reply = self._request(message, timeout)
        try:
            return from_plain(reply.get("value"))
        except (NotPlainData, ValueError, KeyError, TypeError) as err:
            raise SandboxError("NotPlainData", f"the return value is not plain data: {err}") from None
