"""Start the sandbox worker under bubblewrap (``bwrap``), with resource limits.

The sandbox sees: the system's ``/usr``, the Python installation and the course venv (read-only),
a filtered copy of ``beyondbert`` without the modules an exercise asks students to write, one
private read-write folder holding only that submission's files, and an empty ``/tmp``. It has no
network (its own empty network namespace), no view of other processes, and no access to the
course folder: solutions, hidden tests, other submissions and the gradebook are not mounted at all.
When the grader runs as root, student code runs as an unprivileged uid.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SANDBOX_HOME = "/home/student"
NO_SANDBOX_HELP = (
    "bubblewrap (`bwrap`) is needed to grade student code safely: install it with "
    "`apt-get install bubblewrap` (Debian/Ubuntu). To grade WITHOUT a sandbox — student code then "
    "runs with your rights and can read and change your files — pass --unsafe-no-sandbox."
)


@dataclass(frozen=True)
class Limits:
    """Per-worker caps: address space, CPU seconds, processes/threads, size of written files."""

    memory_bytes: int = 4 * 1024**3
    cpu_seconds: int = 900
    processes: int = 256
    file_bytes: int = 64 * 1024**2

    def apply(self) -> None:
        """Set the limits on the current process (called in the child before exec)."""
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_NPROC, (self.processes, self.processes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_bytes, self.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def filtered_library(target: Path, forbidden_modules: tuple[str, ...]) -> Path:
    """Copy the ``beyondbert`` package into ``target`` without ``forbidden_modules``.

    ``forbidden_modules`` are dotted names such as ``"beyondbert.pooling"``.
    """
    import beyondbert

    source = Path(beyondbert.__file__).parent
    skip = {name.split(".", 1)[1].replace(".", "/") for name in forbidden_modules if "." in name}

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(source)
        dropped = {"__pycache__"}
        for name in names:
            stem = (rel / name).as_posix().removesuffix(".py")
            if stem in skip:
                dropped.add(name)
        return dropped

    copy = target / "beyondbert"
    shutil.copytree(source, copy, ignore=ignore)
    return copy


def _ro_system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                "/etc/fonts"):
        if os.path.exists(etc):
            args += ["--ro-bind", etc, etc]
    return args


def _dirs_for(path: Path) -> list[str]:
    """World-readable parent folders so an unprivileged uid can reach a bind mount."""
    args = []
    for parent in reversed(path.parents):
        if str(parent) != "/":
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def bwrap_command(workdir: Path, library_copy: Path, worker_args: list[str], uid: int | None) -> list[str]:
    """The full ``bwrap ... python -m beyondbert.sandbox.worker`` command line."""
    import beyondbert

    # An empty /tmp first: the Python installation or the course may themselves live under /tmp
    # (a CI checkout), and their bind mounts must land on top of it, not be hidden by it.
    mounts = ["--perms", "1777", "--tmpfs", "/tmp", *_ro_system_mounts()]
    for prefix in dict.fromkeys([Path(sys.base_prefix), Path(sys.prefix)]):
        if not str(prefix).startswith("/usr"):
            mounts += _dirs_for(prefix) + ["--ro-bind", str(prefix), str(prefix)]
    package_dir = Path(beyondbert.__file__).parent
    mounts += _dirs_for(package_dir) + ["--ro-bind", str(library_copy), str(package_dir)]
    mounts += _dirs_for(Path(SANDBOX_HOME)) + ["--bind", str(workdir), SANDBOX_HOME]
    env = {"PATH": "/usr/bin:/bin", "HOME": SANDBOX_HOME, "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = ["bwrap", *mounts, "--proc", "/proc",
               "--dev", "/dev", "--unshare-ipc", "--unshare-pid", "--unshare-net",
               "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session",
               "--clearenv", "--chdir", SANDBOX_HOME]
    for key, value in env.items():
        command += ["--setenv", key, value]
    python = [sys.executable, "-m", "beyondbert.sandbox.worker", *worker_args]
    if uid is None:  # not root: bwrap makes its own user namespace
        return command + ["--unshare-user", "--", *python]
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all"]
    return command + ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--", *drop, *python]


def sandbox_problem() -> str | None:
    """None when bubblewrap can start a sandbox here, else a message saying what to do."""
    if shutil.which("bwrap") is None:
        return NO_SANDBOX_HELP
    probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev",
             "--proc", "/proc"]
    if os.geteuid() != 0:
        probe.append("--unshare-user")
    result = subprocess.run([*probe, "true"], capture_output=True, text=True)
    if result.returncode != 0:
        return f"bubblewrap is installed but cannot start a sandbox: {result.stderr.strip()}. " + NO_SANDBOX_HELP
    return None


def spawn_worker(workdir: Path, library_copy: Path | None, seed: int, limits: Limits,
                 uid: int | None, log: Path,
                 sandboxed: bool = True) -> tuple[subprocess.Popen, int, int]:
    """Start a worker; returns ``(process, request_fd, reply_fd)`` for the trusted side.

    The worker's own stderr (bubblewrap's errors, a crash before it is ready) goes to ``log``.
    """
    req_read, req_write = os.pipe()
    rep_read, rep_write = os.pipe()
    worker_args = [str(seed), str(req_read), str(rep_write)]
    if sandboxed:
        command = bwrap_command(workdir, library_copy, worker_args, uid)
        cwd = None
    else:
        command = [sys.executable, "-m", "beyondbert.sandbox.worker", *worker_args]
        cwd = workdir
    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr, pass_fds=(req_read, rep_write), preexec_fn=limits.apply,
            start_new_session=True,
        )
    os.close(req_read)
    os.close(rep_write)
    return process, req_write, rep_read
