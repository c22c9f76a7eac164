"""The trusted side of one submission's worker: send cells and calls, enforce time-outs, recover.

Sandboxed, the worker is a fresh child of a warm sandbox's zygote (see ``warm``): the session
stages the submission's files there, and a restart is a reset of that sandbox (every process of
it killed, its writable folders emptied) and a new fork. A cell that runs past its time limit,
exhausts memory or kills the worker (``os._exit``, a segfault) fails on its own: the worker is
restarted and the cells that had succeeded are replayed, so tests after it still run and earn
credit. Two things are also the student's doing and get the
submission **flagged** (``SandboxSession.flags``) besides failing what they touch:

* a reply that breaks the protocol (too large, too deeply nested, not JSON, wrong fields): only
  student code writing to the worker's channel can send one; the worker is restarted as after a
  crash, and nothing in the reply is used;
* the submission's total time budget running out: the time the grader spends waiting on the
  student's code (cells, calls, start-ups, restarts and replays together; not the tests' own
  work) is counted, and past the budget the worker is stopped for good, every later cell and call
  fails at once, and the credit earned before stays.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import tempfile
import time
from pathlib import Path

from . import warm
from .errors import NoSandbox, SandboxBroken, SandboxError, WarmSandboxFailed
from .launcher import Limits, sandbox_problem, spawn_unsandboxed_worker, tree_bytes
from .plaindata import (MAX_MESSAGE_BYTES, MalformedMessage, NotPlainData, decode_message,
                        encode_message, from_plain, to_plain)

FLAGS_FILE = ".beyondbert-flags.json"  # SandboxedExecute leaves a submission's flags here
START_TIMEOUT = 120.0
MAX_RESTARTS = 10  # after this many time-outs and crashes, the rest of the submission is not run
MAX_NAME_CHARS, MAX_VALUE_CHARS, MAX_STREAM_CHARS = 100, 500, 4000
_ERROR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_KINDS = {"missing", "module", "function", "callable", "data", "object"}
PROTOCOL_FLAG = ("student code wrote a malformed message to the grader's channel (a forged "
                 "reply): its process was restarted and the reply ignored")
BUDGET_FLAG = ("grading ran past this submission's time budget of {budget:g} s (cells, calls, "
               "restarts and replays): the rest was not run; the credit earned before stays")


def copy_regular_files(source: Path, target: Path, skip=("*.ipynb", FLAGS_FILE)) -> None:
    """Copy the regular files and folders under ``source`` into the existing folder ``target``,
    leaving out names matching ``skip``. Nothing is followed: each entry is checked with
    ``lstat`` and opened with ``O_NOFOLLOW``; a symbolic link, FIFO, device or socket is not
    copied (the grading workflow refuses a submission holding one before it gets here)."""
    import fnmatch
    import stat

    for path in sorted(source.iterdir()):
        if any(fnmatch.fnmatch(path.name, pattern) for pattern in skip):
            continue
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            (target / path.name).mkdir()
            copy_regular_files(path, target / path.name, skip=())
        elif stat.S_ISREG(mode):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            with open(fd, "rb") as src:
                if stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                    with open(target / path.name, "xb") as dst:
                        shutil.copyfileobj(src, dst)


def clean_text(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate (``print('\\ud800')``), which no UTF-8 writer
    accepts and which would make saving the graded notebook fail after the run, becomes "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


def error_name(ename: object) -> str:
    """A student exception's class name as the grader shows it: a dotted identifier of at most
    ``MAX_NAME_CHARS`` characters, else ``"Exception"`` (the name is the student's choice)."""
    if isinstance(ename, str) and len(ename) <= MAX_NAME_CHARS and _ERROR_NAME.match(ename):
        return ename
    return "Exception"


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


def _write_all(fd: int, data: bytes, deadline: float) -> None:
    """Write ``data`` to a non-blocking pipe; a worker that stops reading cannot hang the grader."""
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([], [fd], [], left)[1]:
            raise TimeoutError
        try:
            view = view[os.write(fd, view[:1 << 16]):]
        except BlockingIOError:
            continue


def _check_reply(reply: dict) -> dict:
    """``reply`` if it has the fields a worker sends, with their types; else MalformedMessage."""
    if type(reply.get("ok")) is not bool:
        raise MalformedMessage("a reply needs a boolean 'ok'")
    for stream in ("stdout", "stderr"):
        if type(reply.get(stream, "")) is not str:
            raise MalformedMessage(f"'{stream}' must be a string")
    if not reply["ok"]:
        error = reply.get("error")
        if (type(error) is not dict or type(error.get("ename")) is not str
                or type(error.get("evalue")) is not str):
            raise MalformedMessage("a failed reply needs an 'error' with 'ename' and 'evalue'")
    return reply


def _check_description(reply: dict) -> dict:
    """A ``describe`` reply, checked field by field (MalformedMessage if anything is off)."""
    kind = reply.get("kind")
    if kind not in _KINDS:
        raise MalformedMessage(f"unknown kind {str(kind)[:40]!r}")
    texts = {"module": ("module",), "function": ("module", "qualname"), "callable": ("module",),
             "object": ("reason",)}.get(kind, ())
    if any(type(reply.get(field)) is not str or len(reply[field]) > 1000 for field in texts):
        raise MalformedMessage(f"a {kind} needs string fields {texts}")
    if kind in ("function", "callable") and type(reply.get("defined_in_notebook")) is not bool:
        raise MalformedMessage("'defined_in_notebook' must be a boolean")
    if kind == "data":
        try:
            reply["value"] = from_plain(reply.get("value"))
        except NotPlainData as err:
            raise MalformedMessage(f"data that is not plain data: {err}") from None
    return reply


class SandboxSession:
    """One student's worker. Use as a context manager; every method returns plain data.

    ``time_budget`` (seconds, None for none) bounds the time spent waiting on the student's code
    over the whole session: every request's time-out is cut to what is left of it, restarts and
    replays included.
    """

    def __init__(self, files_from: Path | None, forbidden_modules: tuple[str, ...] = (),
                 seed: int = 0, limits: Limits = Limits(), uid: int | None = None,
                 unsafe_no_sandbox: bool = False, time_budget: float | None = None) -> None:
        problem = None if unsafe_no_sandbox else sandbox_problem()
        if problem:
            raise NoSandbox(problem)
        self.sandboxed = not unsafe_no_sandbox
        self.seed, self.limits, self.time_budget = seed, limits, time_budget
        self._spent, self._since = 0.0, None  # seconds of student time, and since when now
        self.uid = uid if uid is not None else (65534 if os.geteuid() == 0 else None)
        self.flags: list[str] = []  # what the instructor should know about this submission
        self.out_of_time = False
        self._scratch = Path(tempfile.mkdtemp(prefix="beyondbert-session-"))
        self._files = self._scratch / "files"  # the submission's files, as handed in
        self._files.mkdir()
        if files_from is not None:
            copy_regular_files(Path(files_from), self._files)
        self._warm = None
        if self.sandboxed:
            self._config = warm.WarmConfig(tuple(forbidden_modules), limits, self.uid,
                                           warm.home_size(tree_bytes(self._files), limits))
            self._take_warm_sandbox()
        self._history: list[str] = []
        self._alive = False  # a worker runs, or is to be started when first needed
        self._restarts = 0
        self._start()

    # -- life cycle -------------------------------------------------------------------------
    def _take_warm_sandbox(self) -> None:
        """A warm sandbox (it may still be booting) with this submission's files staged."""
        self._warm = warm.acquire(self._config)
        self._warm.stage(self._files)

    def _start(self) -> None:
        """Ask for a fresh worker. Sandboxed, it is forked when first needed (a new sandbox boots
        meanwhile); without a sandbox, a process starts now on a host folder reset to the files
        handed in. Either way nothing a previous worker wrote survives."""
        self._alive, self._booted = True, False
        self._requests = self._replies = None
        if self.sandboxed:
            return
        home = self._scratch / "home"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(self._files, home)
        self._process, self._requests, self._replies = spawn_unsandboxed_worker(
            home, self.seed, self.limits, self._scratch / "worker.log")
        os.set_blocking(self._requests, False)

    def _fork_worker(self) -> None:
        """Sandboxed: a fresh worker from the warm sandbox; a sandbox that fails to give one is
        replaced once (SandboxBroken if the new one cannot start)."""
        try:
            self._requests, self._replies = self._warm.fork(self.seed)
        except WarmSandboxFailed:
            self._warm.close()
            self._take_warm_sandbox()
            try:
                self._requests, self._replies = self._warm.fork(self.seed)
            except WarmSandboxFailed as failure:
                raise SandboxBroken(f"a new sandbox gave no worker: {failure}") from None
        os.set_blocking(self._requests, False)

    def _boot(self) -> None:
        """Wait for the worker's "ready", then replay the cells that succeeded before a restart.

        A replayed cell that crashes the worker again means another restart (within the
        ``MAX_RESTARTS`` budget) and another replay.
        """
        while self._alive and not self._booted:
            self._booted = True
            deadline, by_budget = self._deadline_for(START_TIMEOUT)
            if self.sandboxed:
                self._fork_worker()
            try:
                ready = self._receive(deadline)
            except TimeoutError:
                if by_budget:
                    self._stop_for_budget()
                    return
                ready = {}
            except (EOFError, OSError, MalformedMessage):
                ready = {}
            if ready.get("ready") is not True:
                log = self._warm.log if self.sandboxed else self._scratch / "worker.log"
                text = log.read_text(errors="replace").strip() if log.exists() else ""
                raise SandboxBroken("the sandbox worker did not start: "
                                    + (text[-1000:] or "it exited without a message"))
            for code in self._history:
                try:
                    self._request({"op": "exec", "code": code}, timeout=START_TIMEOUT)
                except SandboxError:
                    pass
                if not self._booted:  # that cell took the worker down: boot the next one
                    break

    def _kill(self) -> None:
        """Stop the worker: sandboxed, every process of the sandbox (a reset)."""
        if not self._alive:
            return
        self._alive = False
        if self._requests is None:
            return  # sandboxed and not forked yet
        for fd in (self._requests, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._requests = self._replies = None
        if not self.sandboxed:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._process.wait()
            return
        try:
            self._warm.reset()
        except WarmSandboxFailed:
            self._warm.close()  # a new one is taken at the next fork

    def close(self) -> None:
        self._kill()
        if self._warm is not None:
            if self._warm.alive():
                warm.release(self._warm)
            else:
                self._warm.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "SandboxSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _flag(self, flag: str) -> None:
        if flag not in self.flags:
            self.flags.append(flag)

    @contextlib.contextmanager
    def _student_time(self):
        """Count the time inside as the student's (nested uses count once)."""
        outermost = self._since is None
        if outermost:
            self._since = time.monotonic()
        try:
            yield
        finally:
            if outermost:
                self._spent += time.monotonic() - self._since
                self._since = None

    @property
    def spent(self) -> float:
        """Seconds of student time used so far (what the time budget is charged)."""
        now = time.monotonic()
        return self._spent + (now - self._since if self._since is not None else 0.0)

    def _deadline_for(self, timeout: float) -> tuple[float, bool]:
        """When a request given ``timeout`` must end, and whether the budget is what ends it."""
        now = time.monotonic()
        if self.time_budget is not None:
            left = self.time_budget - self._spent - (now - (self._since or now))
            if left <= timeout:
                return now + max(left, 0.0), True
        return now + timeout, False

    def _stop_for_budget(self) -> None:
        self._kill()
        self.out_of_time = True
        self._flag(BUDGET_FLAG.format(budget=self.time_budget))

    # -- protocol ---------------------------------------------------------------------------
    def _receive(self, deadline: float) -> dict:
        """The next message from the worker. MalformedMessage if it breaks the protocol (over
        the size or nesting limits, checked before anything is parsed; not a JSON object)."""
        size = int.from_bytes(_read_exact(self._replies, 8, deadline), "big")
        if size > MAX_MESSAGE_BYTES:
            raise MalformedMessage(f"a reply announced {size} bytes")
        return decode_message(_read_exact(self._replies, size, deadline))

    def _request(self, message: dict, timeout: float) -> dict:
        try:
            body = encode_message(message)
        except MalformedMessage as err:
            raise SandboxError("NotPlainData", f"too much to send to the sandbox: {err}") from None
        with self._student_time():
            return self._exchange(body, timeout)

    def _exchange(self, body: bytes, timeout: float) -> dict:
        self._boot()
        if self.out_of_time:
            raise SandboxError("TimeBudgetExceeded", f"the submission used its grading time "
                               f"budget of {self.time_budget:g} s: the rest is not run")
        if not self._alive:
            raise SandboxError("WorkerDied", f"the code crashed or timed out {MAX_RESTARTS} times: "
                               "the rest of the notebook is not run")
        deadline, by_budget = self._deadline_for(timeout)
        try:
            _write_all(self._requests, body, deadline)
            reply = _check_reply(self._receive(deadline))
        except TimeoutError:
            if by_budget:
                self._stop_for_budget()
                raise SandboxError("TimeBudgetExceeded", f"the submission used its grading time "
                                   f"budget of {self.time_budget:g} s: the rest is not run") from None
            self.restart()
            raise SandboxError("TimeoutError", f"the cell ran longer than {timeout:.0f} s") from None
        except MalformedMessage:
            self._protocol_violation()
        except (EOFError, OSError):
            self.restart()
            raise SandboxError("WorkerDied", "the Python process running the code stopped "
                               "(os._exit, a crash, or the memory limit)") from None
        reply["stdout"] = clean_text(reply.get("stdout", "")[:MAX_STREAM_CHARS])
        reply["stderr"] = clean_text(reply.get("stderr", "")[:MAX_STREAM_CHARS])
        if not reply["ok"]:
            error = reply["error"]
            raise SandboxError(error_name(error["ename"]),
                               clean_text(error["evalue"][:MAX_VALUE_CHARS]))
        return reply

    def _protocol_violation(self):
        """Student code sent a reply that breaks the protocol: flag, restart, fail the request."""
        self._flag(PROTOCOL_FLAG)
        self.restart()
        raise SandboxError("ProtocolViolation", "the code wrote a malformed message to the "
                           "grader's channel; its process was restarted") from None

    def restart(self) -> None:
        """A fresh worker with the cells that succeeded replayed (nothing else carried over).

        After ``MAX_RESTARTS`` no worker is started again (a notebook of endless loops would
        otherwise cost a time-out and a restart per cell) and every later request fails.
        """
        self._kill()
        self._restarts += 1
        if self._restarts <= MAX_RESTARTS and not self.out_of_time:
            self._start()

    def new_pass(self) -> None:
        """Start the notebook over (not the student's fault): a fresh worker on the files handed
        in, with no cell replayed and the restart count back at zero. The time budget goes on."""
        if self.out_of_time:
            return
        self._kill()
        self._history, self._restarts = [], 0
        self._start()

    # -- what the grader uses -----------------------------------------------------------------
    def run_cell(self, code: str, timeout: float) -> dict:
        """Execute one student cell; returns ``{"stdout", "stderr"}`` or raises SandboxError."""
        reply = self._request({"op": "exec", "code": code}, timeout)
        self._history.append(code)
        return {"stdout": reply["stdout"], "stderr": reply["stderr"]}

    def describe(self, name: str, timeout: float = 30.0) -> dict:
        """What ``name`` is in the student's namespace (missing, module, function, data...)."""
        reply = self._request({"op": "describe", "name": name}, timeout)
        try:
            return _check_description(reply)
        except MalformedMessage:
            self._protocol_violation()

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
        except NotPlainData:
            self._protocol_violation()

    def gradient(self, name: str, args: tuple, kwargs: dict, wrt: object,
                 timeout: float, output: object = None) -> tuple:
        """The gradient of the student's scalar loss ``name(*args, **kwargs)`` (its element
        ``output`` when given) with respect to the positional arguments at ``wrt``, computed in
        the sandbox (``worker.compute_gradient``); a tuple of tensors, one per position."""
        try:
            message = {"op": "gradient", "name": name, "args": to_plain(tuple(args)),
                       "kwargs": to_plain(dict(kwargs)), "wrt": to_plain(wrt),
                       "output": to_plain(output)}
        except NotPlainData as err:
            raise SandboxError("NotPlainData", f"arguments must be plain data: {err}") from None
        reply = self._request(message, timeout)
        try:
            grads = from_plain(reply.get("value"))
        except NotPlainData:
            self._protocol_violation()
        import torch

        if type(grads) is not tuple or not all(type(g) is torch.Tensor for g in grads):
            self._protocol_violation()
        return grads
