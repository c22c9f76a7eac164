"""The warm process inside a sandbox: imports the heavy modules once, forks a fresh worker per
submission, and leaves nothing of one worker to the next.

Run (by ``launcher.spawn_zygote``, under bubblewrap) as
``python -m beyondbert.sandbox.zygote CONTROL_FD``, where CONTROL_FD is a Unix seqpacket socket to
the grader. Starting a sandbox costs seconds (bubblewrap, Python, ``import torch``); forking this
process costs milliseconds, and the child starts from its clean state: modules imported, nothing
of any student's run. The grader sends one JSON object per packet; the zygote answers each with
``{"ok": true}`` or ``{"ok": false, "why": ...}``:

* ``{"op": "reset"}``: kill every other process in the sandbox's PID namespace (whoever started
  them, however they detached), then empty ``/tmp`` and the home folder and remove System V IPC
  objects. Only after this answer does the grader put the next submission's files in place.
  (Kernel keyrings, which outlive processes, cannot be used at all: see ``seccomp``.)
* ``{"op": "fork", "seed": N}`` with two fds attached (the request pipe's read end, the reply
  pipe's write end): fork a worker (``worker.serve``) on them, in the home folder, which copies
  the files handed in and seeds Python, NumPy and PyTorch with N.

The zygote is not dumpable (``PR_SET_DUMPABLE`` 0), so student processes of the same uid can
neither trace it nor open its memory or fds through ``/proc``; the control socket is closed in
every worker before student code runs. Student code can still kill or stop the zygote: the grader
then gets no answer and replaces the whole sandbox.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from .launcher import SANDBOX_HOME, SUBMISSION_MOUNT

WARM_MODULES = ("numpy", "torch", "IPython.core.inputtransformer2", "beyondbert.sandbox.worker")
RESET_SECONDS = 10.0  # the most a reset may take to see every other process gone
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
IPC_RMID = 0
CAUGHT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                  signal.SIGUSR2, signal.SIGALRM)

_libc = ctypes.CDLL(None, use_errno=True)


def _other_processes() -> list[int]:
    """PIDs in this PID namespace besides bubblewrap's init (1) and this process."""
    me = os.getpid()
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) not in (1, me)]


def _reap() -> None:
    """Collect every exited child (this process is the sandbox's subreaper: orphans come here)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_others() -> None:
    """SIGKILL every other process of the namespace until none is left (or raise)."""
    deadline = time.monotonic() + RESET_SECONDS
    while True:
        try:
            os.kill(-1, signal.SIGKILL)  # all we may signal, except init and ourselves
        except (ProcessLookupError, PermissionError):
            pass
        _reap()
        left = _other_processes()
        if not left:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(left)} processes survived SIGKILL")
        time.sleep(0.002)


def _empty(folder: str) -> None:
    """Remove everything inside ``folder`` (folders made unreadable included)."""
    with os.scandir(folder) as entries:
        for entry in list(entries):
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
                _empty(entry.path)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)


def _remove_ipc() -> None:
    """Remove the System V shared memory, message queues and semaphores of this IPC namespace."""
    removers = {"shm": lambda ident: _libc.shmctl(ident, IPC_RMID, None),
                "msg": lambda ident: _libc.msgctl(ident, IPC_RMID, None),
                "sem": lambda ident: _libc.semctl(ident, 0, IPC_RMID)}
    for kind, remove in removers.items():
        try:
            rows = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            if remove(int(row.split()[1])) != 0:
                raise RuntimeError(f"could not remove System V {kind} {row.split()[1]}")


def reset() -> None:
    """Leave the sandbox as a fresh one: no other process, empty writable folders, no IPC."""
    _kill_others()
    for folder in ("/tmp", SANDBOX_HOME):
        _empty(folder)
    _remove_ipc()


def _worker(seed: int, request_fd: int, reply_fd: int, control: socket.socket,
            home_on_path: str) -> None:
    """In the forked child: drop what only the zygote may hold, then serve as a fresh worker."""
    control.close()
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # only this process is left in the sandbox
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) not in (request_fd, reply_fd):
            try:
                os.close(int(name))
            except OSError:
                pass  # the listing's own fd, already closed
    for number in CAUGHT_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with contextlib.suppress(OSError):  # the memory cgroup's OOM killer: this one first
        Path("/proc/self/oom_score_adj").write_text("1000")
    os.chdir(SANDBOX_HOME)
    sys.path.insert(0, home_on_path)
    importlib.invalidate_caches()
    worker = sys.modules["beyondbert.sandbox.worker"]
    sys.argv = [worker.__file__, str(seed), str(request_fd), str(reply_fd), SUBMISSION_MOUNT]
    worker.serve(seed, request_fd, reply_fd, Path(SUBMISSION_MOUNT))


def _fork(seed: int, fds: list[int], control: socket.socket, home_on_path: str) -> None:
    if _other_processes():
        raise RuntimeError("a fork needs a reset first: other processes are running")
    pid = os.fork()
    if pid == 0:  # never return to the zygote's loop
        try:
            _worker(seed, fds[0], fds[1], control, home_on_path)
        except BaseException:  # noqa: BLE001 - a worker that could not start: say why, in the log
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    for fd in fds:
        os.close(fd)


def _answer(message: dict, fds: list[int], control: socket.socket, home_on_path: str) -> dict:
    op = message.get("op")
    if op == "reset":
        reset()
    elif op == "fork" and len(fds) == 2 and type(message.get("seed")) is int:
        _fork(message["seed"], fds, control, home_on_path)
    else:
        raise ValueError(f"unknown request {str(op)[:40]!r} with {len(fds)} fds")
    return {"ok": True}


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    home_on_path = sys.path.pop(0)  # the working folder: student files, never the zygote's imports
    os.chdir("/")
    for number in CAUGHT_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for module in WARM_MODULES:
        importlib.import_module(module)
    import torch

    torch.set_num_threads(1)  # a single thread: forking a process with threads risks deadlocks
    control.send(json.dumps({"ok": True, "ready": True}).encode())
    while True:
        data, fds, _, _ = socket.recv_fds(control, 4096, 2)
        if not data:
            return  # the grader hung up
        try:
            reply = _answer(json.loads(data), fds, control, home_on_path)
        except Exception as failure:  # noqa: BLE001 - report it; the grader replaces the sandbox
            for fd in fds:
                os.close(fd)
            reply = {"ok": False, "why": f"{type(failure).__name__}: {failure}"[:500]}
        control.send(json.dumps(reply).encode())


if __name__ == "__main__":
    main()
