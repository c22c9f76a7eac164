"""The trusted side of a warm sandbox: one bubblewrap sandbox whose zygote forks a fresh worker
for each submission (and each restart), one submission after another.

A :class:`WarmSandbox` is started once per configuration (hidden library modules, limits, uid,
home folder size) and kept, idle, in a pool of this process (:func:`acquire`, :func:`release`).
For each submission the grader

1. has the zygote ``reset`` the sandbox: every other process in it killed, ``/tmp``, the home
   folder and System V IPC emptied (see ``zygote``; keyrings are refused, see ``seccomp``);
2. only then puts the submission's files in the staging folder mounted at ``/srv/submission``
   (:meth:`WarmSandbox.stage`): no process of an earlier submission is left to read them;
3. asks for a worker (:meth:`WarmSandbox.fork`) on two new pipes; it copies the staged files into
   the empty home folder. A restart is a reset and a fork.

A zygote that does not answer in time, answers anything but "ok", or is gone (student code can
kill or stop it) raises :class:`WarmSandboxFailed`: the sandbox is closed (every process in it
killed with it) and a new one started.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import SandboxBroken, WarmSandboxFailed
from .launcher import Limits, MemoryCgroup, PidsCgroup, filtered_library, spawn_zygote

START_TIMEOUT = 120.0  # seconds for a new sandbox's zygote to import its modules
ANSWER_TIMEOUT = 30.0  # seconds for a reset or a fork (a busy machine: normally milliseconds)
HOME_ROOM_STEP = 2**20  # the home folder's room for the files handed in, rounded up to this
MAX_IDLE = 2  # warm sandboxes kept idle per process


@dataclass(frozen=True)
class WarmConfig:
    """What a warm sandbox is made of: submissions with the same config can share one."""

    forbidden_modules: tuple[str, ...]
    limits: Limits
    uid: int | None
    home_bytes: int  # size of the home folder's tmpfs


def home_size(files_bytes: int, limits: Limits) -> int:
    """The home tmpfs for files of ``files_bytes``: room for them (rounded up to
    ``HOME_ROOM_STEP``, so most submissions share one size) plus ``limits.home_bytes``."""
    return -(-max(files_bytes, 1) // HOME_ROOM_STEP) * HOME_ROOM_STEP + limits.home_bytes


class WarmSandbox:
    """A running sandbox with its zygote; starts booting at once (the grader goes on meanwhile)."""

    def __init__(self, config: WarmConfig) -> None:
        self.config = config
        self._scratch = Path(tempfile.mkdtemp(prefix="beyondbert-sandbox-"))
        self.files = self._scratch / "files"  # staged here, seen as /srv/submission
        self.files.mkdir()
        self.files.chmod(0o755)
        self.log = self._scratch / "zygote.log"
        library = filtered_library(self._scratch / "lib", config.forbidden_modules)
        self._cgroup = MemoryCgroup.create(config.limits.memory_bytes)
        self._pids = PidsCgroup.create(config.limits.processes)  # this sandbox's own process cap
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = spawn_zygote(self.files, library, theirs.fileno(), config.limits,
                                         config.uid, self.log, self._cgroup, config.home_bytes,
                                         self._pids)
        finally:
            theirs.close()
        self._ready = self._closed = False
        self.clean = True  # no worker has been forked since the last reset

    def _wait_ready(self) -> None:
        """Wait for the zygote's "ready"; SandboxBroken if it never comes (the grader's fault)."""
        if self._ready:
            return
        try:
            reply = self._receive(START_TIMEOUT)
        except WarmSandboxFailed:
            reply = {}
        if reply.get("ready") is not True:
            log = self.log.read_text(errors="replace").strip() if self.log.exists() else ""
            self.close()
            raise SandboxBroken("the sandbox worker did not start: "
                                + (log[-1000:] or "it exited without a message"))
        self._ready = True

    def _receive(self, timeout: float) -> dict:
        self._control.settimeout(timeout)
        try:
            data = self._control.recv(4096)
        except OSError as err:  # socket.timeout is an OSError
            raise WarmSandboxFailed(f"the zygote did not answer: {type(err).__name__}") from None
        if not data:
            raise WarmSandboxFailed("the zygote is gone")
        try:
            reply = json.loads(data)
        except ValueError:
            raise WarmSandboxFailed("the zygote's answer is not JSON") from None
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            raise WarmSandboxFailed(f"the zygote refused: {str(reply)[:300]}")
        return reply

    def _ask(self, message: dict, fds: tuple[int, ...] = ()) -> dict:
        self._wait_ready()  # first: a sandbox that never started says why (its log), not "gone"
        if not self.alive():
            raise WarmSandboxFailed("the sandbox is gone")
        try:
            socket.send_fds(self._control, [json.dumps(message).encode()], list(fds))
        except OSError as err:
            raise WarmSandboxFailed(f"the zygote cannot be reached: {err}") from None
        return self._receive(ANSWER_TIMEOUT)

    def reset(self) -> None:
        """Kill every process but the zygote and empty the writable folders (if a worker ran)."""
        if not self.clean:
            self._ask({"op": "reset"})
            self.clean = True

    def stage(self, files_from: Path | None) -> None:
        """Put a submission's files (those in ``files_from``) where its workers find them, after
        a reset. Nothing of an earlier submission stays there."""
        self.reset()
        for path in self.files.iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        if files_from is not None:
            shutil.copytree(files_from, self.files, dirs_exist_ok=True)
            self.files.chmod(0o755)  # copytree gave it the mode of ``files_from``
        if self.config.uid is not None:
            for path in self.files.rglob("*"):
                os.chown(path, self.config.uid, self.config.uid, follow_symlinks=False)

    def fork(self, seed: int) -> tuple[int, int]:
        """A fresh worker on new pipes, seeded with ``seed``: ``(request_fd, reply_fd)``."""
        self.reset()
        req_read, req_write = os.pipe()
        rep_read, rep_write = os.pipe()
        try:
            self.clean = False
            self._ask({"op": "fork", "seed": seed}, (req_read, rep_write))
        except WarmSandboxFailed:
            for fd in (req_write, rep_read):
                os.close(fd)
            raise
        finally:
            os.close(req_read)
            os.close(rep_write)
        return req_write, rep_read

    def alive(self) -> bool:
        return not self._closed and self._process.poll() is None

    def close(self) -> None:
        """Kill the sandbox (every process in it dies with bubblewrap) and remove its files."""
        if self._closed:
            return
        self._closed = True
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait()
        self._control.close()
        for cgroup in (self._cgroup, self._pids):
            if cgroup is not None:
                cgroup.remove()
        shutil.rmtree(self._scratch, ignore_errors=True)


_idle: list[WarmSandbox] = []
_idle_lock = threading.Lock()  # a Jupyter server (the formgrader) may grade in several threads


def acquire(config: WarmConfig) -> WarmSandbox:
    """An idle warm sandbox of ``config`` from this process's pool (the one released last), or a
    new one."""
    while True:
        with _idle_lock:
            found = next((s for s in reversed(_idle) if s.config == config), None)
            if found is None:
                break
            _idle.remove(found)
        if found.alive():
            return found
        found.close()
    return WarmSandbox(config)


def release(sandbox: WarmSandbox) -> None:
    """Give ``sandbox`` back to the pool, reset and without files; close it if that fails."""
    try:
        sandbox.stage(None)
    except (WarmSandboxFailed, OSError):
        sandbox.close()
        return
    with _idle_lock:
        _idle.append(sandbox)
        surplus = _idle[:-MAX_IDLE]
        del _idle[:-MAX_IDLE]
    for extra in surplus:
        extra.close()


@atexit.register
def close_all() -> None:
    """Close every idle warm sandbox of this process."""
    with _idle_lock:
        idle = list(_idle)
        _idle.clear()
    for sandbox in idle:
        sandbox.close()
